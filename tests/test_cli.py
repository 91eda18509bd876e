"""The ``seqrec`` command line, run in-process through ``main(argv)``."""

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from seqrec import Columns, load_model
from seqrec.cli import apply_overrides, build_model, main, model_classes, read_config_file
from seqrec.models import SASRecModel

SMALL = ["--set", "epochs=1", "--set", "n_factors=8", "--set", "n_heads=2", "--set", "session_max_len=8",
         "--set", "batch_size=32", "--set", "random_state=0"]


def write_log(folder):
    """A small log with the caller's own column names: 30 users, 24 items, times as ISO strings."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(4, 12, 30)
    users = np.repeat(np.arange(30), lengths)
    items = rng.integers(0, 24, len(users))
    times = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(len(users)), unit="min")
    log = pd.DataFrame({"uid": users + 100, "movie": items, "when": times.strftime("%Y-%m-%dT%H:%M:%S"),
                        "stars": rng.integers(1, 6, len(users)).astype(float)})
    log.to_csv(folder / "log.csv", index=False)
    # one row per item, several genres in a cell; item 30 has features only (a cold item)
    genres = [f"g{i % 4}|g{4 + i % 3}" for i in range(31)]
    pd.DataFrame({"movie": np.r_[np.arange(24), np.arange(24, 31)], "genres": genres}).to_csv(
        folder / "movies.csv", index=False)
    return log


DATA = ["--user-col", "uid", "--item-col", "movie", "--time-col", "when", "--weight-col", "stars"]


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One training run shared by the tests that read it: ids + genres, leave-one-out validation."""
    folder = tmp_path_factory.mktemp("cli")
    log = write_log(folder)
    code = main(["train", "--data", str(folder / "log.csv"), *DATA, "--item-features", str(folder / "movies.csv"),
                 "--cat-features", "genres", "--feature-sep", "|", "--model", "sasrec", "--val", "loo",
                 *SMALL, "--set", "epochs=2", "--no-progress", "--out", str(folder / "run")])
    assert code == 0
    return folder, log


def test_train_writes_the_run_folder(trained):
    folder, log = trained
    run_dir = folder / "run"
    model = load_model(run_dir / "model.seqrec")
    assert isinstance(model, SASRecModel) and model.n_factors == 8 and model.epochs == 2
    # the resolved config is the saved model's, and builds the same model
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config == model.get_config(simple_types=True)
    assert config["get_val_mask_func"] == "seqrec.validation.leave_one_out_mask"  # --val loo
    assert config["get_trainer_func"] is None  # the command line's trainer is not part of the model
    history = pd.read_csv(run_dir / "history.csv")
    assert len(history) == 2 and {"train_loss", "val_loss", "val_ndcg@10"} <= set(history.columns)
    np.testing.assert_allclose(history["train_loss"], model.history_["train_loss"], rtol=1e-6)
    # Lightning's CSV log of the run
    metrics = pd.read_csv(run_dir / "logs" / "version_0" / "metrics.csv")
    assert "train_loss" in metrics.columns and metrics["train_loss"].notna().sum() == 2
    stored = json.loads((run_dir / "run.json").read_text())
    assert stored["model"] == "sasrec"
    options = stored["data_options"]
    assert (options["user_col"], options["item_col"], options["time_col"], options["weight_col"]) == \
        ("uid", "movie", "when", "stars")
    assert options["cat_features"] == ["genres"] and options["feature_sep"] == "|"
    assert options["item_features"].endswith("movies.csv")
    # the model learned the items of the log, with external ids as in the file
    assert set(model.item_id_map_.external_ids) <= set(log["movie"])


