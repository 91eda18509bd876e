#!/usr/bin/env python
"""Train a RecTools 0.19 SASRec/BERT4Rec on a split written by ``quality.py`` and write its
recommendations. Runs in the RecTools virtual environment (``.venv-rectools``), as a subprocess of
``quality.py``, which computes the metrics with ``seqrec.metrics`` on the same split.

Usage: ``.venv-rectools/bin/python benchmarks/rectools_quality_runner.py SPEC.json``, where the spec
holds ``model`` ("sasrec" or "bert4rec"), ``params`` (seqrec constructor names: they are shared
with RecTools), ``seed``, ``k``, ``device``, ``threads``, ``deterministic``, and the paths
``train``, ``history`` (train + validation: the histories used at test time), ``users`` (test
users), optional ``item_features_path``, optional ``val_context`` and ``test_context`` (CSVs of
``user_id, datetime``: the request times HSTU's time attention reads), and the outputs ``reco``
(CSV) and ``info`` (JSON).
"""

from __future__ import annotations

import json
import sys
import time
import typing as tp

import numpy as np
import pandas as pd

# RecTools names equal seqrec's for every parameter passed (RecTools defines the interface)
SHARED_PARAMS = ("n_blocks", "n_heads", "n_factors", "dropout_rate", "session_max_len", "loss", "n_negatives",
                 "gbce_t", "lr", "batch_size", "epochs")
# HSTU's own parameters, passed when the spec has them
HSTU_PARAMS = ("relative_time_attention", "relative_pos_attention")


