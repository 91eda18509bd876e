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
from .metrics import NDCG, HitRate, calc_metrics
from .models import SASRecModel
from .nn.item_net import CatFeaturesItemNet, IdEmbeddingsItemNet
from .splits import last_n_split

DEMO_PARAMS: tp.Dict[str, tp.Any] = dict(
    n_factors=64, n_blocks=2, n_heads=2, dropout_rate=0.3, session_max_len=50, lr=0.002, batch_size=64,
    epochs=20, item_net_block_types=(IdEmbeddingsItemNet, CatFeaturesItemNet),
)


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


def run_demo(epochs: tp.Optional[int] = None, n_show: int = 3, seed: int = 42,
             out: tp.Callable[[str], None] = print, progress: bool = False) -> tp.Dict[str, tp.Dict[str, float]]:
    """Train, evaluate and print; returns the metrics of both models. ``progress``: Lightning's
    progress bar and the loss of each epoch while SASRec trains."""
    start = time.perf_counter()
    data = load_movielens_small()
    train, test = last_n_split(data.interactions, n=1)  # each user's last interaction is the test
    dataset = Dataset.construct(train, item_features_df=data.item_features, cat_item_features=["genre"])
    out(f"MovieLens latest-small: {dataset.n_users} users, {dataset.n_items} items, "
        f"{len(train)} train interactions, {len(test)} test items (each user's last)")
    params = dict(DEMO_PARAMS, random_state=seed, verbose=1 if progress else 0)
    if epochs is not None:
        params["epochs"] = epochs
    model = SASRecModel(**params)
    t0 = time.perf_counter()
    model.fit(dataset)
    fit_time = time.perf_counter() - t0
    users = test[Columns.User].to_numpy()
    reco = model.recommend(users, dataset, k=10, filter_viewed=True, on_unsupported_targets="warn")
    pop = popularity_recommend(train, users, k=10)
    # NDCG in the papers' convention (one target: divided by the ideal DCG of one hit)
    metrics = {"HR@10": HitRate(10), "NDCG@10": NDCG(10, divide_by_achievable=True)}
    results = {"SASRec (ids + genres)": calc_metrics(metrics, reco, test), "Popularity": calc_metrics(metrics, pop, test)}
    out(f"\nSASRec trained {params['epochs']} epochs in {fit_time:.1f} s\n")
    out(f"{'model':<24}{'HR@10':>8}{'NDCG@10':>10}")
    for name, values in results.items():
        out(f"{name:<24}{values['HR@10']:>8.4f}{values['NDCG@10']:>10.4f}")
    titles = data.items.set_index(Columns.Item)["title"]
    history_by_time = dataset.get_raw_interactions()
    for user in users[:n_show]:
        history = history_by_time[history_by_time[Columns.User] == user][Columns.Item].to_numpy()[-5:]
        out(f"\nuser {user}: last watched")
        for item in history:
            out(f"    {titles.get(item, item)}")
        out("  recommended:")
        for item in reco[reco[Columns.User] == user][Columns.Item].to_numpy()[:5]:
            out(f"    {titles.get(item, item)}")
        out(f"  actually watched next: {titles.get(test[test[Columns.User] == user][Columns.Item].iloc[0])}")
    out(f"\nTotal time {time.perf_counter() - start:.1f} s")
    return results
