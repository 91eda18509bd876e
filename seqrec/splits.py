"""Train/validation/test splits of an interactions DataFrame.

Time order is the ``datetime`` column when present, read exactly as :meth:`seqrec.Dataset.construct`
reads it (datetime strings parsed, floats not truncated; ties keep input order: stable sorts), else
the row order. Every split returns new DataFrames holding rows of the input in their input order
(original index kept), ready for :meth:`seqrec.Dataset.construct`; the input is never modified.
"""

from __future__ import annotations

import typing as tp

import numpy as np
import pandas as pd

from .columns import Columns
from .dataset import _time_values, check_columns

__all__ = ["last_n_split", "leave_one_out", "time_split"]


def _check_interactions(df: tp.Any) -> None:
    check_columns(df, "interactions", [Columns.User, Columns.Item]
                  + ([Columns.Datetime] if isinstance(df, pd.DataFrame) and Columns.Datetime in df.columns else []))


def _check_count(name: str, value: tp.Any, minimum: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def positions_from_end(user_codes: np.ndarray, times: np.ndarray) -> tp.Tuple[np.ndarray, np.ndarray]:
    """For each row: 0 for its user's latest interaction, 1 for the one before, ...; and the
    user's number of interactions. Time ties are broken by row order (a later row is later), as
    RecTools' ``LastNSplitter`` does. Shared by the functions here and
    :class:`seqrec.model_selection.LastNSplitter`."""
    n = len(user_codes)
    user_codes = np.asarray(user_codes, dtype=np.int64)
    order = np.argsort(np.asarray(times), kind="stable")
    order = order[np.argsort(user_codes[order], kind="stable")]  # by user, then time, then row
    counts = np.bincount(user_codes) if n else np.zeros(0, dtype=np.int64)
    sorted_users = user_codes[order]
    starts = np.r_[0, np.cumsum(counts)[:-1]] if n else np.zeros(0, dtype=np.int64)
    pos_from_start = np.arange(n) - starts[sorted_users]
    from_end = np.empty(n, dtype=np.int64)
    from_end[order] = counts[sorted_users] - 1 - pos_from_start
    return from_end, counts[user_codes]


def cold_test_mask(train: np.ndarray, users: np.ndarray, items: np.ndarray, filter_cold_users: bool,
                   filter_cold_items: bool) -> np.ndarray:
    """Rows to keep in test: without those of users / items absent from the ``train`` rows (a
    boolean mask or row positions). ``users`` and ``items`` are codes or ids of every row."""
    keep = np.ones(len(users), dtype=bool)
    if filter_cold_users:
        keep &= np.isin(users, users[train])
    if filter_cold_items:
        keep &= np.isin(items, items[train])
    return keep


def _positions_from_end(df: pd.DataFrame) -> tp.Tuple[np.ndarray, np.ndarray]:
    times = _time_values(df[Columns.Datetime]) if Columns.Datetime in df.columns else np.arange(len(df))
    return positions_from_end(pd.factorize(df[Columns.User])[0], times)


def leave_one_out(interactions: pd.DataFrame, min_train_interactions: int = 1
                  ) -> tp.Tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split into ``(train, val, test)``: each user's last interaction is the test target, the one
    before is the validation target, the rest is training.

    A target is only held out when at least ``min_train_interactions`` earlier interactions of
    the user stay in train: with the default 1, a user with one interaction is all train, a
    user with two gets a test target but no validation target. Validation uses ``train`` as
    history and test uses ``train`` + ``val``.
    """
    _check_interactions(interactions)
    _check_count("min_train_interactions", min_train_interactions, 0)
    from_end, counts = _positions_from_end(interactions)
    is_test = (from_end == 0) & (counts - 1 >= min_train_interactions)
    is_val = (from_end == 1) & (counts - 2 >= min_train_interactions)
    is_train = ~(is_test | is_val)
    return interactions.loc[is_train].copy(), interactions.loc[is_val].copy(), interactions.loc[is_test].copy()


def last_n_split(interactions: pd.DataFrame, n: int, min_train_interactions: int = 1
                 ) -> tp.Tuple[pd.DataFrame, pd.DataFrame]:
    """Split into ``(train, test)``: each user's last ``n`` interactions go to test.

    A user with fewer than ``n + min_train_interactions`` interactions stays entirely in train
    (no test targets without enough history).
    """
    _check_interactions(interactions)
    _check_count("n", n, 1)
    _check_count("min_train_interactions", min_train_interactions, 0)
    from_end, counts = _positions_from_end(interactions)
    is_test = (from_end < n) & (counts >= n + min_train_interactions)
    return interactions.loc[~is_test].copy(), interactions.loc[is_test].copy()


def time_split(interactions: pd.DataFrame, timestamp: tp.Any, filter_cold_users: bool = True,
               filter_cold_items: bool = True) -> tp.Tuple[pd.DataFrame, pd.DataFrame]:
    """Split into ``(train, test)``: train holds interactions strictly before ``timestamp``,
    test those at or after it.

    With ``filter_cold_users`` / ``filter_cold_items``, test rows of users / items absent from
    train are dropped (a model trained on train cannot rank them).
    """
    _check_interactions(interactions)
    if Columns.Datetime not in interactions.columns:
        raise ValueError(f"time_split needs a '{Columns.Datetime}' column; interactions has "
                         f"{list(interactions.columns)}")
    col = interactions[Columns.Datetime]
    if pd.api.types.is_datetime64_any_dtype(col):
        try:
            ts = pd.Timestamp(timestamp)
        except (ValueError, TypeError) as e:
            raise ValueError(f"timestamp {timestamp!r} is not a date/time: {e}") from None
        if (ts.tzinfo is None) != (col.dt.tz is None):
            raise ValueError(f"timestamp {timestamp!r} and column '{Columns.Datetime}' ({col.dtype}) must both "
                             "have a time zone or both have none")
        before = (col < ts).to_numpy()
    elif pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        if not isinstance(timestamp, (int, float, np.integer, np.floating)) or isinstance(timestamp, bool):
            raise ValueError(f"column '{Columns.Datetime}' is numeric ({col.dtype}): timestamp must be a number, "
                             f"got {timestamp!r}")
        before = (col < timestamp).to_numpy()
    else:
        raise ValueError(f"column '{Columns.Datetime}' must hold datetimes or numbers, got dtype {col.dtype}")
    users = pd.factorize(interactions[Columns.User])[0]
    items = pd.factorize(interactions[Columns.Item])[0]
    keep = ~before & cold_test_mask(before, users, items, filter_cold_users, filter_cold_items)
    return interactions.loc[before].copy(), interactions.loc[keep].copy()
