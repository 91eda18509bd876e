"""The evaluation report: a model against a popularity baseline on a held-out split.

:func:`run_evaluation` splits an interactions log, fits the model (a fresh copy built from its
config, by default) and :class:`~seqrec.PopularModel` on the training part, recommends ``k``
items to the test users and writes into ``out_dir``:

- ``report.html``: one self-contained page (inline CSS, figures embedded as base64 PNG, no link
  to anything outside it);
- the figures as PNG files: ``metrics.png``, ``learning_curves.png`` (when the model has a
  training history), ``by_history_length.png``, ``long_tail.png``, ``coverage.png``;
- ``metrics.csv`` (one row per metric, one column per model) and ``metrics.json`` (the metrics
  and what the evaluation was run on);
- ``recommendations.csv``: the recommendations scored, ``model, user_id, item_id, rank``.

Metrics are :mod:`seqrec.metrics` (RecTools' definitions). Figures are drawn with matplotlib's
Agg canvas on :class:`matplotlib.figure.Figure` objects: pyplot and the global backend are never
touched. matplotlib is the ``report`` extra: ``pip install "seqrec[report]"``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import os
import typing as tp
import warnings

import numpy as np
import pandas as pd

from .columns import Columns
from .config import model_from_config
from .dataset import Dataset
from .metrics import (
    MAP,
    MRR,
    NDCG,
    AvgRecPopularity,
    CatalogCoverage,
    CoveredUsers,
    HitRate,
    MeanInvUserFreq,
    Recall,
    Serendipity,
    calc_metrics,
)
from .models.popular import PopularModel
from .splits import last_n_split, time_split

__all__ = ["run_evaluation"]

MODEL, POPULAR = "model", "popular"
SPLIT_FORMS = "'loo' or 'time:YYYY-MM-DD' (a number for a numeric datetime column)"
# the share of the catalog, by popularity rank, in each group of the long-tail bars
POPULARITY_GROUPS = ((0.0, 0.01, "top 1%"), (0.01, 0.1, "1-10%"), (0.1, 0.5, "10-50%"), (0.5, 1.0, "bottom 50%"))
COLORS = {MODEL: "#1f77b4", POPULAR: "#ff7f0e", "interactions": "#2ca02c", "catalog": "#7f7f7f"}
DPI = 110


# ----------------------------------------------------------------------------- inputs
def _check_inputs(interactions: tp.Any, k: tp.Any, refit: tp.Any) -> None:
    if not isinstance(interactions, pd.DataFrame):
        raise TypeError(f"interactions must be a pandas DataFrame, got {type(interactions).__name__}")
    missing = [c for c in (Columns.User, Columns.Item) if c not in interactions.columns]
    if missing:
        raise ValueError(f"interactions is missing required column(s) {missing}; it has {list(interactions.columns)}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if not isinstance(refit, (bool, np.bool_)):
        raise ValueError(f"refit must be True or False, got {refit!r}")


def check_split(split: tp.Any) -> str:
    """``split`` if it has one of the forms :func:`run_evaluation` accepts ("loo", "time:<date or
    number>"), else ValueError naming them; the boundary itself is read against the data's
    ``datetime`` column when the split is made."""
    if isinstance(split, str) and (split == "loo" or (split.startswith("time:") and split[5:].strip())):
        return split
    raise ValueError(f"split must be {SPLIT_FORMS}, got {split!r}")


def _split_date(split: str, column: pd.Series) -> tp.Any:
    """The boundary of ``"time:<date>"`` in the type of the ``datetime`` column."""
    text = split[len("time:"):].strip()  # not empty: check_split saw to it
    if pd.api.types.is_datetime64_any_dtype(column):
        try:
            ts = pd.Timestamp(text)
        except (ValueError, TypeError):
            raise ValueError(f"split {split!r}: {text!r} is not a date; expected {SPLIT_FORMS}") from None
        if ts is pd.NaT:
            raise ValueError(f"split {split!r}: {text!r} is not a date; expected {SPLIT_FORMS}")
        tz = column.dt.tz
        if tz is not None and ts.tzinfo is None:
            ts = ts.tz_localize(tz)  # a plain date is read in the column's time zone
        elif tz is None and ts.tzinfo is not None:
            raise ValueError(f"split {split!r} has a time zone but column '{Columns.Datetime}' has none")
        return ts
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"split {split!r}: column '{Columns.Datetime}' is numeric ({column.dtype}), so the "
                             f"boundary must be a number, got {text!r}") from None
    raise ValueError(f"column '{Columns.Datetime}' must hold datetimes or numbers for a time split, "
                     f"got dtype {column.dtype}")


def _split(interactions: pd.DataFrame, split: tp.Any) -> tp.Tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, test)`` of the split spec (new frames; the input is not modified)."""
    split = check_split(split)
    if split == "loo":
        train, test = last_n_split(interactions, n=1)  # users with one interaction stay in train
        if test.empty:
            raise ValueError("split 'loo' leaves no test rows: no user has two or more interactions")
        return train, test
    # "time:<boundary>", the only other form check_split lets through
    if Columns.Datetime not in interactions.columns:
        raise ValueError(f"split {split!r} needs a '{Columns.Datetime}' column; interactions has "
                         f"{list(interactions.columns)}")
    col = interactions[Columns.Datetime]
    boundary = _split_date(split, col)
    train, test = time_split(interactions, boundary)
    if train.empty:
        raise ValueError(f"split {split!r} leaves no training rows: the earliest interaction is at "
                         f"{col.min()}")
    if test.empty:
        raise ValueError(f"split {split!r} leaves no test rows: the latest interaction is at {col.max()}, "
                         "and test rows must be at or after the date, of users and items seen before it")
    return train, test


def _prepare_model(model: tp.Any, dataset: Dataset, refit: bool) -> tp.Any:
    for attr in ("get_config", "fit", "recommend"):
        if not callable(getattr(model, attr, None)):
            raise TypeError(f"model must be a seqrec model (with get_config, fit and recommend), got "
                            f"{type(model).__name__}")
    if refit:
        fresh = model_from_config(model.get_config())
        fresh.fit(dataset)
        return fresh
    if not hasattr(model, "item_id_map_"):
        raise ValueError("refit=False needs a fitted model; this one is not fitted (pass refit=True to fit a "
                         "copy on the training part)")
    return model


# ----------------------------------------------------------------------------- metrics
def _metric_defs(k: int) -> tp.Dict[str, tp.Tuple[tp.Any, str]]:
    """Name -> (metric, what it says), in the order of the report."""
    return {
        f"hr@{k}": (HitRate(k), "share of test users with at least one test item in the top-k"),
        f"recall@{k}": (Recall(k), "share of each user's test items found in the top-k, averaged over users"),
        f"ndcg@{k}": (NDCG(k), "NDCG, RecTools' convention: divided by the ideal DCG of k hits"),
        f"ndcg_achievable@{k}": (NDCG(k, divide_by_achievable=True),
                                 "NDCG, the papers' convention: divided by the ideal DCG of the achievable hits"),
        f"map@{k}": (MAP(k), "mean average precision (divided by the number of test items)"),
        f"mrr@{k}": (MRR(k), "mean reciprocal rank of the first hit"),
        f"covered_users@{k}": (CoveredUsers(k), "share of test users who got recommendations"),
        f"catalog_coverage@{k}": (CatalogCoverage(k, normalize=True),
                                  "share of the catalog (training items) recommended to someone"),
        f"serendipity@{k}": (Serendipity(k), "relevant and unpopular recommendations (RecTools' serendipity)"),
        f"avg_rec_popularity@{k}": (AvgRecPopularity(k),
                                    "mean number of training interactions of the recommended items"),
        f"mean_inv_user_freq@{k}": (MeanInvUserFreq(k),
                                    "novelty: mean -log2(share of training users) of the recommended items"),
    }


RELEVANCE_PREFIXES = ("hr@", "recall@", "ndcg@", "ndcg_achievable@", "map@", "mrr@")


# ----------------------------------------------------------------------------- figures
def _new_figure(width: float, height: float) -> tp.Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: tp.Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _style(ax: tp.Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=10)


def _fig_metrics(metrics: tp.Dict[str, tp.Dict[str, float]], labels: tp.Dict[str, str], k: int) -> bytes:
    names = [n for n in metrics[MODEL] if n.startswith(RELEVANCE_PREFIXES)]
    fig = _new_figure(8.5, 0.55 * len(names) + 1.6)
    ax = fig.add_subplot()
    y = np.arange(len(names))
    height = 0.38
    top = max(max(metrics[m][n] for n in names) for m in (MODEL, POPULAR))
    for j, who in enumerate((MODEL, POPULAR)):
        values = np.array([metrics[who][n] for n in names])
        bars = ax.barh(y + (j - 0.5) * height, values, height, label=labels[who], color=COLORS[who])
        ax.bar_label(bars, labels=[f"{v:.4f}" for v in values], padding=3, fontsize=9)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, max(top, 1e-6) * 1.22)
    ax.set_xlabel("metric value (higher is better)", fontsize=11)
    ax.set_title(f"Quality of the top-{k} on the test users", fontsize=13)
    ax.legend(loc="lower right", fontsize=10, frameon=False)
    _style(ax)
    return _png(fig)


