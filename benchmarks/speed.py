"""Speed and memory of seqrec against RecTools 0.19, side by side on the same synthetic data.

Each library runs in its own subprocess (RecTools with ``.venv-rectools/bin/python``), with the
same data, hyperparameters and thread count; runs alternate (seqrec first in even pairs, RecTools
first in odd ones) and medians over the pairs are reported with the ratio RecTools / seqrec.

    .venv/bin/python benchmarks/speed.py                      # defaults below
    .venv/bin/python benchmarks/speed.py --repeats 1 --batches 2 --n-users 2000 --n-interactions 100000  # a quick look

The default data has the shape of the task statement's measurement: 20,000 users, 10,000 items,
1,000,000 interactions (long-tailed per-user lengths, mean 50, at least 2), so that with L=100
about half of the positions of a batch are padding.

Writes ``benchmarks/results/speed/speed.json`` and ``speed.md``.
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
import typing as tp

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import synthetic  # noqa: E402


def configs(n_factors: int, n_blocks: int, max_len: int, batch_size: int, n_negatives: int) -> tp.List[dict]:
    common = dict(n_factors=n_factors, n_blocks=n_blocks, n_heads=1, dropout_rate=0.1, session_max_len=max_len,
                  batch_size=batch_size, lr=1e-3)
    return [
        {"name": "SASRec softmax", "model": "SASRec", "params": dict(common, loss="softmax")},
        # seqrec with precision="bf16" (bf16 autocast, bf16 products in the fused softmax) against
        # RecTools in float32, its only CPU precision here: a row of its own
        {"name": "SASRec softmax (seqrec bf16)", "model": "SASRec", "params": dict(common, loss="softmax"),
         "seqrec_params": dict(precision="bf16")},
        {"name": f"SASRec BCE {n_negatives} neg", "model": "SASRec",
         "params": dict(common, loss="BCE", n_negatives=n_negatives)},
        # one negative: RecTools' default n_negatives, the cheapest step of all
        {"name": "SASRec BCE 1 neg", "model": "SASRec", "params": dict(common, loss="BCE", n_negatives=1)},
        {"name": f"SASRec gBCE {n_negatives} neg", "model": "SASRec",
         "params": dict(common, loss="gBCE", n_negatives=n_negatives, gbce_t=0.75)},
        {"name": "BERT4Rec softmax", "model": "BERT4Rec", "params": dict(common, loss="softmax", mask_prob=0.15)},
        # eSASRec: SASRec with LiGR layers and sampled softmax (each library's own LiGRLayers)
        {"name": f"eSASRec sampled softmax {n_negatives} neg", "model": "SASRec", "layers": "LiGRLayers",
         "params": dict(common, loss="sampled_softmax", n_negatives=n_negatives)},
        # the same against RecTools' per-position negatives, seqrec drawing them per sequence
        # (negative_sampling="uniform_sequence"): not the same sampling, so a row of its own
        {"name": f"eSASRec sampled softmax {n_negatives} neg (seqrec per-sequence negatives)", "model": "SASRec",
         "layers": "LiGRLayers", "params": dict(common, loss="sampled_softmax", n_negatives=n_negatives),
         "seqrec_params": dict(negative_sampling="uniform_sequence")},
        {"name": "HSTU softmax", "model": "HSTU", "params": dict(common, loss="softmax")},
    ]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_one(lib: str, args: argparse.Namespace, data: str, cfgs: tp.List[dict], out: str) -> dict:
    python = os.path.join(ROOT, ".venv-rectools/bin/python") if lib.startswith("rectools") else sys.executable
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    cmd = [python, os.path.join(HERE, "speed_runner.py"), "--lib", lib, "--data", data, "--configs",
           json.dumps(cfgs), "--threads", str(args.threads), "--batches", str(args.batches), "--device",
           args.device, "--recommend-users", str(args.recommend_users), "--out", out]
    if args.recommend_each:
        cmd.append("--recommend-each")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    print(f"  {lib}: {time.perf_counter() - t0:.0f} s", flush=True)
    with open(out) as f:
        return json.load(f)


def median(values: tp.List[float]) -> float:
    return statistics.median(values)


def summarise(runs: tp.Dict[str, tp.List[dict]], cfgs: tp.List[dict]) -> tp.List[dict]:
    """Rows (metric, seqrec median, RecTools median, ratio RecTools / seqrec)."""
    def full_epoch(entry: dict, n_batches: int) -> float:
        return entry["epoch_s"] / entry["batches"] * n_batches

    rows = []

    def add(metric: str, unit: str, get: tp.Callable[[dict], float], other: str = "rectools") -> None:
        try:
            s = median([get(r) for r in runs["seqrec"]])
            r = median([get(r) for r in runs[other]])
        except KeyError:  # a configuration one library lacks
            return
        rows.append({"metric": metric, "unit": unit, "seqrec": s, "rectools": r, "ratio": r / s if s else None})

    add("dataset + sequence preparation", "s", lambda r: r["prep_s"])
    for cfg in cfgs:
        name = cfg["name"]
        add(f"train epoch, {name}", "s", lambda r, n=name: full_epoch(r["configs"][n], r["full_batches"]))
    if runs.get("rectools-fast"):
        add("train epoch, SASRec softmax, against RecTools fast_transformers (FlatSASRecNet, plain loop)", "s",
            lambda r: full_epoch(r["configs"]["SASRec softmax"], r["full_batches"]), other="rectools-fast")
        add("sequence preparation, against fast_transformers.build_sequences", "s", lambda r: r["prep_s"],
            other="rectools-fast")
    def recommend_seconds(r: dict, config: tp.Optional[str], users: int) -> float:
        # KeyError (no such row) drops the measure, as for a configuration one library lacks
        for e in r["recommend"]:
            if e.get("config") == config and e["users"] == users:
                return e["seconds"]
        raise KeyError((config, users))

    each = len({e.get("config") for e in runs["seqrec"][0]["recommend"]}) > 1
    for entry in runs["seqrec"][0]["recommend"]:
        config = entry.get("config")
        model = f", {config} model" if each else ""
        add(f"recommend {entry['users']:,} users (k=10, filter_viewed{model})", "s",
            lambda r, c=config, n=entry["users"]: recommend_seconds(r, c, n))
    for cfg in cfgs:
        name = cfg["name"]
        if runs.get("rectools-fast") and name == "SASRec softmax":
            add("peak RSS, training SASRec softmax, against fast_transformers", "MiB",
                lambda r: r["configs"]["SASRec softmax"]["peak_rss"] / 2**20, other="rectools-fast")
        add(f"peak RSS, training {name}", "MiB", lambda r, n=name: r["configs"][n]["peak_rss"] / 2**20)
    add("peak RSS, recommend (largest call)", "MiB", lambda r: max(e["peak_rss"] for e in r["recommend"]) / 2**20)
    if "cuda_max_allocated" in runs["seqrec"][0]["configs"][cfgs[0]["name"]]:
        for cfg in cfgs:
            name = cfg["name"]
            add(f"CUDA max allocated, {name}", "MiB",
                lambda r, n=name: r["configs"][n]["cuda_max_allocated"] / 2**20)
    return rows


def markdown(rows: tp.List[dict], meta: dict) -> str:
    lines = [
        f"Hardware: {meta['hardware']}; {meta['threads']} torch thread(s) in both libraries; device {meta['device']}.",
        f"Data: synthetic, {meta['n_users']:,} users, {meta['n_items']:,} items, {meta['n_interactions']:,} "
        f"interactions (Zipf a={meta['zipf_a']}), seed {meta['seed']}. Models: d={meta['n_factors']}, "
        f"{meta['n_blocks']} blocks, 1 head, L={meta['max_len']}, batch {meta['batch_size']}. "
        f"Epoch time = seconds per batch over {meta['batches'] or 'all'} measured batches x "
        f"{meta['full_batches']} batches of a full epoch. Medians of {meta['repeats']} alternating paired runs.",
        f"Command: `{meta['command']}`",
        "",
        "| measure | seqrec | RecTools 0.19 | RecTools / seqrec |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['ratio']:.1f}x" if r["ratio"] is not None else "-"
        fmt = "{:,.0f}" if r["unit"] == "MiB" else "{:.2f}"
        lines.append(f"| {r['metric']} ({r['unit']}) | {fmt.format(r['seqrec'])} | {fmt.format(r['rectools'])} | {ratio} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-users", type=int, default=20_000)
    p.add_argument("--n-items", type=int, default=10_000)
    p.add_argument("--n-interactions", type=int, default=1_000_000)
    p.add_argument("--zipf-a", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-factors", type=int, default=64)
    p.add_argument("--n-blocks", type=int, default=2)
    p.add_argument("--max-len", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--n-negatives", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batches", type=int, default=5, help="batches per measured epoch (0: the full epoch)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--recommend-users", default="0,5000",
                   help="comma-separated user counts to recommend for (the first ones of the dataset's user map; "
                        "0: all); default: all users (the target) and 5,000 (the statement's figure)")
    p.add_argument("--recommend-each", action="store_true",
                   help="time recommend with every configuration's model (default: the first configuration's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--fast-transformers", action="store_true",
                   help="also time RecTools' rectools.fast_transformers FlatSASRecNet (SASRec softmax row)")
    p.add_argument("--only", default="", help="comma-separated config names to run (default: all)")
    p.add_argument("--out-dir", default=os.path.join(HERE, "results", "speed"))
    args = p.parse_args()

    os.makedirs(args.out_dir, exist_ok=True)
    data = os.path.join(args.out_dir, "data.npz")
    synthetic.save(data, n_users=args.n_users, n_items=args.n_items, n_interactions=args.n_interactions,
                   zipf_a=args.zipf_a, seed=args.seed)
    cfgs = configs(args.n_factors, args.n_blocks, args.max_len, args.batch_size, args.n_negatives)
    if args.only:
        keep = {c.strip() for c in args.only.split(",")}
        cfgs = [c for c in cfgs if c["name"] in keep]
    import numpy as np
    lengths = np.bincount(np.load(data)["user_id"])
    full_batches = int(np.ceil((lengths >= 2).sum() / args.batch_size))

    libs = ("seqrec", "rectools") + (("rectools-fast",) if args.fast_transformers else ())
    runs: tp.Dict[str, tp.List[dict]] = {lib: [] for lib in libs}
    for i in range(args.repeats):
        order = libs if i % 2 == 0 else libs[::-1]
        print(f"pair {i + 1}/{args.repeats}: {' then '.join(order)}", flush=True)
        for lib in order:
            res = run_one(lib, args, data, cfgs, os.path.join(args.out_dir, f"{lib}_{i}.json"))
            res["full_batches"] = full_batches
            runs[lib].append(res)

    rows = summarise(runs, cfgs)
    meta = {
        "hardware": f"{cpu_name()}, {os.cpu_count()} CPU cores" if args.device == "cpu" else args.device,
        "threads": args.threads, "device": args.device, "n_users": args.n_users, "n_items": args.n_items,
        "n_interactions": args.n_interactions, "zipf_a": args.zipf_a, "seed": args.seed,
        "n_factors": args.n_factors, "n_blocks": args.n_blocks, "max_len": args.max_len,
        "batch_size": args.batch_size, "batches": args.batches, "full_batches": full_batches,
        "repeats": args.repeats, "command": " ".join([".venv/bin/python", "benchmarks/speed.py"] + sys.argv[1:]),
    }
    with open(os.path.join(args.out_dir, "speed.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows, "runs": runs}, f, indent=1)
    md = markdown(rows, meta)
    with open(os.path.join(args.out_dir, "speed.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
