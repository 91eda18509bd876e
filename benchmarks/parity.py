#!/usr/bin/env python
"""Parity with RecTools 0.19: both libraries on the same leave-one-out split, identical settings,
a fixed number of epochs, several seeds.

For every selected (data set, setting, model, loss) and seed, seqrec is trained in this process and
RecTools in its own virtual environment (``benchmarks/rectools_quality_runner.py`` under
``--rectools-python``, default ``.venv-rectools/bin/python``); the two alternate (seqrec first for
even seeds, RecTools first for odd ones). Both score the same validation users after every epoch
(RecTools trains one epoch at a time with ``fit_partial``) and the test users after the last epoch;
every metric is computed here by ``seqrec.metrics`` from the recommendations (NDCG@10 with binary
relevance and an ideal DCG of one target, HR@10; full ranking, history filtered). The split and
the data loading are those of ``benchmarks/quality.py``.

Settings (``--settings``):

- ``rectools-small``: d 64, 2 blocks, 1 head, L 50, dropout 0.2, batch 128, lr 1e-3, 10 epochs;
- ``rectools-defaults``: what a RecTools user who sets nothing gets: d 256, 2 blocks, 4 heads,
  L 100, dropout 0.2, batch 128, lr 1e-3, 3 epochs.

Item ids only, ``train_windows="last"``, constant learning rate, float32. Losses (``--losses``):
``softmax``, ``bce1`` (BCE, 1 negative), ``bce256``, ``gbce256`` (t 0.75), ``sampled_softmax256``.
Data (``--datasets``): ``beauty``, ``ml-1m-2000`` (2,000 users of ML-1M drawn with seed 0) and
``ml-latest-small`` (the embedded MovieLens).

Results accumulate in ``benchmarks/results/parity/<name>/``: ``results.json`` (one record per
library, configuration and seed; a rerun skips the records it already has unless ``--overwrite``),
``table.md`` (mean ± sample std over seeds, paired epoch times) and one PNG of the per-epoch
validation NDCG@10 of both libraries per configuration in ``curves/``.

Ablations: ``--seqrec-param KEY=VALUE`` overrides a seqrec constructor parameter (JSON values, or
the name of a class exported by ``seqrec``, e.g. ``transformer_layers_type=PreLNTransformerLayers``);
``--rectools-layers NAME`` gives RecTools another of its layer classes; ``--variant LABEL`` names
the row. Example (a few minutes on 2 CPU cores)::

    .venv/bin/python benchmarks/parity.py --datasets ml-latest-small --models sasrec --losses softmax \\
        --settings rectools-small --seeds 0 1 --name smoke
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import typing as tp
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))  # run from a checkout without installing

import lightning as L  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

import seqrec  # noqa: E402
from seqrec import Columns  # noqa: E402
from seqrec.batching import keep_entries, ranks_in_runs, take_rows  # noqa: E402
from seqrec.metrics import NDCG, HitRate, calc_metrics  # noqa: E402
from seqrec.nn.item_net import IdEmbeddingsItemNet  # noqa: E402
from seqrec.ranking import rank_users  # noqa: E402

from quality import DEFAULT_DATA_DIR, MODELS, RESULTS_DIR, hardware, prepare_split  # noqa: E402

SETTINGS: tp.Dict[str, tp.Dict[str, tp.Any]] = {
    "rectools-small": dict(n_factors=64, n_blocks=2, n_heads=1, session_max_len=50, dropout_rate=0.2,
                           batch_size=128, lr=1e-3, epochs=10),
    "rectools-defaults": dict(n_factors=256, n_blocks=2, n_heads=4, session_max_len=100, dropout_rate=0.2,
                              batch_size=128, lr=1e-3, epochs=3),
}
LOSS_SETTINGS: tp.Dict[str, tp.Dict[str, tp.Any]] = {
    "softmax": dict(loss="softmax"),
    "bce1": dict(loss="BCE", n_negatives=1),
    "bce256": dict(loss="BCE", n_negatives=256),
    "gbce256": dict(loss="gBCE", n_negatives=256, gbce_t=0.75),
    "sampled_softmax256": dict(loss="sampled_softmax", n_negatives=256),
}
# name -> (quality.py data set, users sampled with seed 0; 0 = all)
DATASETS: tp.Dict[str, tp.Tuple[str, int]] = {
    "beauty": ("beauty", 0), "ml-1m-2000": ("ml-1m", 2000), "ml-latest-small": ("ml-latest-small", 0),
    "ml-1m": ("ml-1m", 0),  # all users: for re-checking the presets (with --seqrec-param)
}
K = 10
# the papers' NDCG: binary relevance, divided by the ideal DCG of the user's one target (= 1)
PAPER_NDCG = NDCG(K, divide_by_achievable=True)
METRICS = {"NDCG@10": PAPER_NDCG, "HR@10": HitRate(K)}
IDEAL_DCG_K = float(np.sum(1.0 / np.log2(np.arange(2, K + 2))))  # ideal DCG of k hits (RecTools' default NDCG)
IMPLS = ("seqrec", "rectools")


# --------------------------------------------------------------------------------------------- configuration
def parse_value(text: str) -> tp.Any:
    """A ``--seqrec-param`` value: JSON, else a class exported by seqrec, else ``module:Class`` (a
    module of ``benchmarks/``, e.g. ``ablation_layers:PaddingSinkSASRecLayers``), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if hasattr(seqrec, text) and isinstance(getattr(seqrec, text), type):
        return getattr(seqrec, text)
    module, _, name = text.partition(":")
    if name and module.isidentifier() and (ROOT / "benchmarks" / f"{module}.py").exists():
        value = getattr(importlib.import_module(module), name, None)
        if not isinstance(value, type):
            raise SystemExit(f"parity.py: benchmarks/{module}.py has no class {name!r}")
        return value
    return text


