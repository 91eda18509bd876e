#!/usr/bin/env python
"""The GPU benchmark: epoch time, recommend time, peak memory and quality on ML-1M, with RecTools
0.19 side by side when it can be imported.

Run by ``benchmarks/gpu.sh`` (which runs the GPU tests first); ``--smoke`` runs every step on a
tiny setting on CPU (the embedded MovieLens sample), so that the script itself is tested in CI::

    python benchmarks/gpu_bench.py --smoke --out /tmp/gpu-smoke
    python benchmarks/gpu_bench.py --data-dir .data --out results/gpu        # on the GPU machine

Steps (each one timed; a step that fails is recorded with its error and the others go on):

1. ``epochs``: one ML-1M epoch of SASRec softmax (d 64, 2 blocks, L 200, batch 128) in fp32,
   bf16 and bf16 + ``torch.compile``; BERT4Rec softmax and eSASRec (LiGR layers + sampled
   softmax) in bf16. ``--epochs`` epochs per model; the epoch time reported is the median of the
   epochs after the first (the first carries CUDA and compile warm-up, reported apart); peak GPU
   memory of the fit (``torch.cuda.max_memory_allocated``).
2. ``recommend``: top-10 for all users (history filtered) with the fitted SASRec bf16 model;
   median of 3 timed calls after one warm-up.
3. ``quality``: SASRec (preset ``sasrec-ml-1m``) trained to convergence through
   ``benchmarks/quality.py`` (validation on the second-to-last item, early stopping, test NDCG@10),
   with RecTools trained for the same number of epochs when available.
4. ``rectools``: steps 1 and 2 for RecTools 0.19, in a subprocess (its own imports).

Writes ``gpu_results.json`` and ``gpu_results.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
import typing as tp
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
SMOKE_USERS = 150  # users of the embedded sample in --smoke runs


# --------------------------------------------------------------------------------------------- settings
def epoch_configs(smoke: bool) -> tp.List[tp.Dict[str, tp.Any]]:
    """The timed models: name, model class name, parameters, and whether seqrec-only options apply."""
    size = dict(n_factors=64, n_blocks=2, n_heads=1, dropout_rate=0.1, session_max_len=200, batch_size=128, lr=1e-3)
    if smoke:
        size = dict(size, n_factors=16, n_blocks=1, session_max_len=20, batch_size=64)
    return [
        {"name": "SASRec softmax fp32", "model": "SASRec", "params": dict(size, loss="softmax"), "precision": "fp32"},
        {"name": "SASRec softmax bf16", "model": "SASRec", "params": dict(size, loss="softmax"), "precision": "bf16"},
        {"name": "SASRec softmax bf16 compile", "model": "SASRec", "params": dict(size, loss="softmax"),
         "precision": "bf16", "compile": True},
        {"name": "BERT4Rec softmax bf16", "model": "BERT4Rec",
         "params": dict(size, n_heads=2 if size["n_factors"] % 2 == 0 else 1, loss="softmax", mask_prob=0.2),
         "precision": "bf16"},
        {"name": "eSASRec sampled softmax bf16", "model": "SASRec", "layers": "LiGRLayers",
         "params": dict(size, loss="sampled_softmax", n_negatives=256 if not smoke else 16), "precision": "bf16"},
    ]


def hardware(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"CPU ({platform.processor() or platform.machine()}), torch {torch.__version__}"


def load_data(args: argparse.Namespace) -> "tp.Any":
    """Interactions ``user_id, item_id, datetime``: ML-1M, or the embedded MovieLens sample in smoke runs."""
    if args.smoke:
        from seqrec.datasets import load_movielens_small

        df = load_movielens_small().interactions
        users = df["user_id"].drop_duplicates().iloc[:SMOKE_USERS]
        return df.loc[df["user_id"].isin(users), ["user_id", "item_id", "datetime"]]
    from seqrec.datasets.shared import load_ml_1m

    return load_ml_1m(args.data_dir / "ml-1m").interactions


# --------------------------------------------------------------------------------------------- timing (both libraries)
def make_timer(pl: tp.Any, times: tp.List[float], cuda: bool) -> tp.Any:
    import torch

    class EpochTimer(pl.Callback):
        def on_train_epoch_start(self, trainer: tp.Any, module: tp.Any) -> None:
            if cuda:
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer: tp.Any, module: tp.Any) -> None:
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t0)

    return EpochTimer()


def time_epochs(lib: str, args: argparse.Namespace, df: tp.Any) -> tp.Dict[str, tp.Any]:
    """Epoch times, peak memory and recommend time of every configuration, for ``lib``."""
    import torch

    cuda = args.device.startswith("cuda")
    if lib == "seqrec":
        import lightning.pytorch as pl

        import seqrec
        from seqrec import BERT4RecModel, Dataset, IdEmbeddingsItemNet, SASRecModel
        layer_types = {name: getattr(seqrec, name) for name in ("LiGRLayers",) if hasattr(seqrec, name)}
    else:
        import pytorch_lightning as pl
        from rectools.dataset import Dataset
        from rectools.models import BERT4RecModel, SASRecModel
        from rectools.models.nn.item_net import IdEmbeddingsItemNet
        layer_types = {}
        try:
            from rectools.models.nn.transformers.net_blocks import LiGRLayers  # type: ignore

            layer_types["LiGRLayers"] = LiGRLayers
        except ImportError:
            pass
    classes = {"SASRec": SASRecModel, "BERT4Rec": BERT4RecModel}
    dataset = Dataset.construct(df.assign(weight=1.0))
    out: tp.Dict[str, tp.Any] = {"configs": {}}
    fitted = None
    for cfg in epoch_configs(args.smoke):
        name = cfg["name"]
        if cfg.get("layers") and cfg["layers"] not in layer_types:
            out["configs"][name] = {"skipped": f"{cfg['layers']} not available in {lib}"}
            continue
        if lib == "rectools" and cfg.get("compile"):
            out["configs"][name] = {"skipped": "RecTools has no torch.compile option"}
            continue
        if cfg.get("compile") and not cuda:
            out["configs"][name] = {"skipped": "compile is timed on the GPU only (on CPU it takes minutes)"}
            continue
        times: tp.List[float] = []
        timer = make_timer(pl, times, cuda)
        precision = cfg.get("precision", "fp32")

        def trainer() -> tp.Any:
            extra = {"precision": "bf16-mixed"} if (lib == "rectools" and precision == "bf16") else {}
            return pl.Trainer(max_epochs=args.epochs, min_epochs=args.epochs, accelerator="gpu" if cuda else "cpu",
                              devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                              enable_model_summary=False, num_sanity_val_steps=0, callbacks=[timer], **extra)

        params = dict(cfg["params"], epochs=args.epochs, item_net_block_types=(IdEmbeddingsItemNet,),
                      get_trainer_func=trainer, recommend_torch_device=args.device)
        if cfg.get("layers"):
            params["transformer_layers_type"] = layer_types[cfg["layers"]]
        if lib == "seqrec":
            params.update(random_state=0, precision=precision, torch_compile=bool(cfg.get("compile")))
        else:
            torch.manual_seed(0)
        try:
            model = classes[cfg["model"]](**params)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            model.fit(dataset)
            fit_s = time.perf_counter() - t0
        except Exception as e:  # recorded, the other configurations still run
            out["configs"][name] = {"error": f"{type(e).__name__}: {e}"}
            traceback.print_exc()
            continue
        later = times[1:] or times
        entry = {"epoch_s": statistics.median(later), "first_epoch_s": times[0] if times else None,
                 "epochs": len(times), "fit_s": fit_s}
        if cuda:
            entry["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["configs"][name] = entry
        print(f"[{lib}] {name}: " + json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                                 for k, v in entry.items()}), flush=True)
        if name == "SASRec softmax bf16":
            fitted = model
    if fitted is not None:
        users = dataset.user_id_map.external_ids
        fitted.recommend(users[:256], dataset, k=10, filter_viewed=True)  # warm-up
        seconds = []
        for _ in range(3):
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            reco = fitted.recommend(users, dataset, k=10, filter_viewed=True)
            seconds.append(time.perf_counter() - t0)
        out["recommend"] = {"users": int(len(users)), "seconds": statistics.median(seconds), "rows": int(len(reco))}
        if cuda:
            out["recommend"]["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        print(f"[{lib}] recommend: {json.dumps(out['recommend'])}", flush=True)
    return out


# --------------------------------------------------------------------------------------------- steps
def run_quality(args: argparse.Namespace, rectools: bool) -> tp.Dict[str, tp.Any]:
    sys.path.insert(0, str(HERE))
    import quality  # benchmarks/quality.py

    argv = ["--device", args.device, "--out-dir", str(args.out / "quality"), "--name", "sasrec-ml-1m",
            "--seeds", "0"]
    if args.smoke:
        argv += ["--quick", "--max-epochs", "1", "--max-users", str(SMOKE_USERS), "--name", "smoke"]
    else:
        argv += ["--dataset", "ml-1m", "--data-dir", str(args.data_dir), "--max-epochs", str(args.quality_epochs),
                 "--patience", "10", "--time-budget-min", str(args.quality_minutes)]
    if rectools:
        argv += ["--rectools", "--rectools-python", sys.executable]
    results = quality.main(argv)
    rows = [{"implementation": r["implementation"], "NDCG@10": r["metrics"]["NDCG@10"], "HR@10": r["metrics"]["HR@10"],
             "epochs": r["epochs_run"], "fit_s": r["fit_s"], "test_s": r["test_s"]} for r in results["runs"]]
    return {"runs": rows}


def rectools_available() -> bool:
    try:
        import rectools  # noqa: F401
        return True
    except ImportError:
        return False


def markdown(results: tp.Dict[str, tp.Any]) -> str:
    lines = [f"# GPU benchmark ({results['hardware']})", "", f"command: `{results['command']}`", ""]
    libs = [lib for lib in ("seqrec", "rectools") if isinstance(results.get(lib), dict) and "configs" in results[lib]]
    lines += ["| model | " + " | ".join(f"{lib} epoch s | {lib} first epoch s | {lib} peak GPU MB" for lib in libs)
              + (" | RecTools / seqrec |" if len(libs) == 2 else " |"),
              "|---" * (1 + 3 * len(libs) + (len(libs) == 2)) + "|"]
    names = list(results["seqrec"]["configs"]) if "seqrec" in libs else []
    for name in names:
        cells = []
        for lib in libs:
            e = results[lib]["configs"].get(name, {})
            if "epoch_s" in e:
                cells += [f"{e['epoch_s']:.3f}", f"{e['first_epoch_s']:.3f}",
                          f"{e['peak_gpu_mb']:.0f}" if "peak_gpu_mb" in e else "-"]
            else:
                cells += [e.get("skipped") or e.get("error", "-"), "-", "-"]
        if len(libs) == 2:
            a, b = results["seqrec"]["configs"].get(name, {}), results["rectools"]["configs"].get(name, {})
            cells.append(f"{b['epoch_s'] / a['epoch_s']:.1f}x" if "epoch_s" in a and "epoch_s" in b else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for lib in libs:
        rec = results[lib].get("recommend")
        if rec:
            lines.append(f"\n{lib} recommend top-10 for {rec['users']} users: {rec['seconds']:.3f} s")
    q = results.get("quality")
    if isinstance(q, dict) and "runs" in q:
        lines += ["", "| quality | NDCG@10 | HR@10 | epochs | fit s |", "|---|---|---|---|---|"]
        lines += [f"| {r['implementation']} | {r['NDCG@10']:.4f} | {r['HR@10']:.4f} | {r['epochs']} | {r['fit_s']} |"
                  for r in q["runs"]]
    for step, value in results.items():
        if isinstance(value, dict) and "error" in value:
            lines.append(f"\nstep {step} failed: {value['error']}")
    return "\n".join(lines) + "\n"


def parse_args(argv: tp.Optional[tp.Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny CPU run of every step (CI)")
    p.add_argument("--data-dir", type=Path, default=ROOT / ".data", help="folder holding ml-1m/")
    p.add_argument("--out", type=Path, default=HERE / "results" / "gpu")
    p.add_argument("--device", default=None, help="default: cuda, or cpu with --smoke")
    p.add_argument("--epochs", type=int, default=None, help="epochs per timed model (default 4, smoke 2)")
    p.add_argument("--quality-epochs", type=int, default=200)
    p.add_argument("--quality-minutes", type=float, default=2.5, help="time budget of the quality run")
    p.add_argument("--steps", default="epochs,quality,rectools", help="comma-separated steps to run")
    p.add_argument("--lib", choices=("seqrec", "rectools"), default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.device = args.device or ("cpu" if args.smoke else "cuda")
    args.epochs = args.epochs or (2 if args.smoke else 4)
    return args


def main(argv: tp.Optional[tp.Sequence[str]] = None) -> tp.Dict[str, tp.Any]:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    args.out.mkdir(parents=True, exist_ok=True)
    df = load_data(args)
    if args.lib == "rectools":  # the subprocess of step 4: print the result as JSON
        print("RESULT " + json.dumps(time_epochs("rectools", args, df)), flush=True)
        return {}
    steps = [s for s in args.steps.split(",") if s]
    given = list(argv) if argv is not None else sys.argv[1:]
    results: tp.Dict[str, tp.Any] = {"hardware": hardware(args.device),
                                     "command": "python benchmarks/gpu_bench.py " + " ".join(given), "steps_s": {}}
    has_rectools = rectools_available()

    def step(name: str, fn: tp.Callable[[], tp.Any]) -> None:
        t0 = time.perf_counter()
        try:
            results[name] = fn()
        except Exception as e:
            traceback.print_exc()
            results[name] = {"error": f"{type(e).__name__}: {e}"}
        results["steps_s"][name] = round(time.perf_counter() - t0, 1)
        (args.out / "gpu_results.json").write_text(json.dumps(results, indent=1, default=str))
        (args.out / "gpu_results.md").write_text(markdown(results))

    if "epochs" in steps:
        step("seqrec", lambda: time_epochs("seqrec", args, df))
    if "rectools" in steps and has_rectools:
        def rectools_step() -> tp.Dict[str, tp.Any]:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--lib", "rectools", "--device", args.device,
                   "--epochs", str(args.epochs), "--data-dir", str(args.data_dir), "--out", str(args.out)]
            if args.smoke:
                cmd.append("--smoke")
            proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
            sys.stdout.write(proc.stdout[-4000:])
            found = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if proc.returncode != 0 or not found:
                raise RuntimeError(f"RecTools run failed ({proc.returncode}): {proc.stderr[-2000:]}")
            return json.loads(found[-1][len("RESULT "):])

        step("rectools", rectools_step)
    if "quality" in steps:
        step("quality", lambda: run_quality(args, has_rectools and "rectools" in steps))
    print(markdown(results), flush=True)
    return results


if __name__ == "__main__":
    main()