def _fig_learning_curves(history: pd.DataFrame, best_epoch: tp.Any, label: str) -> tp.Optional[bytes]:
    if history is None or history.empty or "epoch" not in history.columns:
        return None
    losses = [c for c in ("train_loss", "val_loss") if c in history.columns and history[c].notna().any()]
    val_metrics = [c for c in history.columns if c.startswith(("val_hr@", "val_ndcg@")) and history[c].notna().any()]
    if not losses and not val_metrics:
        return None
    n_panels = int(bool(losses)) + int(bool(val_metrics))
    fig = _new_figure(5.2 * n_panels + 0.6, 4.2)
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    epochs = history["epoch"].to_numpy()
    panels = []
    if losses:
        panels.append((losses, "loss", "Loss per epoch"))
    if val_metrics:
        panels.append((val_metrics, "validation metric", "Validation metrics per epoch"))
    for ax, (columns, ylabel, title) in zip(axes, panels):
        for col in columns:
            ax.plot(epochs, history[col].to_numpy(dtype=float), marker="o", markersize=4, label=col)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="#555555", linestyle="--", linewidth=1, label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch", fontsize=11)
        ax.set_ylabel(ylabel, fontsize=11)
        ax.set_title(title, fontsize=12)
        _integer_ticks(ax.xaxis)
        ax.legend(fontsize=9, frameon=False)
        ax.grid(alpha=0.3)
        _style(ax)
    fig.suptitle(f"Training of {label}", fontsize=13)
    return _png(fig)