def model_params(setting: str, loss: str, epochs: tp.Optional[int]) -> tp.Dict[str, tp.Any]:
    params = {**SETTINGS[setting], **LOSS_SETTINGS[loss]}
    if epochs is not None:
        params["epochs"] = epochs
    return params


def config_key(rec: tp.Dict[str, tp.Any]) -> tp.Tuple[str, ...]:
    return (rec["dataset"], rec["setting"], rec["model"], rec["loss"], rec["variant"], str(rec["epochs"]))


def _jsonable(params: tp.Dict[str, tp.Any]) -> tp.Dict[str, tp.Any]:
    out = {}
    for k, v in params.items():
        if isinstance(v, type):
            v = v.__name__
        elif isinstance(v, (tuple, list)):
            v = [c.__name__ if isinstance(c, type) else c for c in v]
        out[k] = v
    return out


# --------------------------------------------------------------------------------------------- data
class Split(tp.NamedTuple):
    split: tp.Dict[str, tp.Any]
    val_users: np.ndarray  # external ids of the validation users
    val_targets: pd.DataFrame  # user_id, item_id
    files: tp.Dict[str, str]  # CSVs for the RecTools runner
    data: tp.Dict[str, int]
    val_context: pd.DataFrame  # user_id, datetime: the request time of each validation user (HSTU's time attention)
    test_context: pd.DataFrame  # the same for the test users


