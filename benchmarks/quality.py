#!/usr/bin/env python
"""Quality benchmark of seqrec (and optionally RecTools, side by side) on a leave-one-out split.

Protocol (``../shared/data/README.md``): for every user the last interaction is the test target
and the one before the validation target; training uses everything before. The model ranks the
whole catalog, the user's history excluded; HR@10 and NDCG@10 are averaged over all users.
Validation NDCG@10 (all users or a seeded sample) is computed after every training epoch with the
network being trained; training stops after ``--patience`` epochs without improvement and the
best weights are restored before the single test evaluation (history = train + validation item).

Quick check (a few minutes on a 2-core CPU)::

    .venv/bin/python benchmarks/quality.py --quick

Full SASRec run on ML-1M (about 40 s per epoch on 2 CPU cores)::

    .venv/bin/python benchmarks/quality.py --dataset ml-1m --model sasrec --max-epochs 100 --patience 10

Results go to ``benchmarks/results/<run name>/``: ``results.json``, ``table.md``, ``curves.png``
and ``progress.jsonl`` (one line per epoch, written as training goes).

Seeds run in separate processes (one per core, or on several machines) are pooled into one table
with mean and std over all their seeds::

    .venv/bin/python benchmarks/quality.py --merge RUN_DIR_A RUN_DIR_B --name pooled

The runs must share the data, the model and its hyperparameters; the stopping rules may differ
and are listed in the pooled table.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import typing as tp
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import lightning as L  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from seqrec import BERT4RecModel, Columns, Dataset, HSTUModel, SASRecModel, leave_one_out_mask  # noqa: E402
from seqrec.metrics import MRR, NDCG, CatalogCoverage, HitRate, MeanPopularity, calc_metrics  # noqa: E402
from seqrec.models.base import TRAIN_WINDOWS  # noqa: E402
from seqrec.nn.item_net import CatFeaturesItemNet, IdEmbeddingsItemNet  # noqa: E402
from seqrec.nn.losses import LOSSES  # noqa: E402
from seqrec.presets import get_preset, preset_names  # noqa: E402
from seqrec.splits import leave_one_out  # noqa: E402
from seqrec.training import LR_SCHEDULES  # noqa: E402

DATASETS = ("ml-1m", "beauty", "ml-latest-small")
MODELS = {"sasrec": SASRecModel, "bert4rec": BERT4RecModel, "hstu": HSTUModel}
DEFAULT_DATA_DIR = ROOT.parent / "shared" / "data"
RESULTS_DIR = ROOT / "benchmarks" / "results"
K = 10

TEST_METRICS = {
    "HR@10": HitRate(10), "NDCG@10": NDCG(10, divide_by_achievable=True), "MRR@10": MRR(10), "HR@20": HitRate(20),
    "NDCG@20": NDCG(20, divide_by_achievable=True), "HR@1": HitRate(1),
    "coverage@10": CatalogCoverage(10, normalize=True), "mean_popularity@10": MeanPopularity(10),
}
K_TEST = 20  # largest k of TEST_METRICS


# --------------------------------------------------------------------------------------------- data
def load_interactions(name: str, data_dir: Path, item_features: bool
                      ) -> tp.Tuple[pd.DataFrame, tp.Optional[pd.DataFrame]]:
    """Interactions ``user_id, item_id, datetime`` (and flat item features) of a named data set."""
    if name == "ml-1m":
        from seqrec.datasets.shared import load_ml_1m
        data = load_ml_1m(data_dir / "ml-1m")
        return data.interactions, data.item_features if item_features else None
    if name == "beauty":
        from seqrec.datasets.shared import load_beauty
        data = load_beauty(data_dir / "beauty")
        return data.interactions, data.item_features if item_features else None
    if name == "ml-latest-small":
        from seqrec.datasets import load_movielens_small
        data = load_movielens_small()
        # implicit feedback: every rating is an interaction; weights are not used
        return data.interactions[[Columns.User, Columns.Item, Columns.Datetime]], (
            data.item_features if item_features else None)
    raise ValueError(f"Unknown dataset {name!r}; allowed: {DATASETS}")


def subsample_users(df: pd.DataFrame, n_users: int, seed: int) -> pd.DataFrame:
    users = pd.unique(df[Columns.User])
    if n_users <= 0 or n_users >= len(users):
        return df
    chosen = np.random.default_rng(seed).choice(users, size=n_users, replace=False)
    return df[df[Columns.User].isin(chosen)]


# --------------------------------------------------------------------------------------------- progress
class ProgressLog(L.Callback):
    """Prints and appends to ``progress_path`` each epoch's loss and validation metrics (computed by
    the model's own validation, ``get_val_mask_func``), with timings; stops training once the time
    budget is spent."""

    def __init__(self, progress_path: tp.Optional[Path] = None, label: str = "",
                 time_budget_s: tp.Optional[float] = None) -> None:
        self.progress_path = progress_path
        self.label = label
        self.time_budget_s = time_budget_s
        self.stopped_by_budget = False
        self.history: tp.List[tp.Dict[str, tp.Any]] = []
        self._epoch_start = self._fit_start = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        m = {k: float(v) for k, v in trainer.callback_metrics.items()}
        record = {"epoch": trainer.current_epoch + 1, "train_loss": m.get("train_loss"),
                  "val_ndcg@10": m.get(f"val_ndcg@{K}"), "val_hr@10": m.get(f"val_hr@{K}"),
                  "val_loss": m.get("val_loss"), "epoch_s": round(time.perf_counter() - self._epoch_start, 2),
                  "elapsed_s": round(time.perf_counter() - self._fit_start, 1)}
        self.history.append(record)
        print(f"[{self.label}] epoch {record['epoch']}: loss={record['train_loss']:.4f} "
              f"val NDCG@10={record['val_ndcg@10']:.4f} HR@10={record['val_hr@10']:.4f} ({record['epoch_s']:.1f}s)",
              flush=True)
        if self.progress_path is not None:
            with open(self.progress_path, "a") as f:
                f.write(json.dumps({"run": self.label, **record}) + "\n")
        if self.time_budget_s is not None and time.perf_counter() - self._fit_start > self.time_budget_s \
                and not trainer.should_stop:
            trainer.should_stop = True
            self.stopped_by_budget = True


def make_trainer_factory(model: tp.Any, callback: L.Callback, max_epochs: int, accelerator: str
                         ) -> tp.Callable[[], L.Trainer]:
    def factory() -> L.Trainer:
        return L.Trainer(max_epochs=max_epochs, enable_checkpointing=False, logger=False, devices=1,
                         accelerator=accelerator, callbacks=[callback], deterministic=model.deterministic,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    return factory


def validation_users(split: tp.Dict[str, tp.Any], n_users: int, seed: int) -> np.ndarray:
    """The users validated on: all validation users, or a seeded sample of ``n_users`` of them."""
    users = pd.unique(split["val"][Columns.User])
    if 0 < n_users < len(users):
        users = users[np.sort(np.random.default_rng(seed).choice(len(users), n_users, replace=False))]
    return users


# --------------------------------------------------------------------------------------------- one run
def preset_name(args: argparse.Namespace) -> str:
    """The preset a run starts from: ``--preset``, else the model's preset for the data set."""
    return args.preset or f"{args.model}-{args.dataset}"