def test_recommend_matches_the_python_api(trained, capsys, tmp_path):
    folder, log = trained
    pd.DataFrame({"uid": [100, 105, 107, 999]}).to_csv(tmp_path / "users.csv", index=False)
    code, out, err = run(capsys, "recommend", "--model", folder / "run", "--users", tmp_path / "users.csv",
                         "--k", 5, "--filter-viewed", "--out", tmp_path / "recos.parquet")
    assert code == 0, err
    assert "999" in err and "warning" in err  # the unknown user is skipped with a one-line warning
    assert "Traceback" not in err
    reco = pd.read_parquet(tmp_path / "recos.parquet")
    assert list(reco.columns) == list(Columns.Recommendations)
    assert reco.groupby(Columns.User)[Columns.Rank].apply(list).to_dict() == {u: [1, 2, 3, 4, 5]
                                                                              for u in (100, 105, 107)}
    seen = set(zip(log["uid"], log["movie"]))
    assert not any((u, i) in seen for u, i in zip(reco[Columns.User], reco[Columns.Item]))  # --filter-viewed
    # the same recommendations as the Python API on the same data
    from seqrec import Dataset, read_interactions

    model = load_model(folder / "run" / "model.seqrec")
    dataset = Dataset.construct(read_interactions(folder / "log.csv", "uid", "movie", "when", "stars"))
    expected = model.recommend([100, 105, 107], dataset, k=5, filter_viewed=True)
    pd.testing.assert_frame_equal(reco[[Columns.User, Columns.Item, Columns.Rank]].reset_index(drop=True),
                                  expected[[Columns.User, Columns.Item, Columns.Rank]].reset_index(drop=True),
                                  check_dtype=False)


def test_recommend_all_users_and_ids_given_as_text(trained, capsys, tmp_path):
    folder, log = trained
    code, _, err = run(capsys, "recommend", "--model", folder / "run", "--all", "--k", 3, "--out", tmp_path / "a.csv")
    assert code == 0, err
    reco = pd.read_csv(tmp_path / "a.csv")
    assert set(reco[Columns.User]) == set(log["uid"]) and len(reco) == 3 * log["uid"].nunique()
    code, _, err = run(capsys, "recommend", "--model", folder / "run", "--user-ids", "101,102", "--k", 3,
                       "--out", tmp_path / "b.csv")
    assert code == 0, err
    assert pd.read_csv(tmp_path / "b.csv")[Columns.User].tolist() == [101] * 3 + [102] * 3


def test_similar_items_with_a_cold_item(trained, capsys, tmp_path):
    folder, _ = trained
    code, out, err = run(capsys, "similar-items", "--model", folder / "run", "--item-ids", "1,30", "--k", 4,
                         "--out", tmp_path / "sim.csv")
    assert code == 0, err
    sim = pd.read_csv(tmp_path / "sim.csv")
    assert list(sim.columns) == list(Columns.ItemItemRecommendations)
    # item 30 has genres only: the model scores it from them (run.json brought the item features back)
    assert sim.groupby(Columns.TargetItem).size().to_dict() == {1: 4, 30: 4}
    assert not (sim[Columns.TargetItem] == sim[Columns.Item]).any()  # filter_itself by default
    assert "8 similar items for 2 of 2 items" in out


def test_config_round_trip_and_set_overrides(trained, capsys, tmp_path):
    folder, _ = trained
    config_path = folder / "run" / "config.yaml"
    as_json = tmp_path / "config.json"
    as_json.write_text(json.dumps(yaml.safe_load(config_path.read_text())))
    code, _, err = run(capsys, "train", "--data", folder / "log.csv", *DATA, "--config", as_json, "--set", "epochs=1",
                       "--set", "lr=2e-3", "--set", "get_val_mask_func_kwargs.val_users=10", "--no-progress",
                       "--out", tmp_path / "again")
    assert code == 0, err
    before = yaml.safe_load(config_path.read_text())
    after = yaml.safe_load((tmp_path / "again" / "config.yaml").read_text())
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"epochs", "lr", "get_val_mask_func_kwargs"}
    assert after["lr"] == 0.002 and after["get_val_mask_func_kwargs"] == {"val_users": 10}
    # the model was trained on the ids only: the second run's data options have no item features
    assert json.loads((tmp_path / "again" / "run.json").read_text())["data_options"]["item_features"] is None