def load_split(name: str, args: argparse.Namespace, tmp: Path) -> Split:
    dataset, max_users = DATASETS[name]
    ns = argparse.Namespace(dataset=dataset, data_dir=args.data_dir, item_features=False, max_users=max_users,
                            val_seed=0)
    split = prepare_split(ns)
    val = split["val"]
    # validation users: those the training data knows (their history is their training part)
    val = val[val[Columns.User].isin(split["train_ds"].user_id_map.external_ids)]
    if 0 < args.val_users < len(val):
        pick = np.sort(np.random.default_rng(args.val_seed).choice(len(val), args.val_users, replace=False))
        val = val.iloc[pick]
    folder = tmp / name
    folder.mkdir(parents=True, exist_ok=True)
    cols = [Columns.User, Columns.Item, Columns.Datetime]
    files = {"train": str(folder / "train.csv"), "history": str(folder / "history.csv"),
             "users": str(folder / "users.csv"), "val_users": str(folder / "val_users.csv"),
             "val_context": str(folder / "val_context.csv"), "test_context": str(folder / "test_context.csv")}
    split["train"][cols].to_csv(files["train"], index=False)
    split["train_val"][cols].to_csv(files["history"], index=False)
    pd.DataFrame({Columns.User: split["test_users"]}).to_csv(files["users"], index=False)
    pd.DataFrame({Columns.User: val[Columns.User].to_numpy()}).to_csv(files["val_users"], index=False)
    # a request is made at the time of the interaction it should predict (what HSTU's time attention reads)
    val_context = val[[Columns.User, Columns.Datetime]].reset_index(drop=True)
    test_context = split["test"][[Columns.User, Columns.Datetime]].reset_index(drop=True)
    val_context.to_csv(files["val_context"], index=False)
    test_context.to_csv(files["test_context"], index=False)
    data = {"n_users": split["train_ds"].n_users, "n_items": split["train_ds"].n_items,
            "n_train": len(split["train"]), "n_test_users": len(split["test"]), "n_val_users": len(val)}
    print(f"{name}: {data}", flush=True)
    return Split(split, val[Columns.User].to_numpy(), val[[Columns.User, Columns.Item]], files, data, val_context,
                 test_context)


def _read_reco(path: str, like: pd.DataFrame) -> pd.DataFrame:
    return pd.read_csv(path, dtype={Columns.User: like[Columns.User].dtype, Columns.Item: like[Columns.Item].dtype})


# --------------------------------------------------------------------------------------------- runs
class EpochValidation(L.Callback):
    """After every training epoch: the top ``k`` of the validation users (history filtered, full
    catalog) from the network being trained, and their NDCG@k; the epoch's training seconds.

    It ranks with the network itself through ``seqrec.ranking.rank_users`` (the function
    ``recommend`` calls), so that it depends on no fitted state of the model. For a model that
    reads times (HSTU with time attention), ``times`` holds the time of every history entry (aligned
    with ``items``) and ``query`` each user's request time, in the model's units."""

    def __init__(self, model: tp.Any, indptr: np.ndarray, items: np.ndarray, targets: np.ndarray, k: int,
                 label: str, batch: int = 512, times: tp.Optional[np.ndarray] = None,
                 query: tp.Optional[np.ndarray] = None) -> None:
        self.model, self.indptr, self.items, self.k, self.label, self.batch = model, indptr, items, k, label, batch
        self.times, self.query = times, query
        self.targets = pd.DataFrame({Columns.User: np.arange(len(targets)), Columns.Item: targets})
        self.history: tp.List[tp.Dict[str, float]] = []
        self._t0 = time.perf_counter()

    def map_items(self, dataset: tp.Any) -> None:
        """Histories and targets in the network's item ids. The model's catalog may be a subset of the
        dataset's items (those its training windows hold, as in RecTools); the model computes that
        map, and dataset items outside it leave the histories (a target outside it is a miss)."""
        if not hasattr(self.model, "_training_data"):
            return  # the catalog is the dataset's
        _, model_of = self.model._training_data(dataset, None)
        mapped = model_of[self.items]
        if self.times is not None:
            _, self.times = keep_entries(self.indptr, self.times, mapped >= 0)
        self.indptr, self.items = keep_entries(self.indptr, mapped, mapped >= 0)
        t = self.targets[Columns.Item].to_numpy()
        self.targets[Columns.Item] = np.where(t >= 0, model_of[np.maximum(t, 0)], -1)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()

    def _extras(self, rows: np.ndarray) -> tp.Tuple[np.ndarray, ...]:
        b_indptr, b_times = take_rows(self.indptr, self.times, rows)
        return self.model._inference_extras(b_indptr, b_times, self.query[rows])

    def _top_k(self, net: tp.Any) -> pd.DataFrame:
        users, items, _ = rank_users(net, self.model._inference_tokens, self.indptr, self.items, self.k, True, None,
                                     torch.device("cpu"), self.batch, self.model._similarity(),
                                     self._extras if self.times is not None else None)
        return pd.DataFrame({Columns.User: users, Columns.Item: items, Columns.Rank: ranks_in_runs(users)})

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        train_s = time.perf_counter() - self._t0
        t0 = time.perf_counter()
        metric = {"NDCG@10": NDCG(self.k, divide_by_achievable=True)}
        ndcg = calc_metrics(metric, self._top_k(pl_module.net), self.targets)["NDCG@10"]  # rank_users: eval mode inside
        self.history.append({"val_ndcg@10": ndcg, "train_s": round(train_s, 3),
                             "val_s": round(time.perf_counter() - t0, 3)})
        print(f"[{self.label}] epoch {len(self.history)}: val NDCG@10={ndcg:.4f} ({train_s:.1f}s train)", flush=True)