def _history_buckets(lengths: pd.Series, n_buckets: int = 5) -> pd.Series:
    """A label per user: quantile buckets of the training history length (integer edges)."""
    codes = pd.qcut(lengths.rank(method="first"), q=min(n_buckets, len(lengths)), labels=False)
    # buckets by rank split ties; merge buckets whose length ranges overlap so one length is one bucket
    lo = lengths.groupby(codes).min()
    hi = lengths.groupby(codes).max()
    edges = [lo.iloc[0]]
    for a in lo.iloc[1:]:
        if a > edges[-1]:
            edges.append(a)
    edges_arr = np.array(edges)
    bucket = np.searchsorted(edges_arr, lengths.to_numpy(), side="right") - 1
    upper = np.r_[edges_arr[1:] - 1, hi.max()]
    names = [f"{a}" if a == b else f"{a}-{b}" for a, b in zip(edges_arr, upper)]
    return pd.Series(pd.Categorical.from_codes(bucket, categories=names), index=lengths.index)


def _by_history_length(recos: tp.Dict[str, pd.DataFrame], train: pd.DataFrame, test: pd.DataFrame,
                       k: int) -> pd.DataFrame:
    """Per history-length bucket: number of users, HR@k and NDCG@k of each model."""
    lengths = train.groupby(Columns.User).size()
    test_users = pd.Index(pd.unique(test[Columns.User]))
    lengths = lengths.reindex(test_users).fillna(0).astype(np.int64)
    buckets = _history_buckets(lengths)
    rows = {"bucket": buckets.cat.categories, "n_users": buckets.value_counts(sort=False).to_numpy()}
    table = pd.DataFrame(rows)
    for who, reco in recos.items():
        for name, metric in ((f"hr@{k}", HitRate(k)), (f"ndcg@{k}", NDCG(k))):
            per_user = metric.calc_per_user(reco, test).reindex(test_users)
            means = per_user.groupby(buckets, observed=False).mean()  # by the categorical: bucket order
            table[f"{who}_{name}"] = means.reindex(buckets.cat.categories).to_numpy()
    return table