def test_val_option_over_a_config(trained, tmp_path):
    folder, _ = trained
    config = str(folder / "run" / "config.yaml")  # written by a --val loo run
    assert build_model(None, config, []).get_val_mask_func.__name__ == "leave_one_out_mask"  # kept
    assert build_model(None, config, [], val="none").get_val_mask_func is None  # removed
    assert build_model("sasrec", None, [], val="loo").get_val_mask_func.__name__ == "leave_one_out_mask"
    with pytest.raises(ValueError, match=r"--model bert4rec contradicts the config's cls 'SASRecModel'"):
        build_model("bert4rec", config, [])


def test_apply_overrides_types_values_and_replaces_nested_keys():
    params = SASRecModel().get_params(simple_types=True)
    out = apply_overrides(params, ["lr=1e-3", "epochs=7", "deterministic=true", "similarity=cosine",
                                   "random_state=null", "item_net_block_types=[seqrec.nn.item_net.IdEmbeddingsItemNet]",
                                   "get_trainer_func_kwargs.x=1", "get_trainer_func_kwargs={y: 2}"], SASRecModel)
    assert out["lr"] == 0.001 and isinstance(out["lr"], float)
    assert out["epochs"] == 7 and out["deterministic"] is True and out["random_state"] is None
    assert out["similarity"] == "cosine"
    assert out["item_net_block_types"] == ["seqrec.nn.item_net.IdEmbeddingsItemNet"]
    assert out["get_trainer_func_kwargs"] == {"y": 2} and "get_trainer_func_kwargs.x" not in out
    assert params["epochs"] == 3  # the input is not modified


def test_read_config_file_accepts_flat_keys_and_refuses_other_forms(tmp_path):
    flat = tmp_path / "flat.yaml"
    flat.write_text("cls: SASRecModel\nsimilarity_module_kwargs.distance: cosine\n")
    assert read_config_file(str(flat)) == {"cls": "SASRecModel", "similarity_module_kwargs": {"distance": "cosine"}}
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        read_config_file(str(tmp_path / "list.yaml"))
    (tmp_path / "c.toml").write_text("")
    with pytest.raises(ValueError, match="unknown file type '.toml'"):
        read_config_file(str(tmp_path / "c.toml"))


@pytest.mark.parametrize("args, message", [
    ([], "Missing option '--data'"),
    (["--data", "{folder}/absent.csv"], "no such file"),
    (["--data", "{folder}/log.csv", "--user-col", "user"], "user column 'user' not found"),
    (["--data", "{folder}/log.csv", *DATA, "--model", "gru4rec"], "unknown model 'gru4rec'; allowed: ["),
    (["--data", "{folder}/log.csv", *DATA, "--config", "{folder}/bad.yaml"], "Unknown config key(s) ['n_layers']"),
    (["--data", "{folder}/log.csv", *DATA, "--config", "{folder}/absent.yaml"], "--config: no such file"),
    (["--data", "{folder}/log.csv", *DATA, "--set", "n_factor=8"], "unknown parameter 'n_factor'"),
    (["--data", "{folder}/log.csv", *DATA, "--set", "epochs"], "expected key=value"),
    (["--data", "{folder}/log.csv", *DATA, "--set", "epochs=[1"], "--set epochs: cannot read '[1'"),
    (["--data", "{folder}/log.csv", *DATA, "--set", "epochs=0"], "epochs must be a positive integer"),
    (["--data", "{folder}/log.csv", *DATA, "--set", "lr.x=1"], "'lr' takes a plain value"),
    (["--data", "{folder}/log.csv", *DATA, "--val", "kfold"], "--val: unknown validation 'kfold'"),
    (["--data", "{folder}/log.csv", *DATA, "--cat-features", "genres"], "given without --item-features"),
    (["--data", "{folder}/log.csv", *DATA, "--epochs", "3"], "No such option: --epochs"),
])
def test_train_errors_are_one_line(args, message, capsys, tmp_path):
    (tmp_path / "log.csv").write_text("uid,movie,when,stars\n1,2,2024-01-01,1\n1,3,2024-01-02,1\n")
    (tmp_path / "bad.yaml").write_text("n_layers: 2\n")
    out_dir = tmp_path / "out"
    code, _, err = run(capsys, "train", *[a.format(folder=tmp_path) for a in args], "--out", out_dir)
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("seqrec: error: ") and "Traceback" not in err
    assert message in err
    assert not out_dir.exists()  # nothing is written before the input is valid


