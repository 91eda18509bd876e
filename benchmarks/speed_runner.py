"""One measured run of one library (seqrec or RecTools 0.19) on a saved synthetic table.

Started by ``benchmarks/speed.py`` as a subprocess: seqrec with the project's interpreter,
RecTools with ``.venv-rectools/bin/python`` (RecTools is imported only here, only with ``--lib
rectools``). Writes one JSON: preparation seconds, per-configuration epoch seconds and peak RSS,
recommend seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
import typing as tp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# epoch timings written by the trainer callback; a module global because RecTools deep-copies its
# trainer (and so the callback) before fitting
EPOCH: tp.Dict[str, float] = {}


class PeakRSS:
    """Peak resident set size of this process while the block runs, sampled every 5 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(0.005)

    def __enter__(self) -> "PeakRSS":
        self.peak = self._rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: tp.Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def make_trainer_factory(pl: tp.Any, batches: tp.Optional[int], accelerator: str) -> tp.Callable[[], tp.Any]:
    class EpochTimer(pl.Callback):
        def on_train_epoch_start(self, trainer: tp.Any, module: tp.Any) -> None:
            EPOCH["start"] = time.perf_counter()

        def on_train_epoch_end(self, trainer: tp.Any, module: tp.Any) -> None:
            EPOCH["seconds"] = time.perf_counter() - EPOCH["start"]
            EPOCH["batches"] = trainer.num_training_batches

    def factory() -> tp.Any:
        return pl.Trainer(max_epochs=1, min_epochs=1, limit_train_batches=batches if batches else 1.0,
                          logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False, accelerator=accelerator, devices=1,
                          callbacks=[EpochTimer()])

    return factory


