import numpy as np
import pandas as pd
import pytest
import torch

from seqrec import Columns, Dataset

# The test models are tiny: one thread is faster than several, and immune to a busy machine.
torch.set_num_threads(1)

N_CYCLE_ITEMS = 12


def make_cycle_interactions(n_users: int = 120, n_items: int = N_CYCLE_ITEMS, seed: int = 0,
                            min_len: int = 4, max_len: int = 16) -> pd.DataFrame:
    """Users walk a fixed cycle of items: after item i always comes item (i + 1) % n_items.

    The right answer is known: for every user the next item must rank first.
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, n_users)
    starts = rng.integers(0, n_items, n_users)
    users = np.repeat(np.arange(n_users), lengths)
    steps = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    items = (np.repeat(starts, lengths) + steps) % n_items
    # external ids as strings, to exercise non-integer ids; rows shuffled, order given by datetime
    df = pd.DataFrame({
        Columns.User: [f"u{u}" for u in users],
        Columns.Item: [f"i{i}" for i in items],
        Columns.Weight: 1.0,
        Columns.Datetime: pd.Timestamp("2024-01-01") + pd.to_timedelta(steps, unit="h"),
    })
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def expected_next(df: pd.DataFrame, n_items: int = N_CYCLE_ITEMS) -> pd.Series:
    last = df.sort_values(Columns.Datetime, kind="stable").groupby(Columns.User)[Columns.Item].last()
    return last.map(lambda s: f"i{(int(s[1:]) + 1) % n_items}")


@pytest.fixture(scope="session")
def cycle_df() -> pd.DataFrame:
    return make_cycle_interactions()


@pytest.fixture(scope="session")
def cycle_dataset(cycle_df: pd.DataFrame) -> Dataset:
    return Dataset.construct(cycle_df)