@pytest.mark.parametrize("command", [
    ["recommend", "--model", "{run}", "--out", "{tmp}/r.csv"],  # no users
    ["recommend", "--model", "{run}", "--all", "--user-ids", "1", "--out", "{tmp}/r.csv"],
    ["recommend", "--model", "{tmp}/absent", "--all", "--out", "{tmp}/r.csv"],
    ["recommend", "--model", "{tmp}/garbage.seqrec", "--all", "--out", "{tmp}/r.csv"],
    ["recommend", "--model", "{run}", "--all", "--k", "many", "--out", "{tmp}/r.csv"],
    ["recommend", "--model", "{run}", "--all", "--out", "{tmp}/r.xlsx"],
    ["recommend", "--model", "{run}", "--user-ids", "999", "--on-unsupported", "raise", "--out", "{tmp}/r.csv"],
    ["similar-items", "--model", "{run}", "--items", "{tmp}/absent.csv", "--out", "{tmp}/s.csv"],
    ["evaluate", "--model", "{run}", "--split", "random", "--out", "{tmp}/rep"],
    ["evaluate", "--model", "{run}", "--split", "time", "--out", "{tmp}/rep"],  # the report's rule: no bare time
    ["evaluate", "--model", "{run}", "--split", "time:2024-13-01", "--out", "{tmp}/rep"],
    ["train", "--data", "x.csv", "--out", "{tmp}/o", "--logger", "wandb"],
    ["no-such-command"],
])
def test_other_errors_are_one_line(command, trained, capsys, tmp_path):
    folder, _ = trained
    (tmp_path / "garbage.seqrec").write_bytes(b"not a zip")
    code, _, err = run(capsys, *[a.format(run=folder / "run", tmp=tmp_path) for a in command])
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("seqrec: error: ") and "Traceback" not in err


@pytest.mark.parametrize("logger, packages", [("tensorboard", ("tensorboard", "tensorboardX")), ("mlflow", ("mlflow",))])
def test_missing_logger_package_is_a_clear_error(logger, packages, capsys, tmp_path):
    if any(importlib.util.find_spec(p) for p in packages):
        pytest.skip(f"{packages[0]} is installed")
    write_log(tmp_path)
    code, _, err = run(capsys, "train", "--data", tmp_path / "log.csv", *DATA, "--logger", logger,
                       "--out", tmp_path / "run")
    assert code == 1 and f"--logger {logger} needs the {packages[0]} package" in err
    assert not (tmp_path / "run").exists()


def test_python_m_seqrec_reports_one_line_and_the_exit_code(monkeypatch, capsys, tmp_path):
    import runpy

    monkeypatch.setattr("sys.argv", ["seqrec", "train", "--data", str(tmp_path / "absent.csv"),
                                     "--out", str(tmp_path / "run")])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("seqrec", run_name="__main__")  # what `python -m seqrec` runs
    err = capsys.readouterr().err
    assert done.value.code == 1
    assert err.startswith("seqrec: error: interactions: no such file") and err.count("\n") == 1