def default_max_epochs(args: argparse.Namespace) -> int:
    """100, or the preset's ``epochs`` where the run decays its rate: a schedule is set over them."""
    name = preset_name(args)
    preset = get_preset(name) if name in preset_names() else {}
    schedule = args.lr_schedule or preset.get("lr_schedule", "constant")
    return preset["epochs"] if schedule != "constant" and "epochs" in preset else 100


def model_params(args: argparse.Namespace) -> tp.Dict[str, tp.Any]:
    params = get_preset(preset_name(args))
    overrides = {"n_factors": args.n_factors, "n_blocks": args.n_blocks, "n_heads": args.n_heads,
                 "dropout_rate": args.dropout, "session_max_len": args.session_max_len,
                 "batch_size": args.batch_size, "lr": args.lr, "loss": args.loss, "n_negatives": args.n_negatives,
                 "gbce_t": args.gbce_t}
    if args.model == "bert4rec":
        overrides["mask_prob"] = args.mask_prob
    overrides["negative_sampling"] = args.negative_sampling
    overrides["precision"] = args.precision
    overrides["train_windows"] = args.train_windows
    overrides["lr_schedule"] = args.lr_schedule
    accepted = MODELS[args.model]._param_names()
    for key, value in overrides.items():
        if value is not None:
            if key not in accepted:
                raise SystemExit(f"{MODELS[args.model].__name__} has no parameter {key!r} in this version")
            params[key] = value
    if args.item_features:
        params["item_net_block_types"] = (IdEmbeddingsItemNet, CatFeaturesItemNet)
    params["epochs"] = args.max_epochs
    return params