def _fig_by_history_length(table: pd.DataFrame, labels: tp.Dict[str, str], k: int) -> bytes:
    fig = _new_figure(11, 4.4)
    axes = fig.subplots(1, 2)
    x = np.arange(len(table))
    width = 0.38
    ticks = [f"{b}\n({n} users)" for b, n in zip(table["bucket"], table["n_users"])]
    for ax, name in zip(axes, (f"hr@{k}", f"ndcg@{k}")):
        for j, who in enumerate((MODEL, POPULAR)):
            ax.bar(x + (j - 0.5) * width, table[f"{who}_{name}"].to_numpy(), width, label=labels[who],
                   color=COLORS[who])
        ax.set_xticks(x, ticks, fontsize=9)
        ax.set_xlabel("training interactions of the test user", fontsize=11)
        ax.set_ylabel(name, fontsize=11)
        ax.set_title(f"{name.upper()} by history length", fontsize=12)
        ax.legend(fontsize=9, frameon=False)
        ax.grid(axis="y", alpha=0.3)
        _style(ax)
    return _png(fig)


def _popularity_ranks(train: pd.DataFrame) -> pd.Series:
    """Item -> popularity rank in the training part (1 = most interactions; ties by first appearance)."""
    counts = train[Columns.Item].value_counts(sort=False)
    order = np.argsort(-counts.to_numpy(), kind="stable")
    ranks = np.empty(len(counts), dtype=np.int64)
    ranks[order] = np.arange(1, len(counts) + 1)
    return pd.Series(ranks, index=counts.index)


def _long_tail(recos: tp.Dict[str, pd.DataFrame], train: pd.DataFrame) -> tp.Dict[str, tp.Any]:
    """Cumulative shares by the popularity rank of the items, and the shares of the groups."""
    ranks = _popularity_ranks(train)
    n_items = len(ranks)
    counts = train[Columns.Item].value_counts(sort=False).reindex(ranks.index).to_numpy()
    # (n_items,) training interactions of the item of each popularity rank
    by_rank = {"interactions": np.bincount(ranks.to_numpy() - 1, weights=counts, minlength=n_items)}
    by_rank["catalog"] = np.ones(n_items)
    outside = {}
    for who, reco in recos.items():
        r = reco[Columns.Item].map(ranks)
        outside[who] = int(r.isna().sum())  # recommended items absent from training (refit=False only)
        by_rank[who] = np.bincount(r.dropna().to_numpy(np.int64) - 1, minlength=n_items).astype(float)
    shares = {who: v / max(v.sum(), 1.0) for who, v in by_rank.items()}
    cum = {who: np.cumsum(s) for who, s in shares.items()}
    groups = []
    for lo, hi, name in POPULARITY_GROUPS:
        a, b = int(np.floor(lo * n_items)), int(np.floor(hi * n_items))
        groups.append((name, {who: float(s[a:b].sum()) for who, s in shares.items()}, b - a))
    return {"n_items": n_items, "cum": cum, "groups": groups, "outside": outside}


