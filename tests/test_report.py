"""The evaluation report (seqrec.report.run_evaluation): files, self-containment, its numbers
against seqrec.metrics on the same recommendations, the split options and their errors."""

import base64
import copy
import json
import shutil
import subprocess
import warnings
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")

from conftest import make_cycle_interactions  # noqa: E402

from seqrec import Columns, Dataset, IdEmbeddingsItemNet, PopularModel, SASRecModel, leave_one_out_mask  # noqa: E402
from seqrec.metrics import NDCG, HitRate, Recall, calc_metrics  # noqa: E402
from seqrec.report import _fmt, _metric_defs, run_evaluation  # noqa: E402
from seqrec.splits import last_n_split, time_split  # noqa: E402

K = 5
FIGURES = ("metrics", "learning_curves", "by_history_length", "long_tail", "coverage")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_model(**kwargs):
    params = dict(n_factors=16, n_blocks=1, n_heads=1, session_max_len=16, epochs=1, batch_size=64,
                  item_net_block_types=(IdEmbeddingsItemNet,), random_state=0, deterministic=True)
    params.update(kwargs)
    return SASRecModel(**params)


@pytest.fixture(scope="module")
def df():
    # 24 items so that filter_viewed leaves candidates to every user (histories of at most 16)
    return make_cycle_interactions(n_users=80, n_items=24, seed=3, min_len=3, max_len=16)


@pytest.fixture(scope="module")
def loo_run(df, tmp_path_factory):
    """One report with the defaults (refit=True, loo), of an unfitted model with validation."""
    before = df.copy(deep=True)
    model = small_model(epochs=2, get_val_mask_func=leave_one_out_mask)
    out = tmp_path_factory.mktemp("loo")
    result = run_evaluation(model, df, out, k=K)
    return {"out": out, "result": result, "model": model, "before": before}


@pytest.fixture(scope="module")
def fitted(df):
    model = small_model()
    model.fit(Dataset.construct(df))
    return model


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []  # (tag, attribute, value)

    def handle_starttag(self, tag, attrs):
        self.tags = getattr(self, "tags", []) + [tag]
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "poster", "action") and value is not None:
                self.refs.append((tag, name, value))


def test_files_are_written(loo_run):
    out = loo_run["out"]
    for name in FIGURES:
        data = (out / f"{name}.png").read_bytes()
        assert data.startswith(PNG_MAGIC), name
    for name in ("report.html", "metrics.csv", "metrics.json", "recommendations.csv"):
        assert (out / name).stat().st_size > 0, name
    import matplotlib.image

    for name in FIGURES:
        image = matplotlib.image.imread(out / f"{name}.png")  # (H, W, 4)
        assert image.shape[0] > 300 and image.shape[1] > 600, name
        assert image[..., :3].std() > 0.05, name  # not a blank canvas


def test_html_is_self_contained(loo_run):
    out = loo_run["out"]
    page = (out / "report.html").read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(page)
    assert "link" not in parser.tags and "script" not in parser.tags and "iframe" not in parser.tags
    imgs = [v for tag, name, v in parser.refs if tag == "img" and name == "src"]
    assert len(imgs) == len(FIGURES)
    assert len(parser.refs) == len(imgs)  # nothing else points anywhere
    prefix = "data:image/png;base64,"
    pngs = {(out / f"{name}.png").read_bytes() for name in FIGURES}
    for src in imgs:
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix):]) in pngs  # the same figures as the PNG files
    lowered = page.lower()
    assert "http://" not in lowered and "https://" not in lowered and "url(" not in lowered