def run_seqrec(model_name: str, params: tp.Dict[str, tp.Any], seed: int, data: Split,
               args: argparse.Namespace) -> tp.Dict[str, tp.Any]:
    params = {**params, "item_net_block_types": (IdEmbeddingsItemNet,), **args.seqrec_params}
    model = MODELS[model_name](**params, random_state=seed, recommend_torch_device="cpu", verbose=0)
    train_ds = data.split["train_ds"]
    users = train_ds.user_id_map.to_internal(data.val_users)
    targets = train_ds.item_id_map.to_internal(data.val_targets[Columns.Item].to_numpy(), strict=False)
    inter = train_ds.interactions
    indptr, items = take_rows(inter.indptr, inter.items, users)
    times = query = None
    if model._uses_times():  # HSTU with time attention: the histories' times, asked at the validation target's
        _, positions = take_rows(inter.indptr, np.arange(len(inter.items)), users)
        times = model._sequence_times(inter, positions)
        query = model._request_times(train_ds, data.val_users, indptr, times, data.val_context)
    epochs = int(params["epochs"])
    callback = EpochValidation(model, indptr, items, targets, K, f"seqrec {model_name} seed={seed}", times=times,
                               query=query)
    callback.map_items(train_ds)
    model.set_params(get_trainer_func=functools.partial(
        L.Trainer, max_epochs=epochs, min_epochs=epochs, enable_checkpointing=False, logger=False, devices=1,
        accelerator="cpu", callbacks=[callback], enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0))
    t0 = time.perf_counter()
    model.fit(train_ds)
    fit_s = time.perf_counter() - t0 - sum(c["val_s"] for c in callback.history)
    # the last epoch's weights, as RecTools (no best-epoch restore: fixed epochs in both)
    reco = model.recommend(data.split["test_users"], data.split["test_ds"], k=K, filter_viewed=True,
                           on_unsupported_targets="warn", context=data.test_context if times is not None else None)
    metrics = calc_metrics(METRICS, reco, data.split["test"])
    return {"metrics": metrics, "curve": [c["val_ndcg@10"] for c in callback.history],
            "epoch_train_s": [c["train_s"] for c in callback.history], "fit_s": round(fit_s, 1),
            "params": _jsonable(model.get_params())}