def _fig_long_tail(tail: tp.Dict[str, tp.Any], labels: tp.Dict[str, str]) -> bytes:
    fig = _new_figure(11.5, 4.6)
    axes = fig.subplots(1, 2, width_ratios=[1.1, 1])
    n_items = tail["n_items"]
    x = np.arange(1, n_items + 1) / n_items
    names = {**labels, "interactions": "training interactions", "catalog": "catalog (each item equally)"}
    styles = {MODEL: "-", POPULAR: "-", "interactions": "--", "catalog": ":"}
    ax = axes[0]
    for who in (MODEL, POPULAR, "interactions", "catalog"):
        ax.plot(x, tail["cum"][who], styles[who], color=COLORS[who], label=names[who], linewidth=2)
    ax.set_xscale("log")
    ax.set_xlim(1 / n_items, 1)
    ax.xaxis.set_major_formatter(_percent_formatter())
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("most popular items, share of the catalog (log scale)", fontsize=11)
    ax.set_ylabel("cumulative share", fontsize=11)
    ax.set_title("Recommendations by item popularity", fontsize=12)
    ax.legend(fontsize=9, frameon=False, loc="upper left")
    ax.grid(alpha=0.3)
    _style(ax)
    ax = axes[1]
    groups = tail["groups"]
    xs = np.arange(len(groups))
    width = 0.2
    for j, who in enumerate((MODEL, POPULAR, "interactions", "catalog")):
        ax.bar(xs + (j - 1.5) * width, [g[1][who] for g in groups], width, color=COLORS[who], label=names[who])
    ax.set_xticks(xs, [f"{name}\n({n} items)" for name, _, n in groups], fontsize=9)
    ax.set_xlabel("items grouped by training popularity rank", fontsize=10)
    ax.set_ylabel("share of recommendations / interactions", fontsize=10)
    ax.set_ylim(0, 1.05)
    ax.set_title("Head and long tail", fontsize=12)
    ax.legend(fontsize=8.5, frameon=False, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    _style(ax)
    return _png(fig)


def _coverage_curve(reco: pd.DataFrame, k: int, n_catalog: int) -> np.ndarray:
    """(k,) share of the catalog recommended in the top-1, top-2, ..., top-k."""
    first = reco.groupby(Columns.Item)[Columns.Rank].min().to_numpy()  # best rank each item got
    return np.cumsum(np.bincount(first, minlength=k + 1)[1:k + 1]) / n_catalog


def _fig_coverage(curves: tp.Dict[str, np.ndarray], n_catalog: int, labels: tp.Dict[str, str], k: int) -> bytes:
    fig = _new_figure(10.5, 4.2)
    axes = fig.subplots(1, 2, width_ratios=[1, 1.3])
    ax = axes[0]
    values = [curves[who][-1] for who in (MODEL, POPULAR)]
    bars = ax.bar([labels[MODEL], labels[POPULAR]], values, color=[COLORS[MODEL], COLORS[POPULAR]], width=0.55)
    ax.bar_label(bars, labels=[f"{v:.1%}\n({round(v * n_catalog):,} of {n_catalog:,})" for v in values], padding=3,
                 fontsize=9)
    ax.set_ylim(0, max(max(values), 1e-6) * 1.3)
    _percent_ticks(ax)
    ax.set_ylabel("share of the catalog recommended", fontsize=11)
    ax.set_title(f"Catalog coverage of the top-{k}", fontsize=12)
    _style(ax)
    ax = axes[1]
    ranks = np.arange(1, k + 1)
    for who in (MODEL, POPULAR):
        ax.plot(ranks, curves[who], marker="o", markersize=4, color=COLORS[who], label=labels[who])
    ax.set_xlabel("length of the recommendation list", fontsize=11)
    ax.set_ylabel("share of the catalog recommended", fontsize=11)
    ax.set_title("Coverage by list length", fontsize=12)
    ax.set_ylim(0, max(max(values), 1e-6) * 1.1)
    _percent_ticks(ax)
    _integer_ticks(ax.xaxis)
    ax.legend(fontsize=9, frameon=False, loc="best")
    ax.grid(alpha=0.3)
    _style(ax)
    return _png(fig)


def _percent_ticks(ax: tp.Any) -> None:
    """Percent ticks on the y axis, none above 100%."""
    ax.yaxis.set_major_formatter(_percent_formatter())
    ax.set_yticks([t for t in ax.get_yticks() if 0 <= t <= 1 + 1e-9])


def _integer_ticks(axis: tp.Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _percent_formatter() -> tp.Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda x, _: f"{x * 100:.3g}%")  # 0.035 -> 3.5%, 1 -> 100%


# ----------------------------------------------------------------------------- HTML
CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; margin: 0;
       background: #f6f7f9; color: #1d2329; line-height: 1.45; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin-top: 36px; border-bottom: 1px solid #dde1e6; padding-bottom: 4px; }
p.sub { color: #5a6470; margin-top: 0; }
table { border-collapse: collapse; margin: 12px 0; font-size: 14px; }
th, td { padding: 5px 12px; border-bottom: 1px solid #e6e9ed; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f0f2f5; }
td.better { color: #117a37; font-weight: 600; }
td.note { color: #5a6470; font-size: 13px; }
figure { margin: 12px 0 8px; }
figure img { max-width: 100%; height: auto; border: 1px solid #e6e9ed; }
figcaption { color: #3d4550; font-size: 14px; margin-top: 6px; }
.warning { background: #fff4e5; border-left: 4px solid #f0a020; padding: 8px 12px; margin: 12px 0; }
.muted { color: #5a6470; }
"""


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _fmt(value: float) -> str:
    """A metric value for the tables: 4 decimals, 3 significant digits below 0.001."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:.2f}"
    return f"{value:.3g}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"


def _metrics_table(metrics: tp.Dict[str, tp.Dict[str, float]], defs: tp.Dict[str, tp.Tuple[tp.Any, str]],
                   labels: tp.Dict[str, str]) -> str:
    lower_better = {n for n in defs if n.startswith("avg_rec_popularity@")}  # lower: less popularity bias
    rows = []
    for name, (_, meaning) in defs.items():
        a, b = metrics[MODEL][name], metrics[POPULAR][name]
        ratio = f"{a / b:.2f}x" if b and not np.isnan(a) and not np.isnan(b) else "n/a"
        better = (a < b) if name in lower_better else (a > b)
        cls = ' class="num better"' if better else ' class="num"'
        rows.append(f"<tr><td>{html.escape(name)}</td><td{cls}>{_fmt(a)}</td><td class=\"num\">{_fmt(b)}</td>"
                    f"<td class=\"num\">{ratio}</td><td class=\"note\">{html.escape(meaning)}</td></tr>")
    head = (f"<tr><th>metric</th><th class=\"num\">{html.escape(labels[MODEL])}</th>"
            f"<th class=\"num\">{html.escape(labels[POPULAR])}</th><th class=\"num\">ratio</th><th>meaning</th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = "".join(f'<td class="num">{_fmt(v)}</td>' if isinstance(v, float) else f"<td>{html.escape(str(v))}</td>"
                        for v in row)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _html(info: tp.Dict[str, tp.Any], metrics: tp.Dict[str, tp.Dict[str, float]],
          defs: tp.Dict[str, tp.Tuple[tp.Any, str]], labels: tp.Dict[str, str], figures: tp.Dict[str, bytes],
          by_length: pd.DataFrame, warn_text: tp.Optional[str], history_note: str) -> str:
    k = info["k"]
    esc = html.escape
    parts = [f"<h1>Evaluation of {esc(labels[MODEL])}</h1>",
             f"<p class=\"sub\">Generated {esc(info['created'])} by seqrec {esc(info['seqrec_version'])}</p>"]
    if warn_text:
        parts.append(f'<div class="warning">{esc(warn_text)}</div>')
    split_text = ("leave-one-out: each user's last interaction is the test row (users with one interaction "
                  "stay in training)" if info["split"] == "loo" else
                  f"by time: interactions at or after {info['split'][5:]} are the test rows (of users and items "
                  "seen before the date)")
    facts = [("split", split_text),
             ("training part", f"{info['n_train_rows']:,} interactions, {info['n_train_users']:,} users, "
                               f"{info['n_catalog_items']:,} items (the catalog)"),
             ("test part", f"{info['n_test_rows']:,} interactions of {info['n_test_users']:,} users"),
             ("model", ("a fresh copy built from the model's config, fitted on the training part" if info["refit"]
                        else "the given model, as it is")),
             ("baseline", "PopularModel (items by number of training users)"),
             ("recommendations", f"top-{k} per test user, viewed items filtered out")]
    if info["n_test_users_without_reco"]:
        facts.append(("unsupported users", f"{info['n_test_users_without_reco']:,} test users got no "
                                           "recommendation from the model (no known item in their history); "
                                           "they count as misses"))
    parts.append("<table>" + "".join(f"<tr><th>{esc(a)}</th><td>{esc(b)}</td></tr>" for a, b in facts) + "</table>")

    parts.append("<h2>Metrics against the popularity baseline</h2>")
    parts.append(_metrics_table(metrics, defs, labels))
    parts.append('<p class="muted">Green: the model does better than the baseline (for avg_rec_popularity, '
                 'lower is better: less bias towards popular items). Definitions are RecTools\'; relevance '
                 'metrics average over all test users.</p>')
    parts.append(f'<figure>{_img(figures["metrics"], "metrics bar chart")}<figcaption>Relevance metrics of the '
                 f'top-{k}: the model (blue) against the popularity baseline (orange).</figcaption></figure>')

    parts.append("<h2>Learning curves</h2>")
    if "learning_curves" in figures:
        parts.append(f'<figure>{_img(figures["learning_curves"], "learning curves")}<figcaption>'
                     f'{esc(history_note)}</figcaption></figure>')
    else:
        parts.append(f'<p class="muted">{esc(history_note)}</p>')

    parts.append("<h2>Quality by history length</h2>")
    parts.append(f'<figure>{_img(figures["by_history_length"], "quality by history length")}<figcaption>'
                 f'HR@{k} and NDCG@{k} of the test users grouped by the number of their training interactions '
                 '(buckets of about equal numbers of users). Short histories are the cold-start end.'
                 '</figcaption></figure>')
    parts.append(_html_table(by_length))

    parts.append("<h2>Popularity of the recommended items</h2>")
    parts.append(f'<figure>{_img(figures["long_tail"], "long tail")}<figcaption>Items are ranked by their '
                 'number of training interactions. Left: the share of all recommendations (solid), of the training '
                 'interactions (dashed) and of the catalog (dotted) that falls on the most popular x of the '
                 'items; a curve high on the left means recommendations concentrated on the head. Right: the same '
                 'shares by popularity group.</figcaption></figure>')

    parts.append("<h2>Catalog coverage</h2>")
    parts.append(f'<figure>{_img(figures["coverage"], "coverage")}<figcaption>The share of the catalog '
                 f'({info["n_catalog_items"]:,} training items) that appears in at least one top-{k} list; right: '
                 'the same for shorter lists.</figcaption></figure>')
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>seqrec evaluation: {esc(labels[MODEL])}</title>\n<style>{CSS}</style>\n</head>\n"
            f"<body><main>\n{body}\n</main></body>\n</html>\n")


# ----------------------------------------------------------------------------- the report
def run_evaluation(model: tp.Any, interactions: pd.DataFrame, out_dir: tp.Union[str, os.PathLike], split: str = "loo",
                   k: int = 10, item_features: tp.Optional[pd.DataFrame] = None,
                   cat_item_features: tp.Iterable[str] = (), refit: bool = True) -> tp.Dict[str, tp.Dict[str, float]]:
    """Evaluate ``model`` against a popularity baseline and write the report into ``out_dir``.

    ``interactions``: columns ``user_id, item_id`` and optionally ``weight``, ``datetime`` (never
    modified). ``split``: ``"loo"`` (each user's last interaction is the test row; users with a
    single interaction stay in training) or ``"time:YYYY-MM-DD"`` (rows at or after the date are
    the test rows, of users and items seen before it). ``item_features`` (flat form ``id, value,
    feature``) and ``cat_item_features`` go to :meth:`seqrec.Dataset.construct` of the training part.

    With ``refit=True`` a fresh model built from ``model.get_config()`` is fitted on the training
    part (``model`` itself is not changed); with ``refit=False`` the fitted ``model`` is used as it
    is, with a warning: it may have been trained on the test rows. Both the model and
    :class:`~seqrec.PopularModel` recommend ``k`` items with ``filter_viewed=True`` to every test
    user; test users the model cannot score count as misses.

    Returns ``{"model": {metric: value}, "popular": {metric: value}}`` (the names of
    ``metrics.csv``). The files written are listed in the module's docstring.
    """
    _check_inputs(interactions, k, refit)
    k = int(k)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError('the evaluation report needs matplotlib: pip install "seqrec[report]"') from None
    train, test = _split(interactions, split)
    cats = [cat_item_features] if isinstance(cat_item_features, str) else list(cat_item_features)
    dataset = Dataset.construct(train, item_features_df=item_features, cat_item_features=cats)
    fitted = _prepare_model(model, dataset, bool(refit))
    warn_text = None
    if not refit:
        warn_text = ("refit=False: the model is evaluated as it is; if it was trained on data that includes the "
                     "test rows, its metrics are optimistic (refit=True fits a fresh copy on the training part)")
        warnings.warn(warn_text, UserWarning, stacklevel=2)
    popular = PopularModel().fit(dataset)

    users = pd.unique(test[Columns.User])
    recos = {
        MODEL: fitted.recommend(users, dataset, k=k, filter_viewed=True, on_unsupported_targets="ignore"),
        POPULAR: popular.recommend(users, dataset, k=k, filter_viewed=True),
    }
    recos = {who: r[[Columns.User, Columns.Item, Columns.Rank]].reset_index(drop=True) for who, r in recos.items()}
    catalog = pd.unique(train[Columns.Item])
    defs = _metric_defs(k)
    prev = train[[Columns.User, Columns.Item]]
    metrics = {who: calc_metrics({n: m for n, (m, _) in defs.items()}, reco, test[[Columns.User, Columns.Item]],
                                 prev_interactions=prev, catalog=catalog)
               for who, reco in recos.items()}

    labels = {MODEL: type(fitted).__name__, POPULAR: "PopularModel"}
    n_without = int(len(users) - recos[MODEL][Columns.User].nunique())
    info = {
        "model": labels[MODEL], "split": split, "k": k, "refit": bool(refit),
        "n_train_rows": len(train), "n_train_users": int(train[Columns.User].nunique()),
        "n_catalog_items": len(catalog), "n_test_rows": len(test), "n_test_users": len(users),
        "n_test_users_without_reco": n_without,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seqrec_version": _version(),
    }

    history = getattr(fitted, "history_", None)
    history = history.copy() if isinstance(history, pd.DataFrame) else None
    best_epoch = getattr(fitted, "best_epoch_", None)
    by_length = _by_history_length(recos, train, test, k)
    tail = _long_tail(recos, train)
    curves = {who: _coverage_curve(reco, k, len(catalog)) for who, reco in recos.items()}
    figures = {
        "metrics": _fig_metrics(metrics, labels, k),
        "by_history_length": _fig_by_history_length(by_length, labels, k),
        "long_tail": _fig_long_tail(tail, labels),
        "coverage": _fig_coverage(curves, len(catalog), labels, k),
    }
    curves_png = _fig_learning_curves(history, best_epoch, labels[MODEL]) if history is not None else None
    if curves_png is not None:
        figures["learning_curves"] = curves_png
        has_val = any(c.startswith("val_") for c in history.columns)
        if has_val:
            history_note = ("Training loss, validation loss and validation metrics per epoch; the validation "
                            "targets are those the model's get_val_mask_func takes out of the training part")
        else:
            history_note = ("Training loss per epoch; no validation metric, as the model was trained without "
                            "get_val_mask_func (e.g. seqrec.leave_one_out_mask)")
        history_note += f"; the weights of epoch {best_epoch} were kept." if best_epoch is not None else "."
    else:
        history_note = "The evaluated model has no training history (history_), so there are no learning curves."

    os.makedirs(out_dir, exist_ok=True)
    for name, png in figures.items():
        with open(os.path.join(out_dir, f"{name}.png"), "wb") as f:
            f.write(png)
    stale = os.path.join(out_dir, "learning_curves.png")
    if "learning_curves" not in figures and os.path.exists(stale):
        os.remove(stale)  # from an earlier report in the same folder
    table = pd.DataFrame({"metric": list(defs), MODEL: [metrics[MODEL][n] for n in defs],
                          POPULAR: [metrics[POPULAR][n] for n in defs]})
    table.to_csv(os.path.join(out_dir, "metrics.csv"), index=False)
    payload = {**info, "metrics": metrics, "by_history_length": by_length.to_dict(orient="records")}
    with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(_without_nan(payload), f, indent=2, default=_json_default)  # NaN (no user to average) -> null
    pd.concat([r.assign(model=who) for who, r in recos.items()], ignore_index=True)[
        ["model", Columns.User, Columns.Item, Columns.Rank]].to_csv(
        os.path.join(out_dir, "recommendations.csv"), index=False)
    page = _html(info, metrics, defs, labels, figures, by_length, warn_text, history_note)
    with open(os.path.join(out_dir, "report.html"), "w", encoding="utf-8") as f:
        f.write(page)
    return metrics


def _version() -> str:
    from . import __version__  # the package imports this module's dependencies first

    return __version__


def _without_nan(value: tp.Any) -> tp.Any:
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    if isinstance(value, (float, np.floating)) and np.isnan(value):
        return None
    return value


def _json_default(value: tp.Any) -> tp.Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return str(value)
