"""Loaders for the benchmark files kept outside the package (ML-1M and Amazon Beauty in the
SASRec/S3-Rec forms). Their licences forbid shipping them: the caller says where they are.

Both files carry no timestamps, only order; the loaders emit a ``datetime`` column holding the
global position of each interaction in the file, so that a stable sort by time keeps the file order.
"""

from __future__ import annotations

import json
import os
import typing as tp
from pathlib import Path

import numpy as np
import pandas as pd

from ..columns import Columns

PathLike = tp.Union[str, "os.PathLike[str]"]

__all__ = ["SharedData", "load_beauty", "load_ml_1m"]


class SharedData(tp.NamedTuple):
    """Interactions (``user_id, item_id, datetime``) and flat item features (``id, value, feature``)."""

    interactions: pd.DataFrame
    item_features: pd.DataFrame


def _existing(data_dir: PathLike, name: str) -> Path:
    path = Path(data_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"{name} not found in {str(data_dir)!r} (looked for {str(path)!r})")
    return path


def load_ml_1m(data_dir: PathLike) -> SharedData:
    """MovieLens-1M as used by SASRec/BERT4Rec: ``data_dir`` holds ``ml-1m.txt`` (``user item``
    per line, in time order) and ``items.csv`` (``item_id, ..., genres`` pipe-separated).

    Item features: one row per (item, genre), feature ``"genre"``.
    6,040 users, 3,416 items, 999,611 interactions.
    """
    pairs = pd.read_csv(_existing(data_dir, "ml-1m.txt"), sep=" ", header=None, names=[Columns.User, Columns.Item],
                        dtype=np.int64)
    interactions = pairs.assign(**{Columns.Datetime: np.arange(len(pairs), dtype=np.int64)})
    items = pd.read_csv(_existing(data_dir, "items.csv"))
    missing = [c for c in ("item_id", "genres") if c not in items.columns]
    if missing:
        raise ValueError(f"items.csv is missing column(s) {missing}; it has {list(items.columns)}")
    genres = items[["item_id"]].assign(value=items["genres"].fillna("").str.split("|")).explode("value")
    genres = genres[genres["value"].notna() & (genres["value"] != "")]
    item_features = pd.DataFrame({
        Columns.Id: genres["item_id"].to_numpy(dtype=np.int64),
        Columns.Value: genres["value"].to_numpy(dtype=object),
        Columns.Feature: "genre",
    })
    return SharedData(interactions, item_features)


def load_beauty(data_dir: PathLike) -> SharedData:
    """Amazon Beauty (5-core, S3-Rec form): ``data_dir`` holds ``Beauty.txt`` (``user item item ...``
    per line, in time order) and ``Beauty_item2attributes.json`` (item id -> attribute ids).

    Item features: one row per (item, attribute id), feature ``"attribute"``.
    22,363 users, 12,101 items, 198,502 interactions.
    """
    with open(_existing(data_dir, "Beauty.txt")) as f:
        rows = [line.split() for line in f if line.strip()]
    lengths = np.fromiter((len(r) - 1 for r in rows), dtype=np.int64, count=len(rows))
    if (lengths < 1).any():
        line = int(np.flatnonzero(lengths < 1)[0]) + 1
        raise ValueError(f"Beauty.txt: line {line} has a user but no items")
    users = np.fromiter((int(r[0]) for r in rows), dtype=np.int64, count=len(rows))
    items = np.fromiter((int(tok) for r in rows for tok in r[1:]), dtype=np.int64, count=int(lengths.sum()))
    interactions = pd.DataFrame({
        Columns.User: np.repeat(users, lengths),
        Columns.Item: items,
        Columns.Datetime: np.arange(len(items), dtype=np.int64),
    })
    with open(_existing(data_dir, "Beauty_item2attributes.json")) as f:
        attributes = json.load(f)
    keys = list(attributes.keys())
    counts = np.fromiter((len(attributes[key]) for key in keys), dtype=np.int64, count=len(keys))
    item_features = pd.DataFrame({
        Columns.Id: np.repeat(np.array([int(key) for key in keys], dtype=np.int64), counts),
        Columns.Value: np.fromiter((v for key in keys for v in attributes[key]), dtype=np.int64,
                                   count=int(counts.sum())),
        Columns.Feature: "attribute",
    })
    return SharedData(interactions, item_features)
