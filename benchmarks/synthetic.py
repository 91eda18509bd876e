"""Seeded synthetic interactions: Zipf-like item popularity, per-user activity and timestamps.

Used by the speed and memory benchmarks; the same seed gives the same table on every run.
``python benchmarks/synthetic.py --n-users 20000 --n-items 10000 --n-interactions 1000000 --out x.npz``
"""

from __future__ import annotations

import argparse
import typing as tp

import numpy as np


def generate(n_users: int, n_items: int, n_interactions: int, zipf_a: float = 1.0, seed: int = 0
             ) -> tp.Dict[str, np.ndarray]:
    """Columns ``user_id, item_id, weight, datetime`` (int64 seconds) as numpy arrays.

    Item ``i`` (0-based rank) is drawn with probability proportional to ``(i + 1) ** -zipf_a``;
    users get a log-normal number of interactions (at least 2, total ``n_interactions``); each
    user's timestamps increase from a random start. Item ids are shuffled so that popularity is
    not the id order.
    """
    rng = np.random.default_rng(seed)
    # interactions per user: log-normal activity, scaled to the total, at least 2 each
    activity = rng.lognormal(mean=0.0, sigma=0.8, size=n_users)
    lengths = np.maximum(2, np.floor(activity / activity.sum() * n_interactions)).astype(np.int64)
    diff = n_interactions - int(lengths.sum())
    if diff > 0:
        np.add.at(lengths, rng.integers(0, n_users, diff), 1)
    total = int(lengths.sum())
    users = np.repeat(np.arange(n_users, dtype=np.int64), lengths)
    popularity = (np.arange(1, n_items + 1, dtype=np.float64)) ** -zipf_a
    popularity /= popularity.sum()
    ranks = rng.choice(n_items, size=total, p=popularity)
    item_of_rank = rng.permutation(n_items)
    items = item_of_rank[ranks].astype(np.int64)
    # every item appears at least once, so the catalog is exactly n_items
    if total >= n_items:
        items[rng.choice(total, n_items, replace=False)] = np.arange(n_items)
    start = rng.integers(1_500_000_000, 1_600_000_000, n_users)
    steps = rng.integers(1, 3600, total)
    user_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
    cum = np.cumsum(steps)
    times = start[users] + cum - np.concatenate([[0], cum])[user_start]
    order = rng.permutation(total)  # rows arrive unsorted, as in a real log
    return {
        "user_id": users[order],
        "item_id": items[order],
        "weight": np.ones(total, dtype=np.float32),
        "datetime": times[order].astype(np.int64),
    }


def save(path: str, **kwargs: tp.Any) -> None:
    np.savez(path, **generate(**kwargs))


def load_frame(path: str) -> "tp.Any":
    """The saved arrays as a pandas DataFrame with a datetime column."""
    import pandas as pd

    data = np.load(path)
    return pd.DataFrame({
        "user_id": data["user_id"],
        "item_id": data["item_id"],
        "weight": data["weight"],
        "datetime": pd.to_datetime(data["datetime"], unit="s"),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-users", type=int, default=20_000)
    parser.add_argument("--n-items", type=int, default=10_000)
    parser.add_argument("--n-interactions", type=int, default=1_000_000)
    parser.add_argument("--zipf-a", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    a = parser.parse_args()
    save(a.out, n_users=a.n_users, n_items=a.n_items, n_interactions=a.n_interactions, zipf_a=a.zipf_a, seed=a.seed)


if __name__ == "__main__":
    main()