def test_metrics_equal_seqrec_metrics_on_the_same_recommendations(df, loo_run):
    out, result = loo_run["out"], loo_run["result"]
    train, test = last_n_split(df, n=1)
    reco = pd.read_csv(out / "recommendations.csv")
    assert set(reco["model"]) == {"model", "popular"}
    metrics = {n: m for n, (m, _) in _metric_defs(K).items()}
    page = (out / "report.html").read_text(encoding="utf-8")
    csv = pd.read_csv(out / "metrics.csv").set_index("metric")
    stored = json.loads((out / "metrics.json").read_text())
    for who in ("model", "popular"):
        rows = reco[reco["model"] == who].drop(columns="model")
        direct = calc_metrics(metrics, rows, test, prev_interactions=train, catalog=train[Columns.Item].unique())
        assert result[who].keys() == direct.keys()
        for name, value in direct.items():
            assert result[who][name] == pytest.approx(value, rel=1e-12, abs=1e-12), (who, name)
            assert csv.loc[name, who] == pytest.approx(value, rel=1e-9), (who, name)
            assert stored["metrics"][who][name] == pytest.approx(value, rel=1e-12), (who, name)
            assert f">{_fmt(value)}<" in page, (who, name)
    # the recommendations are what the report says: top-k of the test users, viewed items filtered
    assert stored["n_test_users"] == test[Columns.User].nunique() and stored["n_train_rows"] == len(train)
    assert reco.groupby(["model", Columns.User]).size().max() <= K
    seen = set(zip(train[Columns.User], train[Columns.Item]))
    assert not any(pair in seen for pair in zip(reco[Columns.User], reco[Columns.Item]))
    # the baseline is PopularModel fitted on the training part
    dataset = Dataset.construct(train)
    expected = PopularModel().fit(dataset).recommend(test[Columns.User].unique(), dataset, k=K, filter_viewed=True)
    got = reco[reco["model"] == "popular"]
    assert list(zip(got[Columns.User], got[Columns.Item], got[Columns.Rank])) == list(
        zip(expected[Columns.User], expected[Columns.Item], expected[Columns.Rank]))


def test_quality_by_history_length_matches_per_user_metrics(df, loo_run):
    out = loo_run["out"]
    train, test = last_n_split(df, n=1)
    reco = pd.read_csv(out / "recommendations.csv")
    table = pd.DataFrame(json.loads((out / "metrics.json").read_text())["by_history_length"])
    lengths = train.groupby(Columns.User).size().reindex(test[Columns.User].unique())
    assert table["n_users"].sum() == len(lengths) and len(table) >= 3
    for who in ("model", "popular"):
        rows = reco[reco["model"] == who].drop(columns="model")
        for name, metric in ((f"hr@{K}", HitRate(K)), (f"ndcg@{K}", NDCG(K))):
            per_user = metric.calc_per_user(rows, test).reindex(lengths.index)
            for bucket in table.itertuples():
                lo, _, hi = bucket.bucket.partition("-")
                inside = (lengths >= int(lo)) & (lengths <= int(hi or lo))
                assert inside.sum() == bucket.n_users
                assert table.loc[bucket.Index, f"{who}_{name}"] == pytest.approx(per_user[inside].mean())


def test_refit_fits_a_copy_and_keeps_the_input(df, loo_run):
    pd.testing.assert_frame_equal(df, loo_run["before"])  # the caller's DataFrame is unchanged
    assert not hasattr(loo_run["model"], "item_id_map_")  # the given model was not fitted
    stored = json.loads((loo_run["out"] / "metrics.json").read_text())
    assert stored["refit"] is True and stored["split"] == "loo"


@pytest.fixture(scope="module")
def time_df(df):
    # one day per step: rows at or after 2024-01-08 (step 7 and later) are the test rows
    out = df.copy()
    out[Columns.Datetime] = pd.Timestamp("2024-01-01") + (out[Columns.Datetime] - pd.Timestamp("2024-01-01")) * 24
    return out


@pytest.fixture(scope="module")
def time_run(time_df, fitted, tmp_path_factory):
    """A report of the fitted model as it is (refit=False) on a time split."""
    before = time_df.copy(deep=True)
    out = tmp_path_factory.mktemp("time")
    with pytest.warns(UserWarning, match="refit=False: the model is evaluated as it is"):
        result = run_evaluation(fitted, time_df, out, split="time:2024-01-08", k=K, refit=False)
    return {"out": out, "result": result, "before": before}