def test_tensorboard_logger_when_installed(capsys, tmp_path):
    if not (importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")):
        pytest.skip("tensorboard is not installed")
    write_log(tmp_path)
    code, _, err = run(capsys, "train", "--data", tmp_path / "log.csv", *DATA, *SMALL, "--logger", "tensorboard",
                       "--no-progress", "--out", tmp_path / "run")
    assert code == 0, err
    assert any((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents*"))
    assert (tmp_path / "run" / "logs" / "version_0" / "metrics.csv").is_file()  # the CSV log as well


def test_train_bert4rec_on_standard_columns_with_progress_bar(capsys, tmp_path):
    log = write_log(tmp_path)
    standard = log.rename(columns={"uid": "user_id", "movie": "item_id", "when": "datetime"}).drop(columns="stars")
    standard.to_parquet(tmp_path / "log.parquet")
    code, out, err = run(capsys, "train", "--data", tmp_path / "log.parquet", "--model", "bert4rec", *SMALL,
                         "--out", tmp_path / "run")
    assert code == 0, err
    assert "training bert4rec" in out and "saved" in out
    assert type(load_model(tmp_path / "run" / "model.seqrec")).__name__ == "BERT4RecModel"
    assert json.loads((tmp_path / "run" / "run.json").read_text())["data_options"]["time_col"] is None


def test_model_classes_come_from_the_installed_models():
    classes = model_classes()
    assert classes["sasrec"] is SASRecModel and classes["bert4rec"].__name__ == "BERT4RecModel"
    assert ("hstu" in classes) == (importlib.util.find_spec("seqrec.models.hstu") is not None)


@pytest.mark.parametrize("command", ["train", "recommend", "similar-items", "evaluate", "export", "demo"])
def test_every_command_has_help_with_an_example(command, capsys):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert f"seqrec {command}" in out and "Example" in out


def test_demo_prints_the_verdict(monkeypatch, capsys):
    import seqrec.demo

    calls = {}

    def fake_run_demo(epochs, seed, progress):
        calls.update(epochs=epochs, seed=seed, progress=progress)
        return {"SASRec (ids + genres)": {"HR@10": 0.3, "NDCG@10": 0.2}, "Popularity": {"HR@10": 0.1, "NDCG@10": 0.05}}

    monkeypatch.setattr(seqrec.demo, "run_demo", fake_run_demo)
    code, out, _ = run(capsys, "demo", "--epochs", 2, "--no-progress")
    assert code == 0 and calls == {"epochs": 2, "seed": 42, "progress": False}
    assert "SASRec beats popularity on HR@10 and NDCG@10" in out


def test_evaluate(trained, capsys, tmp_path):
    pytest.importorskip("seqrec.report")
    folder, _ = trained
    code, out, err = run(capsys, "evaluate", "--model", folder / "run", "--split", "loo", "--k", 5, "--no-refit",
                         "--out", tmp_path / "report")
    assert code == 0, err
    assert (tmp_path / "report").is_dir() and any((tmp_path / "report").iterdir())
    assert "report written to" in out
    # one table: a row per metric, a column per model, the values those of metrics.json
    header = next(line for line in out.splitlines() if line.startswith("metric"))
    assert header.split() == ["metric", "model", "popular"]
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    hr = next(line for line in out.splitlines() if line.startswith("hr@5"))
    assert [float(x) for x in hr.split()[1:]] == pytest.approx(
        [saved["metrics"]["model"]["hr@5"], saved["metrics"]["popular"]["hr@5"]], abs=1e-4)


def test_export(trained, capsys, tmp_path):
    pytest.importorskip("seqrec.export")
    pytest.importorskip("onnx")
    folder, _ = trained
    code, out, err = run(capsys, "export", "--model", folder / "run", "--out", tmp_path / "model.onnx")
    assert code == 0, err
    assert (tmp_path / "model.onnx").stat().st_size > 0


def test_bare_command_prints_the_help_once(capsys):
    code, out, err = run(capsys)
    assert code == 0 and out.count("Usage: seqrec") == 1 and "similar-items" in out and err == ""
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip().startswith("seqrec ")


def test_the_split_is_checked_by_the_reports_rule():
    """One rule for the CLI and seqrec.report: a numeric boundary passes the CLI's early check (the
    report reads it against a numeric datetime column), a bare "time" fails both."""
    from seqrec import cli, report

    for split in ("loo", "time:2024-01-01", "time:1700000000"):
        assert cli._check_split(split) == report.check_split(split) == split
    for split in ("time", "time:", "LOO"):
        with pytest.raises(ValueError):
            report.check_split(split)
        with pytest.raises(cli.CliError, match="loo"):
            cli._check_split(split)
