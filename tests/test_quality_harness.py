"""The benchmark harness: early stopping (patience, best weights restored) and pooling the seeds of separate runs."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqrec import Columns, Dataset, SASRecModel, leave_one_out_mask
from seqrec.nn.item_net import IdEmbeddingsItemNet

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("quality", ROOT / "benchmarks" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _data():
    # 60 users walking a cycle of 12 items: the next item is predictable
    rng = np.random.default_rng(0)
    rows = []
    for user in range(60):
        start = int(rng.integers(0, 12))
        rows += [(user, (start + t) % 12) for t in range(8)]
    return pd.DataFrame(rows, columns=[Columns.User, Columns.Item])


def test_progress_log_records_the_models_validation_and_stops_on_the_time_budget(quality, tmp_path):
    ds = Dataset.construct(_data())
    model = SASRecModel(n_factors=16, n_heads=1, n_blocks=1, session_max_len=8, batch_size=16, epochs=8, lr=0.05,
                        item_net_block_types=(IdEmbeddingsItemNet,), random_state=0, recommend_torch_device="cpu",
                        get_val_mask_func=leave_one_out_mask)
    cb = quality.ProgressLog(tmp_path / "p.jsonl", "t")
    model.set_params(get_trainer_func=quality.make_trainer_factory(model, cb, 3, "cpu"))
    model.fit(ds)
    assert [h["epoch"] for h in cb.history] == [1, 2, 3]
    assert [h["val_ndcg@10"] for h in cb.history] == pytest.approx(model.history_["val_ndcg@10"].tolist())
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 3
    budget = quality.ProgressLog(None, "t", time_budget_s=0.0)  # spent after the first epoch
    model.set_params(get_trainer_func=quality.make_trainer_factory(model, budget, 5, "cpu"))
    model.fit(ds)
    assert len(budget.history) == 1 and budget.stopped_by_budget


def test_quick_flags_do_not_override_explicit_ones(quality):
    args = quality.parse_args(["--quick", "--max-epochs", "7"])
    assert args.dataset == "ml-latest-small" and args.max_epochs == 7 and args.patience == 2
    with pytest.raises(SystemExit):
        quality.parse_args(["--patience", "0"])


def test_max_epochs_default_is_a_decaying_presets_schedule_length(quality):
    assert quality.parse_args([]).max_epochs == 100  # sasrec-ml-1m: constant rate
    args = quality.parse_args(["--dataset", "beauty", "--preset", "sasrec-beauty-features"])
    assert args.max_epochs == 50 and quality.model_params(args)["lr_schedule"] == "cosine"
    assert quality.parse_args(["--dataset", "beauty", "--lr-schedule", "cosine"]).max_epochs == 200
    assert quality.parse_args(["--preset", "sasrec-beauty-features", "--max-epochs", "9"]).max_epochs == 9


def test_preset_option_starts_from_the_named_preset(quality):
    args = quality.parse_args(["--preset", "sasrec-ml-1m-gbce", "--lr", "0.001"])
    params = quality.model_params(args)
    assert params["loss"] == "gBCE" and params["n_negatives"] == 256 and params["lr"] == 0.001
    assert quality.model_params(quality.parse_args([]))["loss"] == "softmax"  # sasrec-ml-1m
    for bad in (["--preset", "sasrec-ml-2m"], ["--model", "bert4rec", "--preset", "sasrec-ml-1m"]):
        with pytest.raises(SystemExit):
            quality.parse_args(bad)


def _results(tmp_path, name, seeds, lr=0.002, max_epochs=100, ndcg=None):
    """A results folder as quality.py writes it, with made-up metrics per seed."""
    runs = []
    for i, seed in enumerate(seeds):
        value = ndcg[i] if ndcg else 0.1 + seed / 100
        runs.append({"implementation": "seqrec", "seed": seed, "metrics": {"HR@10": 2 * value, "NDCG@10": value},
                     "best_epoch": 10 + seed, "epochs_run": 20, "stopped_by": "patience", "fit_s": 100.0,
                     "curve": [{"epoch": 1, "val_ndcg@10": value}],
                     "params": {"n_factors": 64, "lr": lr, "loss": "softmax", "epochs": max_epochs}})
    config = {"dataset": "ml-1m", "max_users": 0, "model": "sasrec", "item_features": False, "val_users": 0,
              "val_seed": 0, "max_epochs": max_epochs, "patience": 10, "time_budget_min": None,
              "rectools_epochs": None, "name": name, "dataset_label": "ml-1m", "loss": "softmax", "seeds": seeds}
    results = {"config": config, "command": f"python benchmarks/quality.py --name {name}", "hardware": "cpu",
               "torch": "2", "data": {"n_items": 5, "n_test_users": 3, "n_val_users": 3}, "runs": runs,
               "wall_s": 50.0}
    (tmp_path / name).mkdir()
    (tmp_path / name / "results.json").write_text(json.dumps(results))
    return tmp_path / name


def test_merge_pools_seeds_of_separate_runs(quality, tmp_path):
    a = _results(tmp_path, "a", [0], ndcg=[0.18])
    b = _results(tmp_path, "b", [1, 2], max_epochs=34, ndcg=[0.17, 0.19])
    pooled = quality.main(["--merge", str(a), str(b), "--name", "pooled", "--out-dir", str(tmp_path)])
    summary = pooled["summary"]["seqrec"]["NDCG@10"]
    assert summary["mean"] == pytest.approx(0.18)
    assert summary["std"] == pytest.approx(np.std([0.18, 0.17, 0.19], ddof=1))
    assert pooled["config"]["seeds"] == [0, 1, 2] and [r["source"] for r in pooled["runs"]] == ["a", "b", "b"]
    table = (tmp_path / "pooled" / "table.md").read_text()
    assert "0.1800 ± 0.0100" in table and "--name a" in table and "--name b" in table
    assert "max_epochs 100 / 34" in table  # the stopping rules that differ are named
    assert (tmp_path / "pooled" / "curves.png").stat().st_size > 0


def test_merge_refuses_other_setups_and_repeated_seeds(quality, tmp_path):
    a = _results(tmp_path, "a", [0])
    with pytest.raises(SystemExit, match="lr=0.001.*lr=0.002"):
        quality.main(["--merge", str(a), str(_results(tmp_path, "b", [1], lr=0.001)), "--name", "p",
                      "--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="seed 0 of seqrec appears twice"):
        quality.main(["--merge", str(a), str(_results(tmp_path, "c", [0])), "--name", "p",
                      "--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="needs --name"):
        quality.main(["--merge", str(a)])
