"""The demo: SASRec with ids + genres on the embedded MovieLens latest-small, against popularity.

Run it with ``seqrec demo`` or ``python -m seqrec demo``.
"""

from __future__ import annotations

import time
import typing as tp

import numpy as np
import pandas as pd

from .columns import Columns
from .dataset import Dataset
from .datasets import load_movielens_small
from .models import SASRecModel
from .nn.item_net import CatFeaturesItemNet, IdEmbeddingsItemNet

DEMO_PARAMS: tp.Dict[str, tp.Any] = dict(
    n_factors=64, n_blocks=2, n_heads=2, dropout_rate=0.3, session_max_len=50, lr=0.002, batch_size=64,
    epochs=20, item_net_block_types=(IdEmbeddingsItemNet, CatFeaturesItemNet),
)


def last_item_holdout(interactions: pd.DataFrame) -> tp.Tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's last interaction (by time, ties in input order) is the test; the rest is train."""
    order = np.argsort(interactions[Columns.Datetime].to_numpy(), kind="stable")
    order = order[np.argsort(interactions[Columns.User].to_numpy()[order], kind="stable")]
    ordered = interactions.iloc[order]
    is_last = ~ordered.duplicated(Columns.User, keep="last").to_numpy()
    return ordered[~is_last], ordered[is_last]


def popularity_recommend(train: pd.DataFrame, users: np.ndarray, k: int) -> pd.DataFrame:
    """Most popular train items not yet seen by each user (vectorised over a candidate pool)."""
    counts = train[Columns.Item].value_counts()
    pool = counts.index.to_numpy()[: k + int(train.groupby(Columns.User).size().max())]
    grid = pd.DataFrame({Columns.User: np.repeat(users, len(pool)), Columns.Item: np.tile(pool, len(users)),
                         "_order": np.tile(np.arange(len(pool)), len(users))})
    seen = train[[Columns.User, Columns.Item]].drop_duplicates().assign(_seen=True)
    grid = grid.merge(seen, on=[Columns.User, Columns.Item], how="left")
    grid = grid[grid["_seen"].isna()].sort_values([Columns.User, "_order"], kind="stable")
    grid[Columns.Rank] = grid.groupby(Columns.User).cumcount() + 1
    return grid[grid[Columns.Rank] <= k][[Columns.User, Columns.Item, Columns.Rank]]


def hit_rate_and_ndcg(reco: pd.DataFrame, test: pd.DataFrame, k: int) -> tp.Tuple[float, float]:
    """HR@k and NDCG@k with one target per user, averaged over all test users."""
    hits = reco[reco[Columns.Rank] <= k].merge(test[[Columns.User, Columns.Item]], on=[Columns.User, Columns.Item])
    n = test[Columns.User].nunique()
    return len(hits) / n, float((1.0 / np.log2(hits[Columns.Rank].to_numpy() + 1.0)).sum() / n)


def run_demo(epochs: tp.Optional[int] = None, n_show: int = 3, seed: int = 42,
             out: tp.Callable[[str], None] = print) -> tp.Dict[str, tp.Dict[str, float]]:
    """Train, evaluate and print; returns the metrics of both models."""
    start = time.perf_counter()
    data = load_movielens_small()
    train, test = last_item_holdout(data.interactions)
    dataset = Dataset.construct(train, item_features_df=data.item_features, cat_item_features=["genre"])
    out(f"MovieLens latest-small: {dataset.n_users} users, {dataset.n_items} items, "
        f"{len(train)} train interactions, {len(test)} test items (each user's last)")
    params = dict(DEMO_PARAMS, random_state=seed)
    if epochs is not None:
        params["epochs"] = epochs
    model = SASRecModel(**params)
    t0 = time.perf_counter()
    model.fit(dataset)
    fit_time = time.perf_counter() - t0
    users = test[Columns.User].to_numpy()
    reco = model.recommend(users, dataset, k=10, filter_viewed=True, on_unsupported_targets="warn")
    pop = popularity_recommend(train, users, k=10)
    results = {"SASRec (ids + genres)": hit_rate_and_ndcg(reco, test, 10), "Popularity": hit_rate_and_ndcg(pop, test, 10)}
    out(f"\nSASRec trained {params['epochs']} epochs in {fit_time:.1f} s\n")
    out(f"{'model':<24}{'HR@10':>8}{'NDCG@10':>10}")
    for name, (hr, ndcg) in results.items():
        out(f"{name:<24}{hr:>8.4f}{ndcg:>10.4f}")
    titles = data.items.set_index(Columns.Item)["title"]
    for user in users[:n_show]:
        history = train[train[Columns.User] == user][Columns.Item].to_numpy()[-5:]
        out(f"\nuser {user}: last watched")
        for item in history:
            out(f"    {titles.get(item, item)}")
        out("  recommended:")
        for item in reco[reco[Columns.User] == user][Columns.Item].to_numpy()[:5]:
            out(f"    {titles.get(item, item)}")
        out(f"  actually watched next: {titles.get(test[test[Columns.User] == user][Columns.Item].iloc[0])}")
    out(f"\nTotal time {time.perf_counter() - start:.1f} s")
    return {name: {"HR@10": hr, "NDCG@10": ndcg} for name, (hr, ndcg) in results.items()}
