"""Peak memory of full-softmax training on a million-item catalog (the chunked loss).

SASRec, softmax over all ``--n-items`` items, batch 128, L=200, d=64, a few training steps through
the public ``fit``; peak RSS is sampled every 5 ms (CUDA: max allocated as well).

    .venv/bin/python benchmarks/memory.py                  # 1,000,000 items, 2 steps
    .venv/bin/python benchmarks/memory.py --per-user 201   # full 200-target windows (slow on CPU)

``--per-user`` sets the mean interactions per user: every window is L=200 tokens wide whatever it
holds, so the transformer's memory does not depend on it, while the rows entering the loss (and
the CPU time) do; the chunked loss keeps its chunk within the same memory budget either way.
Writes ``benchmarks/results/memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-items", type=int, default=1_000_000)
    p.add_argument("--n-interactions", type=int, default=1_000_000)
    p.add_argument("--per-user", type=int, default=11)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-len", type=int, default=200)
    p.add_argument("--n-factors", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--chunk-size", type=int, default=None, help="force softmax_chunk_size (default: automatic)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "memory.json"))
    a = p.parse_args()

    import lightning as L
    import torch

    import synthetic
    from seqrec import Dataset, IdEmbeddingsItemNet, SASRecModel
    from seqrec.nn import losses
    from speed_runner import PeakRSS

    torch.set_num_threads(a.threads)
    n_users = max(1, a.n_interactions // a.per_user)
    data = synthetic.generate(n_users=n_users, n_items=a.n_items, n_interactions=a.n_interactions, seed=0)
    import pandas as pd
    ds = Dataset.construct(pd.DataFrame(data))
    del data

    chunks = []
    real = losses.softmax_chunk_size

    def spy(n_rows, n_items, device, chunk_size=None):  # record the chunk the loss chooses
        c = real(n_rows, n_items, device, chunk_size)
        chunks.append((n_rows, c))
        return c

    losses.softmax_chunk_size = spy
    step_times = []

    class StepTimer(L.Callback):
        def on_train_batch_start(self, *args):
            self.t = time.perf_counter()

        def on_train_batch_end(self, *args):
            step_times.append(time.perf_counter() - self.t)
            print(f"step {len(step_times)}: {step_times[-1]:.1f} s, rows {chunks[-1][0]}, chunk {chunks[-1][1]}",
                  flush=True)

    def trainer():
        return L.Trainer(max_epochs=1, limit_train_batches=a.steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, devices=1,
                         accelerator="gpu" if a.device.startswith("cuda") else "cpu", callbacks=[StepTimer()])

    model = SASRecModel(n_factors=a.n_factors, n_blocks=2, n_heads=1, dropout_rate=0.1, session_max_len=a.max_len,
                        batch_size=a.batch_size, loss="softmax", epochs=1, softmax_chunk_size=a.chunk_size,
                        item_net_block_types=(IdEmbeddingsItemNet,), get_trainer_func=trainer, random_state=0)
    cuda = a.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        model.fit(ds)
        fit_s = time.perf_counter() - t0
    result = {
        "n_items": ds.n_items, "n_users": ds.n_users, "n_interactions": len(ds.interactions),
        "batch_size": a.batch_size, "max_len": a.max_len, "n_factors": a.n_factors, "steps": len(step_times),
        "rows_per_step": [r for r, _ in chunks], "chunk_size": [c for _, c in chunks],
        "step_s": step_times, "fit_s": fit_s, "peak_rss_bytes": mem.peak, "peak_rss_gib": mem.peak / 2**30,
        "full_logits_gib_per_step": [r * ds.n_items * 4 / 2**30 for r, _ in chunks],
        "threads": a.threads, "device": a.device,
        "command": " ".join([".venv/bin/python", "benchmarks/memory.py"] + sys.argv[1:]),
    }
    if cuda:
        result["cuda_max_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