def run_rectools(model_name: str, params: tp.Dict[str, tp.Any], seed: int, data: Split, args: argparse.Namespace,
                 tmp: Path, log_path: Path) -> tp.Dict[str, tp.Any]:
    out = tmp / f"rt_{os.getpid()}_{time.time_ns()}"
    out.mkdir()
    spec = {"model": model_name, "params": params, "seed": seed, "k": K, "device": "cpu", "threads": args.threads,
            "deterministic": False, "item_features": False, "item_features_path": None,
            "train": data.files["train"], "history": data.files["history"], "users": data.files["users"],
            "val_users": data.files["val_users"], "val_reco": str(out / "val_{epoch}.csv"), "k_val": K,
            "reco": str(out / "reco.csv"), "info": str(out / "info.json"),
            "transformer_layers_type": args.rectools_layers, "rectools_params": args.rectools_params}
    if MODELS[model_name](**params)._uses_times():  # the same settings make seqrec's model read times (HSTU)
        spec.update(val_context=data.files["val_context"], test_context=data.files["test_context"])
    (out / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    t0 = time.perf_counter()
    with open(log_path, "a") as log:
        proc = subprocess.run([args.rectools_python, str(ROOT / "benchmarks" / "rectools_quality_runner.py"),
                               str(out / "spec.json")], cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"RecTools runner failed (exit {proc.returncode}); see {log_path}:\n"
                           + log_path.read_text()[-3000:])
    info = json.loads((out / "info.json").read_text())
    curve = []
    for epoch in range(1, int(params["epochs"]) + 1):
        val = _read_reco(spec["val_reco"].format(epoch=epoch), data.val_targets)
        curve.append(calc_metrics({"NDCG@10": PAPER_NDCG}, val, data.val_targets)["NDCG@10"])
    reco = _read_reco(spec["reco"], data.split["test"])
    metrics = calc_metrics(METRICS, reco, data.split["test"])
    return {"metrics": metrics, "curve": curve, "epoch_train_s": info["epoch_train_s"], "fit_s": info["fit_s"],
            "subprocess_s": round(time.perf_counter() - t0, 1), "rectools_version": info["rectools_version"]}


# --------------------------------------------------------------------------------------------- reporting
def paper_ndcg(rec: tp.Dict[str, tp.Any]) -> tp.Dict[str, tp.Any]:
    """A record written before NDCG was pinned to the papers' convention, with its NDCG (test and
    curve) converted to it. With one target per user the two conventions differ by the constant
    ideal DCG of k hits (4.54 for k = 10), and they cannot be confused: the papers' NDCG@10 is at
    least HR@10 / log2(11) = 0.29 HR@10, the other at most HR@10 / 4.54 = 0.22 HR@10."""
    if "ndcg" in rec:
        return rec
    m = rec["metrics"]
    rec = dict(rec, ndcg="paper")
    if m["HR@10"] > 0 and m["NDCG@10"] < 0.25 * m["HR@10"]:
        rec["metrics"] = dict(m, **{"NDCG@10": m["NDCG@10"] * IDEAL_DCG_K})
        rec["curve"] = [c * IDEAL_DCG_K for c in rec["curve"]]
        rec["ndcg"] = "paper (converted from the ideal DCG of 10 hits)"
    return rec


def _mean_std(values: tp.Sequence[float]) -> tp.Tuple[float, tp.Optional[float]]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), (float(a.std(ddof=1)) if len(a) > 1 else None)


def _pm(values: tp.Sequence[float]) -> str:
    m, s = _mean_std(values)
    return f"{m:.4f}" if s is None else f"{m:.4f} ± {s:.4f}"


def groups(records: tp.List[tp.Dict[str, tp.Any]]) -> tp.Dict[tp.Tuple[str, ...], tp.Dict[str, tp.List[tp.Dict]]]:
    out: tp.Dict[tp.Tuple[str, ...], tp.Dict[str, tp.List[tp.Dict]]] = {}
    for rec in records:
        out.setdefault(config_key(rec), {}).setdefault(rec["impl"], []).append(rec)
    for key, by_impl in out.items():
        # a seqrec variant (an ablation) is compared with RecTools' default rows of its configuration
        reference = out.get(key[:4] + ("default",) + key[5:], {})
        if "rectools" not in by_impl and "rectools" in reference:
            by_impl["rectools"] = list(reference["rectools"])
        for runs in by_impl.values():
            runs.sort(key=lambda r: r["seed"])
    return out