def fast_transformers_epoch(df: tp.Any, cfg: tp.Dict[str, tp.Any], batches: int, device: str) -> tp.Dict[str, tp.Any]:
    """RecTools' fastest SASRec path, ``rectools.fast_transformers``: ``build_sequences`` (tensor
    preprocessing), ``FlatSASRecNet`` and a plain PyTorch loop (Adam, full-catalog softmax
    cross-entropy over the non-padding targets), as its authors time it; one epoch of the same
    users, sizes and batch as the other rows."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from rectools.fast_transformers import FlatSASRecNet, SequenceBatchDataset, build_sequences
    from torch.utils.data import DataLoader

    p = cfg["params"]
    torch.manual_seed(0)
    with PeakRSS() as prep_mem:
        t0 = time.perf_counter()
        x, y, items, _ = build_sequences(torch.as_tensor(df["user_id"].to_numpy()),
                                         torch.as_tensor(df["item_id"].to_numpy()),
                                         torch.as_tensor(df["datetime"].to_numpy().astype("datetime64[ns]").astype(np.int64)), max_len=p["session_max_len"])
        prep_s = time.perf_counter() - t0
    net = FlatSASRecNet(len(items), p["n_factors"], p["n_blocks"], p["n_heads"], p["session_max_len"],
                        p["dropout_rate"]).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=p["lr"])
    loader = DataLoader(SequenceBatchDataset(x, y), batch_size=p["batch_size"], shuffle=True)
    n_batches = 0
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = net(batch)  # (B, L, n_items); item i is column i - 1
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["y"].reshape(-1) - 1, ignore_index=-1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n_batches += 1
            if batches and n_batches >= batches:
                break
        epoch_s = time.perf_counter() - t0
    return {"epoch_s": epoch_s, "batches": n_batches, "peak_rss": mem.peak, "prep_s": prep_s,
            "prep_rss": prep_mem.peak}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", choices=("seqrec", "rectools", "rectools-fast"), required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--configs", required=True, help="JSON list of {name, model, params}")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--batches", type=int, default=0, help="batches per measured epoch (0: all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--recommend-users", default="0",
                   help="comma-separated user counts: recommend for the first N users of the user map (0: all)")
    p.add_argument("--recommend-each", action="store_true",
                   help="recommend with every configuration's model (default: the first configuration's only)")
    p.add_argument("--out", required=True)
    a = p.parse_args()

    import numpy as np
    import pandas as pd
    import torch

    torch.set_num_threads(a.threads)
    cuda = a.device.startswith("cuda")
    from synthetic import load_frame

    df = load_frame(a.data)
    if a.lib == "rectools-fast":  # only the SASRec softmax configuration has a fast_transformers twin
        cfg = next(c for c in json.loads(a.configs) if c["name"] == "SASRec softmax")
        entry = fast_transformers_epoch(df, cfg, a.batches, a.device)
        result = {"lib": a.lib, "threads": torch.get_num_threads(), "prep_s": entry.pop("prep_s"),
                  "prep_rss": entry.pop("prep_rss"), "configs": {cfg["name"]: entry}}
        print(a.lib, cfg["name"], json.dumps(entry), flush=True)
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
        return
    if a.lib == "seqrec":
        sys.path.insert(0, os.path.dirname(HERE))
        import lightning as pl
        from seqrec import BERT4RecModel, Dataset, IdEmbeddingsItemNet, SASRecModel
        from seqrec.training import WindowDataset
    else:
        import pytorch_lightning as pl
        from rectools.dataset import Dataset
        from rectools.models import BERT4RecModel, SASRecModel
        from rectools.models.nn.item_net import IdEmbeddingsItemNet
    classes = {"SASRec": SASRecModel, "BERT4Rec": BERT4RecModel}
    layer_types: tp.Dict[str, tp.Any] = {}
    if a.lib == "seqrec":
        import seqrec

        if hasattr(seqrec, "HSTUModel"):
            classes["HSTU"] = seqrec.HSTUModel
        if hasattr(seqrec, "LiGRLayers"):
            layer_types["LiGRLayers"] = seqrec.LiGRLayers
    else:
        from rectools.models import HSTUModel
        from rectools.models.nn.transformers.ligr import LiGRLayers

        classes["HSTU"] = HSTUModel
        layer_types["LiGRLayers"] = LiGRLayers
    factory = make_trainer_factory(pl, a.batches or None, "gpu" if cuda else "cpu")
    configs = json.loads(a.configs)
    result: tp.Dict[str, tp.Any] = {"lib": a.lib, "threads": torch.get_num_threads(), "configs": {}}

    def build(cfg: tp.Dict[str, tp.Any]) -> tp.Any:
        torch.manual_seed(0)  # RecTools has no random_state; seqrec gets the same seed as one
        extra = {"random_state": 0} if a.lib == "seqrec" else {}
        if cfg.get("layers"):
            extra["transformer_layers_type"] = layer_types[cfg["layers"]]
        if a.lib == "seqrec":
            extra.update(cfg.get("seqrec_params", {}))  # seqrec-only options (RecTools keeps its default)
        return classes[cfg["model"]](**cfg["params"], epochs=1, item_net_block_types=(IdEmbeddingsItemNet,),
                                     get_trainer_func=factory, recommend_torch_device=a.device, **extra)

    # ---- dataset + training-sequence preparation (what fit does before its first batch)
    first = build(configs[0])
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        ds = Dataset.construct(df)
        if a.lib == "seqrec":
            lengths = ds.interactions.lengths
            train_users = np.flatnonzero(lengths >= 2)
            WindowDataset(ds.interactions, train_users, first._train_window())
            np.bincount(ds.interactions.items, minlength=ds.n_items)
        else:
            first.data_preparator.process_dataset_train(ds)
        result["prep_s"] = time.perf_counter() - t0
    result["prep_rss"] = mem.peak

    # ---- one training epoch per configuration
    fitted: tp.Dict[str, tp.Any] = {}  # configuration name -> fitted model whose recommend is timed
    for cfg in configs:
        if cfg["model"] not in classes or (cfg.get("layers") and cfg["layers"] not in layer_types):
            print(a.lib, cfg["name"], "not available in this version: skipped", flush=True)
            continue
        model = build(cfg)
        EPOCH.clear()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            model.fit(ds)
            fit_s = time.perf_counter() - t0
        entry = {"epoch_s": EPOCH["seconds"], "batches": EPOCH["batches"], "fit_s": fit_s, "peak_rss": mem.peak}
        if cuda:
            entry["cuda_max_allocated"] = torch.cuda.max_memory_allocated()
        result["configs"][cfg["name"]] = entry
        print(a.lib, cfg["name"], json.dumps(entry), flush=True)
        if not fitted or a.recommend_each:
            fitted[cfg["name"]] = model

    # ---- recommend for the first N users (all with 0) with the first configuration's model (every
    # configuration's with --recommend-each); a model that reads request times (HSTU with time
    # attention) gets them in `context`: each user's last interaction time, in both libraries
    result["recommend"] = []
    last_time = df.groupby("user_id")["datetime"].max()
    for name, model in fitted.items():
        for n_users in (int(x) for x in a.recommend_users.split(",")):
            users = ds.user_id_map.external_ids
            if n_users:
                users = users[:n_users]
            extra = {}
            if getattr(model, "require_recommend_context", False):
                extra["context"] = pd.DataFrame({"user_id": users, "datetime": last_time.loc[users].to_numpy()})
            with PeakRSS() as mem:
                t0 = time.perf_counter()
                reco = model.recommend(users, ds, k=10, filter_viewed=True, **extra)
                seconds = time.perf_counter() - t0
            result["recommend"].append({"config": name, "users": len(users), "seconds": seconds,
                                        "peak_rss": mem.peak, "rows": len(reco)})
            print(a.lib, "recommend", json.dumps(result["recommend"][-1]), flush=True)
    result["max_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
