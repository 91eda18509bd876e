"""Scale on one box: preparation, training epochs and recommend as the log and the catalog grow.

For each size (interactions : items, e.g. ``10M:1M``) a seeded synthetic log (``synthetic.py``,
50 interactions per user on average) is saved once; then the phases below run one after the
other in a child process, for seqrec and, with ``--rectools-python``, for RecTools 0.19
(imported only there), each phase under a wall-clock cap and a memory cap (the parent samples
the child's RSS; a phase past a cap is stopped and marked, and a new child runs the next ones):

- ``construct``: ``Dataset.construct`` of the log (a pandas DataFrame);
- ``softmax`` / ``sampled_softmax``: SASRec (d=64, 2 blocks, 1 head, L=50, batch 128; sampled
  softmax with 256 uniform negatives) trains ``--steps`` batches; the epoch is the median step
  (the first, warm-up, left out) times the batches of an epoch, plus the time ``fit`` spent
  before its first batch. Where ``--steps`` covers the epoch it is measured whole;
- ``recommend``: a model fitted for one batch (of sampled softmax) recommends k=10 with ``filter_viewed=True`` to the
  first 10,000 users.

Peak RSS is the process's, sampled every 5 ms during the phase (interpreter, torch, the log and
the dataset included).

    .venv/bin/python benchmarks/scale.py                       # 1M:10k, 3M:100k, 10M:1M, seqrec only
    .venv/bin/python benchmarks/scale.py --rectools-python .venv-rectools/bin/python --cap-s 300
    .venv/bin/python benchmarks/scale.py --smoke --in-process  # seconds: checks the script end to end

Writes ``results.json`` and ``table.md`` to ``--out-dir`` and the plot to ``--plot``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import typing as tp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

PHASES = ("construct", "softmax", "sampled_softmax", "recommend")
DEFAULT_SIZES = "1M:10k,3M:100k,10M:1M"
SMOKE_SIZES = "20k:1k"
PER_USER = 50
RECOMMEND_USERS = 10_000
MODEL = dict(n_factors=64, n_blocks=2, n_heads=1, dropout_rate=0.1, session_max_len=50, batch_size=128, epochs=1)
SMOKE_MODEL = dict(MODEL, n_factors=16, n_blocks=1, session_max_len=10, batch_size=32)


def parse_count(text: str) -> int:
    """``"10M"`` -> 10_000_000, ``"100k"`` -> 100_000, ``"5000"`` -> 5000."""
    text = text.strip()
    scale = {"k": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def parse_sizes(text: str) -> tp.List[tp.Tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        inter, _, items = part.partition(":")
        if not items:
            raise ValueError(f"--sizes: {part!r} is not INTERACTIONS:ITEMS (e.g. 10M:1M)")
        sizes.append((parse_count(inter), parse_count(items)))
    return sizes


# ----------------------------------------------------------------- one phase (in the child process)
def run_phases(lib: str, phases: tp.Sequence[str], data: str, steps: int, threads: int,
               model_params: tp.Optional[tp.Dict[str, tp.Any]] = None,
               progress: tp.Optional[str] = None) -> tp.Dict[str, tp.Dict[str, tp.Any]]:
    """Measure ``phases`` of one library on a saved log, in this process, one after the other
    (the dataset is built once); after each phase the results so far and the phase now running
    are written to ``progress`` (JSON), so that a parent that stops the process keeps them."""
    import gc

    import numpy as np
    import torch

    from speed_runner import PeakRSS
    from synthetic import load_frame

    params = MODEL if model_params is None else model_params
    torch.set_num_threads(threads)
    if lib == "seqrec":
        sys.path.insert(0, os.path.dirname(HERE))
        import lightning.pytorch as pl
        from seqrec import Dataset, IdEmbeddingsItemNet, SASRecModel
    else:
        import pytorch_lightning as pl
        from rectools.dataset import Dataset
        from rectools.models import SASRecModel
        from rectools.models.nn.item_net import IdEmbeddingsItemNet

    done: tp.Dict[str, tp.Dict[str, tp.Any]] = {}

    def report(current: tp.Optional[str]) -> None:
        if progress is not None:
            with open(progress + ".tmp", "w") as f:
                json.dump({"done": done, "current": current, "started": time.time()}, f)
            os.replace(progress + ".tmp", progress)

    df = load_frame(data)
    n_users = int(df["user_id"].nunique())
    report(phases[0])
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        ds = Dataset.construct(df)
        seconds = time.perf_counter() - t0
    del df
    if "construct" in phases:
        done["construct"] = {"lib": lib, "phase": "construct", "seconds": seconds, "peak_rss": mem.peak,
                             "threads": torch.get_num_threads()}
    for phase in phases:
        if phase == "construct":
            continue
        report(phase)
        gc.collect()
        out: tp.Dict[str, tp.Any] = {"lib": lib, "phase": phase, "threads": torch.get_num_threads()}
        step_times: tp.List[float] = []
        fit_start: tp.Dict[str, float] = {}

        class StepTimer(pl.Callback):
            def on_train_batch_start(self, *args: tp.Any) -> None:
                fit_start.setdefault("first_batch", time.perf_counter())
                self.t = time.perf_counter()

            def on_train_batch_end(self, *args: tp.Any) -> None:
                step_times.append(time.perf_counter() - self.t)

        batches = 1 if phase == "recommend" else steps

        def trainer() -> tp.Any:
            return pl.Trainer(max_epochs=1, min_epochs=1, limit_train_batches=batches, logger=False,
                              enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                              accelerator="cpu", devices=1, callbacks=[StepTimer()])

        # the model that recommends trains one batch of sampled softmax: the cheap step (its loss
        # does not change what recommend costs)
        loss = "softmax" if phase == "softmax" else "sampled_softmax"
        extra = {"random_state": 0} if lib == "seqrec" else {}
        torch.manual_seed(0)
        model = SASRecModel(**params, loss=loss, n_negatives=256, item_net_block_types=(IdEmbeddingsItemNet,),
                            get_trainer_func=trainer, recommend_torch_device="cpu", **extra)
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            model.fit(ds)
            fit_s = time.perf_counter() - t0
        if phase != "recommend":
            per_epoch = math.ceil(n_users / params["batch_size"])
            timed = step_times[1:] if len(step_times) > 1 else step_times
            before_first = fit_start["first_batch"] - t0
            full = len(step_times) >= per_epoch
            out.update(steps=len(step_times), step_s=step_times, batches_per_epoch=per_epoch,
                       before_first_batch_s=before_first, fit_s=fit_s, peak_rss=mem.peak, measured_whole=full,
                       seconds=fit_s if full else before_first + float(np.median(timed)) * per_epoch)
        else:
            users = np.asarray(ds.user_id_map.external_ids)[:RECOMMEND_USERS]
            with PeakRSS() as mem:
                t0 = time.perf_counter()
                reco = model.recommend(users, ds, k=10, filter_viewed=True)
                out["seconds"] = time.perf_counter() - t0
            out.update(users=len(users), rows=len(reco), peak_rss=mem.peak)
        done[phase] = out
        del model
    report(None)
    return done


# ----------------------------------------------------------------- the parent
def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def run_capped(cmd: tp.List[str], progress: str, phases: tp.Sequence[str], cap_s: float,
               mem_cap: int) -> tp.Dict[str, tp.Dict[str, tp.Any]]:
    """Run the phases in child processes; a phase past ``cap_s`` seconds or ``mem_cap`` bytes of
    RSS is stopped and marked, and a new child runs the phases after it."""
    results: tp.Dict[str, tp.Dict[str, tp.Any]] = {}
    left = list(phases)
    while left:
        if os.path.exists(progress):
            os.remove(progress)
        with tempfile.TemporaryFile("w+") as log:
            proc = subprocess.Popen(cmd + ["--phases", ",".join(left), "--progress", progress],
                                    stdout=log, stderr=subprocess.STDOUT)
            # until the child reports (imports, reading the log) no phase runs; the start is capped too
            launched = time.time()
            state: tp.Dict[str, tp.Any] = {"done": {}, "current": None, "started": launched}
            reason = None
            while proc.poll() is None:
                time.sleep(0.2)
                try:
                    with open(progress) as f:
                        state = json.load(f)
                except (OSError, ValueError):
                    pass
                if state["current"] is not None and time.time() - state["started"] > cap_s:
                    reason = f"did not finish in {cap_s:.0f} s"
                elif not state["done"] and state["current"] is None and time.time() - launched > cap_s:
                    reason = f"did not start in {cap_s:.0f} s"
                elif mem_cap and _rss(proc.pid) > mem_cap:
                    reason = f"stopped at the memory cap ({mem_cap / 2**30:.0f} GiB RSS)"
                if reason:
                    proc.kill()
                    proc.wait()
                    break
            try:
                with open(progress) as f:
                    state = json.load(f)
            except (OSError, ValueError):
                pass
            results.update(state["done"])
            left = [p for p in left if p not in state["done"]]
            if not left:
                break
            current = state["current"] if state["current"] in left else left[0]
            if reason is None:
                log.seek(0)
                reason = f"exit code {proc.returncode}"
                results[current] = {"failed": reason, "log": log.read()[-1500:]}
            else:
                results[current] = {"failed": reason}
            left.remove(current)
            if current == "construct" or reason.startswith("exit"):
                # without a dataset (or after a crash) the phases left would fail the same way
                for p in left:
                    results[p] = {"failed": f"not run ({current}: {reason})"}
                break
    return results


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown CPU"


def _fmt_count(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k" if n >= 1000 else str(n)


def _cell(r: tp.Optional[tp.Dict[str, tp.Any]]) -> str:
    if r is None:
        return "not run"
    if "failed" in r:
        return r["failed"]
    s = f"{r['seconds']:.2f} s" if r["seconds"] < 100 else f"{r['seconds']:,.0f} s"
    if r["phase"] in ("softmax", "sampled_softmax") and not r.get("measured_whole"):
        s += f" (est. from {r['steps'] - 1 if r['steps'] > 1 else r['steps']} of {r['batches_per_epoch']:,} steps)"
    return s + f", {r['peak_rss'] / 2**30:.2f} GiB"


def table(results: tp.List[tp.Dict[str, tp.Any]], libs: tp.Sequence[str]) -> str:
    head = "| log | users | phase | " + " | ".join({"seqrec": "seqrec", "rectools": "RecTools 0.19"}[l] for l in libs)
    lines = [head + " |", "|---|---:|---|" + "---:|" * len(libs)]
    names = {"construct": "Dataset.construct", "softmax": "epoch, full softmax",
             "sampled_softmax": "epoch, sampled softmax (256 neg.)", "recommend": f"recommend {RECOMMEND_USERS:,} users"}
    for size in results:
        label = f"{_fmt_count(size['n_interactions'])} x {_fmt_count(size['n_items'])} items"
        for phase in PHASES:
            cells = [_cell(size["runs"].get(lib, {}).get(phase)) for lib in libs]
            lines.append(f"| {label} | {size['n_users']:,} | {names[phase]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: tp.List[tp.Dict[str, tp.Any]], libs: tp.Sequence[str], path: str, hardware: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(9, 3.4))
    colors = dict(zip(PHASES, ("C0", "C1", "C2", "C3")))
    x = [r["n_interactions"] for r in results]
    for lib in libs:
        style = "-" if lib == "seqrec" else "--"
        for phase in PHASES:
            runs = [r["runs"].get(lib, {}).get(phase) for r in results]
            pts = [(xi, run) for xi, run in zip(x, runs) if run is not None and "failed" not in run]
            if not pts:
                continue
            label = f"{'seqrec' if lib == 'seqrec' else 'RecTools'} {phase}"
            ax_t.plot([p[0] for p in pts], [p[1]["seconds"] for p in pts], style, marker="o", color=colors[phase],
                      label=label, markersize=3)
            ax_m.plot([p[0] for p in pts], [p[1]["peak_rss"] / 2**30 for p in pts], style, marker="o",
                      color=colors[phase], markersize=3)
    ticks = [f"{_fmt_count(r['n_interactions'])}\n{_fmt_count(r['n_items'])} items" for r in results]
    for ax, name in ((ax_t, "seconds (log)"), (ax_m, "peak RSS, GiB")):
        ax.set_xscale("log")
        ax.set_xticks(x, ticks, fontsize=7)
        ax.minorticks_off()
        ax.set_ylabel(name, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    ax_t.set_yscale("log")
    ax_t.legend(fontsize=6, ncol=2)
    fig.suptitle(f"cost against size (solid: seqrec, dashed: RecTools 0.19); {hardware}", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def render(paths: tp.Sequence[str], out_dir: str, plot_path: tp.Optional[str]) -> tp.Dict[str, tp.Any]:
    """One table and one plot from several saved runs (their sizes merged, libraries side by side)."""
    merged: tp.Dict[tp.Tuple[int, int], tp.Dict[str, tp.Any]] = {}
    runs_meta = []
    for path in paths:
        with open(path) as f:
            summary = json.load(f)
        runs_meta.append({k: summary[k] for k in ("hardware", "steps", "command", "when_utc")})
        for size in summary["sizes"]:
            key = (size["n_interactions"], size["n_items"])
            entry = merged.setdefault(key, {**size, "runs": {}})
            for lib, lib_runs in size["runs"].items():  # phase by phase: later files win
                entry["runs"].setdefault(lib, {}).update(lib_runs)
    results = [merged[k] for k in sorted(merged)]
    libs = [lib for lib in ("seqrec", "rectools") if any(lib in r["runs"] for r in results)]
    hardware = runs_meta[0]["hardware"]
    os.makedirs(out_dir, exist_ok=True)
    md = table(results, libs)
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(f"Hardware: {hardware}\n\n{md}\n")
    summary = {"hardware": hardware, "runs": runs_meta, "sizes": results}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(md)
    plot(results, libs, plot_path or os.path.join(out_dir, "scale.png"), hardware)
    return summary


def main(argv: tp.Optional[tp.Sequence[str]] = None) -> tp.Dict[str, tp.Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=None, help=f"INTERACTIONS:ITEMS,... (default {DEFAULT_SIZES})")
    p.add_argument("--smoke", action="store_true",
                   help=f"a tiny run ({SMOKE_SIZES}, a tiny model, 3 steps) to check the script")
    p.add_argument("--steps", type=int, default=4, help="timed training batches per epoch estimate")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cap-s", type=float, default=600.0, help="wall-clock cap of one phase (s)")
    p.add_argument("--mem-cap-gib", type=float, default=16.0, help="RSS cap of one phase (GiB)")
    p.add_argument("--rectools-python", default=None, help="interpreter of a RecTools 0.19 venv (omit: seqrec only)")
    p.add_argument("--libs", default=None, help="seqrec,rectools (default: seqrec, and rectools with --rectools-python)")
    p.add_argument("--rectools-max-interactions", type=parse_count, default=None,
                   help="skip RecTools above this log size (e.g. 3M)")
    p.add_argument("--in-process", action="store_true", help="run seqrec's phases in this process (no caps)")
    p.add_argument("--out-dir", default=os.path.join(HERE, "results", "scale"))
    p.add_argument("--plot", default=None, help="PNG path (default: OUT_DIR/scale.png)")
    p.add_argument("--render", nargs="+", default=None, metavar="RESULTS_JSON",
                   help="no run: merge saved results.json files (e.g. a seqrec and a RecTools run) into one "
                        "table and plot in --out-dir")
    # the child's side
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--lib", default="seqrec", help=argparse.SUPPRESS)
    p.add_argument("--phases", default=",".join(PHASES), help=f"phases to run (default: all of {','.join(PHASES)})")
    p.add_argument("--progress", default=None, help=argparse.SUPPRESS)
    p.add_argument("--data", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a.worker:
        return run_phases(a.lib, a.phases.split(","), a.data, a.steps, a.threads,
                          SMOKE_MODEL if a.smoke else MODEL, a.progress)

    if a.render:
        return render(a.render, a.out_dir, a.plot)

    import synthetic

    sizes = parse_sizes(a.sizes or (SMOKE_SIZES if a.smoke else DEFAULT_SIZES))
    steps = 3 if a.smoke else a.steps
    model = SMOKE_MODEL if a.smoke else MODEL
    phases = [ph for ph in PHASES if ph in a.phases.split(",")]
    if not phases or set(a.phases.split(",")) - set(PHASES):
        raise ValueError(f"--phases {a.phases!r}: a comma-separated subset of {PHASES}")
    libs = a.libs.split(",") if a.libs else ["seqrec"] + (["rectools"] if a.rectools_python else [])
    if set(libs) - {"seqrec", "rectools"} or ("rectools" in libs and not a.rectools_python):
        raise ValueError(f"--libs {a.libs!r}: seqrec and/or rectools (rectools needs --rectools-python)")
    hardware = f"{cpu_model()}, {a.threads} threads"
    os.makedirs(a.out_dir, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_inter, n_items in sizes:
            n_users = max(1, n_inter // PER_USER)
            data = os.path.join(tmp, f"log-{n_inter}-{n_items}.npz")
            synthetic.save(data, n_users=n_users, n_items=n_items, n_interactions=n_inter, seed=0)
            size = {"n_interactions": n_inter, "n_items": n_items, "n_users": n_users, "runs": {}}
            results.append(size)
            for lib in libs:
                if lib == "rectools" and a.rectools_max_interactions and n_inter > a.rectools_max_interactions:
                    continue
                if lib == "seqrec" and a.in_process:
                    runs = run_phases(lib, phases, data, steps, a.threads, model)
                else:
                    python = sys.executable if lib == "seqrec" else a.rectools_python
                    cmd = [python, os.path.abspath(__file__), "--worker", "--lib", lib, "--data", data,
                           "--steps", str(steps), "--threads", str(a.threads)] + (["--smoke"] if a.smoke else [])
                    runs = run_capped(cmd, os.path.join(tmp, "progress.json"), phases, a.cap_s,
                                      int(a.mem_cap_gib * 2**30))
                size["runs"][lib] = runs
                for phase in PHASES:
                    print(_fmt_count(n_inter), _fmt_count(n_items), lib, phase, _cell(runs.get(phase)), flush=True)
            os.remove(data)
    summary = {"hardware": hardware, "steps": steps, "model": model, "per_user": PER_USER, "sizes": results,
               "command": " ".join(["python", "benchmarks/scale.py"] + list(argv if argv is not None else sys.argv[1:])),
               "when_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    with open(os.path.join(a.out_dir, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)
    md = table(results, libs)
    with open(os.path.join(a.out_dir, "table.md"), "w") as f:
        f.write(f"Hardware: {hardware}\n\n{md}\n")
    print(md)
    plot(results, libs, a.plot or os.path.join(a.out_dir, "scale.png"), hardware)
    return summary


if __name__ == "__main__":
    main()