def late_validation(rec: tp.Dict[str, tp.Any]) -> float:
    """Mean validation NDCG@10 over the last half of a run's epochs (the last ``max(1, n // 2)``).

    A steadier figure than the last epoch's test NDCG@10 where the validation curve swings from
    epoch to epoch (BERT4Rec at RecTools' settings moves by about 0.002 between epochs): it tells a
    level the two libraries learn to from where one epoch happens to land."""
    curve = rec["curve"]
    return float(np.mean(curve[-max(1, len(curve) // 2):]))


def markdown_table(records: tp.List[tp.Dict[str, tp.Any]]) -> str:
    lines = ["| data | setting | model | loss | variant | epochs | seeds | seqrec NDCG@10 | RecTools NDCG@10 | "
             "seqrec HR@10 | RecTools HR@10 | seqrec >= RecTools - std | "
             "validation NDCG@10, last half of the epochs, seqrec / RecTools | "
             "epoch s seqrec / RecTools (paired ratio) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, by_impl in sorted(groups(records).items()):
        ours, theirs = by_impl.get("seqrec", []), by_impl.get("rectools", [])
        cell = lambda runs, m: _pm([r["metrics"][m] for r in runs]) if runs else "-"  # noqa: E731
        verdict = "-"
        if ours and theirs:
            m_ours, _ = _mean_std([r["metrics"]["NDCG@10"] for r in ours])
            m_theirs, s_theirs = _mean_std([r["metrics"]["NDCG@10"] for r in theirs])
            verdict = ("above" if m_ours >= m_theirs else
                       "within 1 std" if s_theirs is not None and m_ours >= m_theirs - s_theirs else "BELOW")
        # paired: per seed, median epoch time of each library, then the ratio RecTools / seqrec
        seeds = sorted({r["seed"] for r in ours} & {r["seed"] for r in theirs})
        times = "-"
        if seeds:
            t_ours = [float(np.median(next(r for r in ours if r["seed"] == s)["epoch_train_s"])) for s in seeds]
            t_theirs = [float(np.median(next(r for r in theirs if r["seed"] == s)["epoch_train_s"])) for s in seeds]
            ratio = np.mean([b / a for a, b in zip(t_ours, t_theirs)])
            times = f"{np.mean(t_ours):.1f} / {np.mean(t_theirs):.1f} ({ratio:.2f}x)"
        n_seeds = f"{len(ours)} / {len(theirs)}"
        late = " / ".join(_pm([late_validation(r) for r in runs]) if runs else "-" for runs in (ours, theirs))
        lines.append(f"| {' | '.join(key[:5])} | {key[5]} | {n_seeds} | {cell(ours, 'NDCG@10')} | "
                     f"{cell(theirs, 'NDCG@10')} | {cell(ours, 'HR@10')} | {cell(theirs, 'HR@10')} | {verdict} | "
                     f"{late} | {times} |")
    return "\n".join(lines) + "\n"


def plot_curves(records: tp.List[tp.Dict[str, tp.Any]], folder: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    folder.mkdir(parents=True, exist_ok=True)
    colors = {"seqrec": "tab:blue", "rectools": "tab:orange"}
    for key, by_impl in groups(records).items():
        fig, ax = plt.subplots(figsize=(6, 4))
        for impl, runs in by_impl.items():
            curves = [r["curve"] for r in runs]
            n = min(len(c) for c in curves)
            for c in curves:
                ax.plot(range(1, len(c) + 1), c, color=colors[impl], alpha=0.3, lw=1)
            mean = np.mean([c[:n] for c in curves], axis=0)
            ax.plot(range(1, n + 1), mean, color=colors[impl], lw=2, marker="o",
                    label=f"{impl} (mean of {len(runs)} seeds)")
        ax.set(xlabel="epoch", ylabel="validation NDCG@10", title=" / ".join(key[:5]))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / ("_".join(key) + ".png"), dpi=110)
        plt.close(fig)


def write(results: tp.Dict[str, tp.Any], folder: Path) -> None:
    (folder / "results.json").write_text(json.dumps(results, indent=1, default=str))
    table = markdown_table(results["records"])
    (folder / "table.md").write_text(table + "\nCommands:\n\n" + "\n".join(f"- `{c}`" for c in results["commands"])
                                     + f"\n\nHardware: {results['hardware']}; torch {results['torch']}.\n")
    plot_curves(results["records"], folder / "curves")


# --------------------------------------------------------------------------------------------- main
def _key_values(p: argparse.ArgumentParser, items: tp.Sequence[str], flag: str,
                parse: tp.Callable[[str], tp.Any]) -> tp.Dict[str, tp.Any]:
    """``KEY=VALUE`` arguments of a repeatable flag as a dict, values read by ``parse``."""
    out = {}
    for item in items:
        if "=" not in item:
            p.error(f"{flag} expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key] = parse(value)
    return out


def pooled_records(folders: tp.Sequence[Path], keep: tp.Callable[[tp.Dict[str, tp.Any]], bool] = lambda r: True
                   ) -> tp.List[tp.Dict[str, tp.Any]]:
    """The records of several runs' ``results.json`` that ``keep`` accepts, in one list; ValueError
    naming the two folders when one configuration, library and seed was run in both (pooling must
    not count a seed twice)."""
    seen: tp.Dict[tp.Tuple[tp.Any, ...], Path] = {}
    records = []
    for folder in folders:
        path = Path(folder) / "results.json"
        if not path.is_file():
            raise ValueError(f"--pool: {path} does not exist")
        for rec in filter(keep, json.loads(path.read_text())["records"]):
            key = config_key(rec) + (rec["impl"], rec["seed"])
            if key in seen:
                raise ValueError(f"--pool: {key} is in both {seen[key]} and {folder}")
            seen[key] = Path(folder)
            records.append(paper_ndcg(rec))
    return records


def parse_args(argv: tp.Optional[tp.Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=None,
                   help="default: ml-latest-small (with --pool: every data set)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="folder holding ml-1m/ and beauty/")
    p.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=None,
                   help="default: rectools-small (with --pool: every setting)")
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=None,
                   help="default: sasrec (with --pool: every model)")
    p.add_argument("--losses", nargs="+", choices=list(LOSS_SETTINGS), default=None,
                   help="default: softmax (with --pool: every loss)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS), help="libraries to run")
    p.add_argument("--epochs", type=int, default=None, help="override the setting's epochs")
    p.add_argument("--val-users", type=int, default=5000, help="validation users sampled for the curves (0 = all)")
    p.add_argument("--val-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads of each library")
    p.add_argument("--seqrec-param", action="append", default=[], metavar="KEY=VALUE",
                   help="override a seqrec model parameter (ablations); repeatable")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a model parameter for both libraries (e.g. relative_time_attention=false for HSTU); "
                        "repeatable")
    p.add_argument("--rectools-param", action="append", default=[], metavar="KEY=VALUE",
                   help="a RecTools-only model parameter (JSON value), e.g. use_key_padding_mask=true; repeatable")
    p.add_argument("--rectools-layers", default=None, choices=["SASRecTransformerLayers", "PreLNTransformerLayers", "LiGRLayers"],
                   help="RecTools layer class instead of the model's default")
    p.add_argument("--variant", default=None, help="row label (default: 'default', or the overrides)")
    p.add_argument("--rectools-python", default=str(ROOT / ".venv-rectools" / "bin" / "python"))
    p.add_argument("--name", default="parity", help="folder under benchmarks/results/parity")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR / "parity")
    p.add_argument("--overwrite", action="store_true", help="rerun records that results.json already has")
    p.add_argument("--pool", nargs="+", default=None, metavar="NAME",
                   help="run nothing: print the table of these runs' records together (folders under --out-dir), "
                        "those of --datasets, --settings, --models and --losses where given")
    args = p.parse_args(argv)
    if not args.pool:
        for name, default in (("datasets", "ml-latest-small"), ("settings", "rectools-small"), ("models", "sasrec"),
                              ("losses", "softmax")):
            if getattr(args, name) is None:
                setattr(args, name, [default])
    args.seqrec_params = _key_values(p, args.seqrec_param, "--seqrec-param", parse_value)
    args.params = _key_values(p, args.param, "--param", json.loads)
    args.rectools_params = _key_values(p, args.rectools_param, "--rectools-param", json.loads)
    if args.variant is None:
        parts = [f"{k}={v}" for k, v in sorted(_jsonable({**args.params, **args.seqrec_params}).items())]
        parts += [f"rectools:{k}={v}" for k, v in sorted(args.rectools_params.items())]
        parts += [f"rectools:{args.rectools_layers}"] if args.rectools_layers else []
        args.variant = ",".join(parts) or "default"
    return args


def main(argv: tp.Optional[tp.Sequence[str]] = None) -> tp.Dict[str, tp.Any]:
    args = parse_args(argv)
    if args.pool:
        wanted = {"dataset": args.datasets, "setting": args.settings, "model": args.models, "loss": args.losses}
        records = pooled_records([args.out_dir / name for name in args.pool],
                                 lambda r: all(v is None or r[k] in v for k, v in wanted.items()))
        print(markdown_table(records))
        return {"records": records}
    torch.set_num_threads(args.threads)
    folder = args.out_dir / args.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {"records": [], "commands": []}
    results["records"] = [paper_ndcg(r) for r in results["records"]]
    given = argv if argv is not None else sys.argv[1:]
    results["commands"].append("python benchmarks/parity.py " + " ".join(shlex.quote(a) for a in given))
    results.update(hardware=hardware("cpu"), torch=torch.__version__)
    log_path = folder / "rectools.log"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for dataset in args.datasets:
            data = load_split(dataset, args, tmp)
            for setting in args.settings:
                for model_name in args.models:
                    for loss in args.losses:
                        params = {**model_params(setting, loss, args.epochs), **args.params}
                        for seed in args.seeds:
                            order = list(IMPLS) if seed % 2 == 0 else list(reversed(IMPLS))
                            for impl in [i for i in order if i in args.impls]:
                                rec = {"dataset": dataset, "setting": setting, "model": model_name, "loss": loss,
                                       "variant": args.variant if impl == "seqrec" or args.rectools_layers or args.params
                                       else "default", "epochs": params["epochs"], "impl": impl, "seed": seed}
                                done = [r for r in results["records"]
                                        if config_key(r) == config_key(rec) and r["impl"] == impl and r["seed"] == seed]
                                if done and not args.overwrite:
                                    print(f"skip (done): {rec}", flush=True)
                                    continue
                                results["records"] = [r for r in results["records"] if r not in done]
                                t0 = time.perf_counter()
                                if impl == "seqrec":
                                    out = run_seqrec(model_name, params, seed, data, args)
                                else:
                                    out = run_rectools(model_name, params, seed, data, args, tmp, log_path)
                                rec.update(out, data=data.data, ndcg="paper", wall_s=round(time.perf_counter() - t0, 1),
                                           finished=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
                                print(f"[{impl} {dataset} {setting} {model_name} {loss} {rec['variant']} seed={seed}] "
                                      f"test NDCG@10={out['metrics']['NDCG@10']:.4f} HR@10={out['metrics']['HR@10']:.4f}"
                                      f" val curve {[round(c, 4) for c in out['curve']]} epoch s "
                                      f"{np.median(out['epoch_train_s']):.1f}", flush=True)
                                results["records"].append(rec)
                                write(results, folder)
    write(results, folder)
    print(markdown_table(results["records"]))
    print(f"results in {folder}", flush=True)
    return results


if __name__ == "__main__":
    main()