def run_seqrec(args: argparse.Namespace, seed: int, split: tp.Dict[str, tp.Any], out_dir: Path) -> tp.Dict[str, tp.Any]:
    params = model_params(args)
    # validation through the model's public API: the validation rows (each user's last interaction
    # of train + validation) are marked by get_val_mask_func, never trained on, and early stopping
    # on validation NDCG@10 restores the best weights
    val_mask = functools.partial(leave_one_out_mask, val_users=validation_users(split, args.val_users, args.val_seed))
    model = MODELS[args.model](**params, random_state=seed, deterministic=args.deterministic,
                               recommend_torch_device=args.device, verbose=0, get_val_mask_func=val_mask,
                               val_k=K, early_stopping=f"val_ndcg@{K}", early_stopping_patience=args.patience)
    label = f"seqrec {args.model} seed={seed}"
    callback = ProgressLog(out_dir / "progress.jsonl", label,
                           None if args.time_budget_min is None else 60 * args.time_budget_min)
    accelerator = "gpu" if args.device.startswith("cuda") else "cpu"
    model.set_params(get_trainer_func=make_trainer_factory(model, callback, args.max_epochs, accelerator))
    t0 = time.perf_counter()
    model.fit(split["test_ds"])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    reco = model.recommend(split["test_users"], split["test_ds"], k=K_TEST, filter_viewed=True,
                           on_unsupported_targets="warn")
    test_s = time.perf_counter() - t0
    metrics = calc_metrics(TEST_METRICS, reco, split["test"], catalog=model.item_id_map_.size,
                           prev_interactions=split["train_val"])
    print(f"[{label}] test: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()), flush=True)
    history = model.history_
    stopped_by = ("time budget" if callback.stopped_by_budget
                  else "max_epochs" if len(history) >= args.max_epochs else "patience")
    return {"implementation": "seqrec", "seed": seed, "metrics": metrics, "best_epoch": model.best_epoch_,
            "epochs_run": len(history), "stopped_by": stopped_by,
            "best_val_ndcg@10": float(history[f"val_ndcg@{K}"].max()),
            "curve": callback.history, "fit_s": round(fit_s, 1), "test_s": round(test_s, 1),
            "params": {k: (v if not isinstance(v, tuple) else [c.__name__ for c in v]) for k, v in params.items()}}


def run_rectools(args: argparse.Namespace, seed: int, split: tp.Dict[str, tp.Any], epochs: int,
                 tmp: Path, out_dir: Path) -> tp.Dict[str, tp.Any]:
    """RecTools in its own venv (subprocess); it returns recommendations, metrics are computed here."""
    params = model_params(args)
    params.pop("item_net_block_types")
    params["epochs"] = epochs
    spec = {"model": args.model, "params": params, "seed": seed, "k": K_TEST, "device": args.device,
            "threads": args.threads, "deterministic": args.deterministic, "item_features": args.item_features,
            "train": str(tmp / "train.csv"), "history": str(tmp / "history.csv"), "users": str(tmp / "users.csv"),
            "item_features_path": str(tmp / "item_features.csv") if args.item_features else None,
            "reco": str(tmp / f"reco_{seed}.csv"), "info": str(tmp / f"info_{seed}.json")}
    spec_path = tmp / f"spec_{seed}.json"
    spec_path.write_text(json.dumps(spec))
    runner = ROOT / "benchmarks" / "rectools_quality_runner.py"
    print(f"[rectools {args.model} seed={seed}] {epochs} epochs ...", flush=True)
    t0 = time.perf_counter()
    log_path = out_dir / f"rectools_seed{seed}.log"
    with open(log_path, "w") as log:  # RecTools/Lightning chatter goes to the log, not the console
        proc = subprocess.run([args.rectools_python, str(runner), str(spec_path)], cwd=str(ROOT), stdout=log,
                              stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f"RecTools runner failed with exit code {proc.returncode}; log {log_path}:\n{tail}")
    info = json.loads(Path(spec["info"]).read_text())
    reco = pd.read_csv(spec["reco"], dtype={Columns.User: split["test"][Columns.User].dtype,
                                            Columns.Item: split["test"][Columns.Item].dtype})
    metrics = calc_metrics(TEST_METRICS, reco, split["test"], catalog=split["train_ds"].n_items,
                           prev_interactions=split["train_val"])
    print(f"[rectools {args.model} seed={seed}] test: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()),
          flush=True)
    return {"implementation": "rectools", "seed": seed, "metrics": metrics, "best_epoch": None,
            "epochs_run": epochs, "fit_s": info["fit_s"], "test_s": info["test_s"], "subprocess_s": round(wall, 1),
            "rectools_version": info.get("rectools_version")}


# --------------------------------------------------------------------------------------------- reporting
def hardware(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    return text


def summarize(runs: tp.List[tp.Dict[str, tp.Any]]) -> tp.Dict[str, tp.Any]:
    out = {}
    for name in runs[0]["metrics"]:
        vals = np.array([r["metrics"][name] for r in runs])
        out[name] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else None}
    best = [r["best_epoch"] for r in runs if r["best_epoch"] is not None]
    out["best_epoch"] = {"mean": float(np.mean(best))} if best else None
    out["epochs_run"] = {"mean": float(np.mean([r["epochs_run"] for r in runs]))}
    out["fit_s"] = {"mean": float(np.mean([r["fit_s"] for r in runs]))}
    return out


def _pm(stat: tp.Dict[str, tp.Any]) -> str:
    # sample std over seeds; one seed has none
    return f"{stat['mean']:.4f}" if stat["std"] is None else f"{stat['mean']:.4f} ± {stat['std']:.4f}"


def markdown_table(results: tp.Dict[str, tp.Any]) -> str:
    cfg = results["config"]
    lines = ["| implementation | dataset | model | loss | seeds | HR@10 | NDCG@10 | epochs to best / run | "
             "fit time per seed | hardware |", "|---|---|---|---|---|---|---|---|---|---|"]
    for impl, summary in results["summary"].items():
        runs = [r for r in results["runs"] if r["implementation"] == impl]
        best = "-" if summary["best_epoch"] is None else f"{summary['best_epoch']['mean']:.1f}"
        lines.append(f"| {impl} | {cfg['dataset_label']} | {cfg['model']} | {cfg['loss']} | {len(runs)} | "
                     f"{_pm(summary['HR@10'])} | {_pm(summary['NDCG@10'])} | {best} / "
                     f"{summary['epochs_run']['mean']:.1f} | {summary['fit_s']['mean']:.0f} s | "
                     f"{results['hardware']} |")
    commands = results.get("commands") or [results["command"]]
    lines += [""] + ([f"Command: `{commands[0]}`"] if len(commands) == 1
                     else ["Pooled from:"] + [f"- `{c}`" for c in commands])
    if results.get("stopping_differs"):
        lines += ["", "Stopping rules differ between the pooled runs: " + results["stopping_differs"] + "."]
    wall = "Total wall time" if len(commands) == 1 else "Wall time summed over the pooled runs"
    lines += ["",
              f"{wall}: {results['wall_s']:.0f} s. Split: leave-one-out, full ranking over the "
              f"catalog ({results['data']['n_items']} items), history filtered, {results['data']['n_test_users']} "
              f"test users, {results['data']['n_val_users']} validation users."]
    return "\n".join(lines) + "\n"


def plot_curves(results: tp.Dict[str, tp.Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in results["runs"]:
        if run.get("curve"):
            ax.plot([c["epoch"] for c in run["curve"]], [c["val_ndcg@10"] for c in run["curve"]],
                    label=f"seed {run['seed']} (best epoch {run['best_epoch']})")
    cfg = results["config"]
    ax.set(xlabel="epoch", ylabel="validation NDCG@10", title=f"{cfg['model']} {cfg['loss']} on {cfg['dataset_label']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(results: tp.Dict[str, tp.Any], folder: Path) -> None:
    """Summarize the runs per implementation (mean ± std over seeds) and write results.json, table.md, curves.png."""
    impls = sorted({r["implementation"] for r in results["runs"]}, key=["seqrec", "rectools"].index)
    results["summary"] = {impl: summarize([r for r in results["runs"] if r["implementation"] == impl])
                          for impl in impls}
    (folder / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (folder / "table.md").write_text(markdown_table(results))
    plot_curves(results, folder / "curves.png")


# --------------------------------------------------------------------------------------------- pool
# what pooled runs must share: the data and validation options, and the model's resolved parameters
# (a flag left to the preset and the same value given explicitly are the same setup)
SETUP = ("dataset", "max_users", "model", "item_features", "val_users", "val_seed")
STOPPING = ("max_epochs", "patience", "time_budget_min", "rectools_epochs")


def _setup(res: tp.Dict[str, tp.Any]) -> tp.Dict[str, tp.Any]:
    params = next((r["params"] for r in res["runs"] if r["implementation"] == "seqrec"), {})
    # a parameter a run does not record (older results) had the model's default
    defaults = {name: p.default for name, p in inspect.signature(MODELS[res["config"]["model"]]).parameters.items()
                if p.default is not inspect.Parameter.empty and isinstance(p.default, (str, int, float, bool))}
    return {**{k: res["config"].get(k) for k in SETUP},
            **{f"model parameter {k}": v for k, v in {**defaults, **params}.items() if k != "epochs"}}


def pool_results(run_dirs: tp.Sequence[Path], name: str, out_dir: Path) -> tp.Dict[str, tp.Any]:
    """Pool the seeds of several result folders of one setup into one results.json / table.md / curves.png."""
    loaded = []
    for d in run_dirs:
        path = Path(d) / "results.json"
        if not path.is_file():
            raise SystemExit(f"--merge: {path} not found (pass the folders that quality.py wrote)")
        loaded.append(json.loads(path.read_text()))
    first = loaded[0]
    a = _setup(first)
    for d, res in zip(run_dirs[1:], loaded[1:]):
        b = _setup(res)
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                raise SystemExit(f"--merge: {d} has {key}={b.get(key)!r} but {run_dirs[0]} has "
                                 f"{key}={a.get(key)!r}; only runs of one setup can be pooled")
        if res["data"] != first["data"]:
            raise SystemExit(f"--merge: {d} was run on other data ({res['data']}) than {run_dirs[0]} ({first['data']})")
    runs = [dict(run, source=res["config"]["name"]) for res in loaded for run in res["runs"]]
    seen = set()
    for run in runs:
        key = (run["implementation"], run["seed"])
        if key in seen:
            raise SystemExit(f"--merge: seed {run['seed']} of {run['implementation']} appears twice; "
                             "pool runs of different seeds")
        seen.add(key)
    stopping = []
    for key in STOPPING:
        values = [res["config"].get(key) for res in loaded]
        if len(set(map(str, values))) > 1:
            stopping.append(f"{key} " + " / ".join(str(v) for v in values))
    results = {
        "config": {**first["config"], "seeds": sorted({r["seed"] for r in runs}), "name": name},
        "command": first["command"], "commands": [res["command"] for res in loaded],
        "stopping_differs": ", ".join(stopping), "pooled_from": [res["config"]["name"] for res in loaded],
        "hardware": "; ".join(dict.fromkeys(res["hardware"] for res in loaded)), "torch": first["torch"],
        "data": first["data"], "runs": runs, "wall_s": float(sum(res["wall_s"] for res in loaded)),
    }
    (out_dir / name).mkdir(parents=True, exist_ok=True)
    write_results(results, out_dir / name)
    return results


# --------------------------------------------------------------------------------------------- main
def parse_args(argv: tp.Optional[tp.Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=DATASETS, default="ml-1m")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="folder holding ml-1m/ and beauty/")
    p.add_argument("--max-users", type=int, default=0, help="subsample of users, seeded by --val-seed (0 = all)")
    p.add_argument("--model", choices=sorted(MODELS), default="sasrec")
    p.add_argument("--preset", default=None,
                   help="hyperparameters to start from (seqrec.presets; default: <model>-<dataset>, e.g. "
                        "sasrec-ml-1m); the options below override them")
    p.add_argument("--loss", choices=LOSSES, default=None, help="default: the preset's")
    p.add_argument("--negative-sampling", default=None, help="sampled_softmax negatives (see the model docs)")
    p.add_argument("--precision", default=None, help="training precision (see the model docs), e.g. fp32")
    p.add_argument("--n-negatives", type=int, default=None)
    p.add_argument("--gbce-t", type=float, default=None)
    p.add_argument("--n-factors", type=int, default=None)
    p.add_argument("--n-blocks", type=int, default=None)
    p.add_argument("--n-heads", type=int, default=None)
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--session-max-len", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--mask-prob", type=float, default=None, help="BERT4Rec only")
    p.add_argument("--train-windows", choices=TRAIN_WINDOWS, default=None,
                   help="training samples: each user's last window or all windows of each history "
                        "(default: the preset's)")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=None,
                   help="learning rate schedule (default: the preset's); 'cosine' decays to 0 over --max-epochs")
    p.add_argument("--item-features", action="store_true", help="add item feature embeddings (genres/attributes)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--max-epochs", type=int, default=None,
                   help="epochs at most (default: 100, or the preset's epochs where it decays its rate, "
                        "since its schedule is set over them)")
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--time-budget-min", type=float, default=None,
                   help="stop training after this many minutes per seed (then test with the best weights)")
    p.add_argument("--val-users", type=int, default=0, help="validation users sampled (0 = all)")
    p.add_argument("--val-seed", type=int, default=0)
    p.add_argument("--rectools", action="store_true", help="also train RecTools on the same split")
    p.add_argument("--rectools-python", default=str(ROOT / ".venv-rectools" / "bin" / "python"))
    p.add_argument("--rectools-epochs", type=int, default=None,
                   help="fixed RecTools epochs (default: the best epoch seqrec found for the same seed)")
    p.add_argument("--name", default=None, help="run name (folder under benchmarks/results)")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--merge", nargs="+", type=Path, default=None, metavar="RUN_DIR",
                   help="pool the seeds of finished runs of one setup (their result folders) into the run "
                        "--name; nothing is trained")
    p.add_argument("--quick", action="store_true",
                   help="minutes-long smoke run: ml-latest-small, length 50, 4 epochs, 1 seed (explicit options win)")
    args = p.parse_args(argv)
    if args.quick:
        given = set(a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:]))
        quick = {"--dataset": ("dataset", "ml-latest-small"), "--max-epochs": ("max_epochs", 4),
                 "--patience": ("patience", 2), "--session-max-len": ("session_max_len", 50)}
        for flag, (attr, value) in quick.items():
            if flag not in given:
                setattr(args, attr, value)
    if args.preset is not None:
        if args.preset not in preset_names():
            p.error(f"--preset {args.preset!r} is not a preset; available: {', '.join(preset_names())}")
        if not args.preset.startswith(args.model + "-"):
            p.error(f"--preset {args.preset!r} is not a {args.model} preset (use --model too)")
    if args.max_epochs is None:
        args.max_epochs = default_max_epochs(args)
    for name in ("max_epochs", "patience"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.preset and CatFeaturesItemNet in get_preset(args.preset).get("item_net_block_types", ()):
        args.item_features = True  # a preset with a feature block reads the data set's item features
    return args


def prepare_split(args: argparse.Namespace) -> tp.Dict[str, tp.Any]:
    interactions, item_features = load_interactions(args.dataset, args.data_dir, args.item_features)
    interactions = subsample_users(interactions, args.max_users, seed=args.val_seed)
    train, val, test = leave_one_out(interactions)
    train_val = pd.concat([train, val])
    cat = ["genre", "attribute", "genre"][DATASETS.index(args.dataset)] if item_features is not None else ()
    cat = [cat] if cat else []
    train_ds = Dataset.construct(train, item_features_df=item_features, cat_item_features=cat)
    test_ds = Dataset.construct(train_val, item_features_df=item_features, cat_item_features=cat)
    return {"train": train, "val": val, "test": test, "train_val": train_val, "train_ds": train_ds,
            "test_ds": test_ds, "test_users": pd.unique(test[Columns.User]), "item_features": item_features}


def main(argv: tp.Optional[tp.Sequence[str]] = None) -> tp.Dict[str, tp.Any]:
    args = parse_args(argv)
    if args.merge:
        if not args.name:
            raise SystemExit("--merge needs --name: the folder the pooled results go to")
        results = pool_results(args.merge, args.name, args.out_dir)
        print(markdown_table(results))
        print(f"results in {args.out_dir / args.name}", flush=True)
        return results
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    split = prepare_split(args)
    params = model_params(args)
    dataset_label = args.dataset + (f" ({args.max_users} users)" if args.max_users else "")
    name = args.name or (f"{args.dataset}{'-u' + str(args.max_users) if args.max_users else ''}-{args.model}-"
                         f"{params['loss']}-{time.strftime('%Y%m%d-%H%M%S')}")
    out_dir = args.out_dir / name
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "progress.jsonl").write_text("")
    given = argv if argv is not None else sys.argv[1:]
    command = "python benchmarks/quality.py " + " ".join(shlex.quote(a) for a in given)
    n_val = len(split["val"]) if args.val_users <= 0 else min(args.val_users, len(split["val"]))
    print(f"{dataset_label}: {split['train_ds'].n_users} users, {split['train_ds'].n_items} items in train, "
          f"{len(split['train'])} train interactions, {len(split['test'])} test users, {n_val} validation users",
          flush=True)
    results: tp.Dict[str, tp.Any] = {
        "config": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                   "loss": params["loss"], "dataset_label": dataset_label},
        "command": command, "hardware": hardware(args.device), "torch": torch.__version__,
        "data": {"n_users": split["train_ds"].n_users, "n_items": split["train_ds"].n_items,
                 "n_train": len(split["train"]), "n_test_users": len(split["test"]), "n_val_users": n_val},
        "runs": [],
    }

    def save() -> None:
        results["wall_s"] = round(time.perf_counter() - started, 1)
        write_results(results, out_dir)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.rectools:
            cols = [Columns.User, Columns.Item, Columns.Datetime]
            split["train"][cols].to_csv(tmp / "train.csv", index=False)
            split["train_val"][cols].to_csv(tmp / "history.csv", index=False)
            pd.DataFrame({Columns.User: split["test_users"]}).to_csv(tmp / "users.csv", index=False)
            if split["item_features"] is not None:
                split["item_features"].to_csv(tmp / "item_features.csv", index=False)
        for seed in args.seeds:
            run = run_seqrec(args, seed, split, out_dir)
            results["runs"].append(run)
            save()
            if args.rectools:
                epochs = args.rectools_epochs or max(run["best_epoch"], 1)
                results["runs"].append(run_rectools(args, seed, split, epochs, tmp, out_dir))
                save()
    print(markdown_table(results))
    print(f"results in {out_dir}", flush=True)
    return results


if __name__ == "__main__":
    main()