def read_times(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its ``datetime`` column read as datetimes."""
    if not pd.api.types.is_numeric_dtype(df["datetime"]):
        df["datetime"] = pd.to_datetime(df["datetime"])
    else:
        # line numbers (ML-1M, Beauty): as nanoseconds since the epoch, order preserved
        df["datetime"] = pd.to_datetime(df["datetime"].astype("int64"), unit="ns")
    return df


def read_interactions(path: str) -> pd.DataFrame:
    df = read_times(pd.read_csv(path))
    df["weight"] = 1.0
    return df[["user_id", "item_id", "weight", "datetime"]]


def read_context(path: tp.Optional[str]) -> tp.Optional[pd.DataFrame]:
    """The request time of each user (``user_id, datetime``), for HSTU's time attention; None without a path."""
    return read_times(pd.read_csv(path))[["user_id", "datetime"]] if path else None


def main(spec_path: str) -> None:
    spec = json.loads(open(spec_path).read())
    import torch
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    from lightning_fabric.utilities.seed import seed_everything
    from pytorch_lightning import Trainer
    from rectools import __version__ as rectools_version
    from rectools.dataset import Dataset
    from rectools.models import BERT4RecModel, SASRecModel
    from rectools.models.nn.item_net import CatFeaturesItemNet, IdEmbeddingsItemNet

    seed = int(spec["seed"])
    params = {k: v for k, v in spec["params"].items() if k in SHARED_PARAMS}
    if spec["model"] == "bert4rec" and "mask_prob" in spec["params"]:
        params["mask_prob"] = spec["params"]["mask_prob"]
    if spec["model"] == "hstu":
        params.update({k: v for k, v in spec["params"].items() if k in HSTU_PARAMS})
    epochs = int(params["epochs"])
    accelerator = "gpu" if str(spec["device"]).startswith("cuda") else "cpu"

    from pytorch_lightning import Callback

    epoch_train_s: tp.List[float] = []  # filled by the callback (RecTools deep-copies the trainer)

    class EpochTimer(Callback):
        def on_train_epoch_start(self, trainer: tp.Any, pl_module: tp.Any) -> None:
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer: tp.Any, pl_module: tp.Any) -> None:
            epoch_train_s.append(round(time.perf_counter() - self.t0, 3))

    def get_trainer() -> Trainer:
        return Trainer(max_epochs=epochs, min_epochs=epochs, deterministic=bool(spec["deterministic"]),
                       enable_checkpointing=False, logger=False, devices=1, accelerator=accelerator,
                       enable_progress_bar=False, enable_model_summary=False, callbacks=[EpochTimer()])

    item_features = None
    blocks: tp.Tuple[type, ...] = (IdEmbeddingsItemNet,)
    if spec.get("item_features_path"):
        item_features = pd.read_csv(spec["item_features_path"])
        blocks = (IdEmbeddingsItemNet, CatFeaturesItemNet)
    cat = sorted(item_features["feature"].unique()) if item_features is not None else None

    def make_dataset(df: pd.DataFrame) -> Dataset:
        if item_features is None:
            return Dataset.construct(df)
        feats = item_features[item_features["id"].isin(df["item_id"])]
        return Dataset.construct(df, item_features_df=feats, cat_item_features=cat)

    train = make_dataset(read_interactions(spec["train"]))
    history = make_dataset(read_interactions(spec["history"]))
    users = pd.read_csv(spec["users"])["user_id"].to_numpy()
    from rectools.models import HSTUModel

    cls = {"sasrec": SASRecModel, "bert4rec": BERT4RecModel, "hstu": HSTUModel}[spec["model"]]
    if spec.get("transformer_layers_type"):  # RecTools' own layer classes, by name
        from rectools.models.nn.transformers.net_blocks import PreLNTransformerLayers
        from rectools.models.nn.transformers.ligr import LiGRLayers
        from rectools.models.nn.transformers.sasrec import SASRecTransformerLayers
        layers = {"PreLNTransformerLayers": PreLNTransformerLayers, "SASRecTransformerLayers": SASRecTransformerLayers,
                  "LiGRLayers": LiGRLayers}
        params["transformer_layers_type"] = layers[spec["transformer_layers_type"]]
    params.update(spec.get("rectools_params") or {})  # RecTools-only parameters (ablations)
    model = cls(**params, item_net_block_types=blocks, get_trainer_func=get_trainer,
                recommend_torch_device=spec["device"], deterministic=bool(spec["deterministic"]), verbose=0)
    seed_everything(seed, workers=True)
    val_s: tp.List[float] = []
    t0 = time.perf_counter()
    if spec.get("val_users"):
        val_users = pd.read_csv(spec["val_users"])["user_id"].to_numpy()
        val_context = read_context(spec.get("val_context"))
        for epoch in range(1, epochs + 1):
            model.fit_partial(train, min_epochs=1, max_epochs=1)
            t1 = time.perf_counter()
            val = model.recommend(users=val_users, dataset=train, k=int(spec.get("k_val", 10)), filter_viewed=True,
                                  on_unsupported_targets="warn", context=val_context)
            val[["user_id", "item_id", "rank"]].to_csv(spec["val_reco"].format(epoch=epoch), index=False)
            val_s.append(round(time.perf_counter() - t1, 3))
            print(f"[rectools runner] epoch {epoch}: {epoch_train_s[-1]:.1f}s train, {val_s[-1]:.1f}s val",
                  flush=True)
    else:
        model.fit(train)
    fit_s = time.perf_counter() - t0 - sum(val_s)
    t0 = time.perf_counter()
    reco = model.recommend(users=users, dataset=history, k=int(spec["k"]), filter_viewed=True,
                           on_unsupported_targets="warn", context=read_context(spec.get("test_context")))
    test_s = time.perf_counter() - t0
    reco[["user_id", "item_id", "rank"]].to_csv(spec["reco"], index=False)
    with open(spec["info"], "w") as f:
        json.dump({"fit_s": round(fit_s, 1), "test_s": round(test_s, 1), "rectools_version": rectools_version,
                   "n_reco_users": int(pd.unique(reco["user_id"]).size), "torch": torch.__version__,
                   "numpy": np.__version__, "epoch_train_s": epoch_train_s, "epoch_val_s": val_s}, f)
    print(f"[rectools runner] fit {fit_s:.1f}s, recommend {test_s:.1f}s", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: rectools_quality_runner.py SPEC.json")
    main(sys.argv[1])