def test_refit_false_warns_and_says_so_in_the_report(time_df, fitted, time_run):
    out, result = time_run["out"], time_run["result"]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'class="warning"' in page and "refit=False" in page
    assert json.loads((out / "metrics.json").read_text())["refit"] is False
    pd.testing.assert_frame_equal(time_df, time_run["before"])
    # the given model (trained on every row, test included) recommends as it is
    train, test = time_split(time_df, pd.Timestamp("2024-01-08"))
    direct = fitted.recommend(test[Columns.User].unique(), Dataset.construct(train), k=K, filter_viewed=True,
                              on_unsupported_targets="ignore")
    assert result["model"][f"recall@{K}"] == pytest.approx(calc_metrics({"r": Recall(K)}, direct, test)["r"])


def test_time_split_uses_the_rows_at_or_after_the_date(time_df, time_run):
    out = time_run["out"]
    train, test = time_split(time_df, pd.Timestamp("2024-01-08"))
    assert (train[Columns.Datetime] < pd.Timestamp("2024-01-08")).all()
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["split"] == "time:2024-01-08"
    # several test rows per user
    assert stored["n_test_rows"] == len(test) > stored["n_test_users"] == test[Columns.User].nunique()
    assert stored["n_train_rows"] == len(train)
    reco = pd.read_csv(out / "recommendations.csv")
    assert set(reco[Columns.User]) == set(test[Columns.User])
    for who in ("model", "popular"):
        rows = reco[reco["model"] == who].drop(columns="model")
        direct = calc_metrics({n: m for n, (m, _) in _metric_defs(K).items()}, rows, test,
                              prev_interactions=train, catalog=train[Columns.Item].unique())
        assert stored["metrics"][who] == pytest.approx(direct)


def test_refit_false_needs_a_fitted_model(df, tmp_path):
    with pytest.raises(ValueError, match="refit=False needs a fitted model"):
        run_evaluation(small_model(), df, tmp_path, refit=False)


def test_without_history_there_are_no_learning_curves(df, fitted, tmp_path):
    model = copy.deepcopy(fitted)
    model.history_ = pd.DataFrame()
    (tmp_path / "learning_curves.png").write_bytes(b"stale")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_evaluation(model, df, tmp_path, k=K, refit=False)
    assert not (tmp_path / "learning_curves.png").exists()
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "no training history" in page and page.count("<img ") == len(FIGURES) - 1


@pytest.mark.parametrize("split", ["lo", "LOO", "time", "time:", "time:not-a-date", "random", 3, None])
def test_bad_split_is_a_clear_error(df, tmp_path, split):
    with pytest.raises(ValueError, match=r"split .*'loo' or 'time:YYYY-MM-DD'|split 'time.*not a date"):
        run_evaluation(small_model(), df, tmp_path, split=split)
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_k_is_a_clear_error(df, tmp_path, k):
    with pytest.raises(ValueError, match="k must be an integer"):
        run_evaluation(small_model(), df, tmp_path, k=k)


def test_time_split_without_test_rows_is_a_clear_error(df, tmp_path):
    late = (df[Columns.Datetime].max() + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    with pytest.raises(ValueError, match=rf"split 'time:{late}' leaves no test rows: the latest interaction"):
        run_evaluation(small_model(), df, tmp_path, split=f"time:{late}")
    early = (df[Columns.Datetime].min() - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    with pytest.raises(ValueError, match="leaves no training rows"):
        run_evaluation(small_model(), df, tmp_path, split=f"time:{early}")


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(_chromium() is None, reason="no Chromium binary on PATH (apt-get install chromium) to render "
                                                "the report in a real browser")
def test_report_renders_in_chromium(loo_run, tmp_path):
    import matplotlib.image

    shot = tmp_path / "shot.png"
    page = (loo_run["out"] / "report.html").resolve()
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000", f"--screenshot={shot}",
           page.as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    image = matplotlib.image.imread(shot)[..., :3]  # (H, W, 3) in [0, 1]
    assert image.shape[:2] == (2000, 1200)
    assert (image.std(axis=2) > 0.1).mean() > 0.01  # coloured pixels: the figures were decoded and drawn
    blue = np.abs(image - np.array([0x1F, 0x77, 0xB4]) / 255).max(axis=2) < 0.06  # the model's bars
    assert blue.sum() > 2000
