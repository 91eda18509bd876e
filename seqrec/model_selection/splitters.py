"""Splitters of interactions into train and test folds, under RecTools' names and arguments.

``split(interactions)`` takes ``dataset.interactions`` (row ``i`` is row ``i`` of
``dataset.get_raw_interactions()``: grouped by user, each user's rows in time order), a
:class:`~seqrec.Dataset` (the same rows) or an interactions DataFrame (its rows by position),
and yields ``(train_ids, test_ids, fold_info)``: arrays of row positions and a dict with
``i_split`` (and, with ``collect_fold_stats=True``, the sizes ``train``, ``train_users``,
``train_items``, ``test``, ``test_users``, ``test_items``). Test rows of users or items absent
from the fold's train part, and (user, item) pairs already in it, are dropped by default
(``filter_cold_users``, ``filter_cold_items``, ``filter_already_seen``).
"""

from __future__ import annotations

import re
import typing as tp
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..columns import Columns
from ..dataset import Dataset, Interactions, _is_numeric_time, _time_values, check_columns
from ..splits import cold_test_mask, positions_from_end

__all__ = ["LastNSplitter", "RandomSplitter", "Splitter", "TimeRangeSplitter"]

Fold = tp.Tuple[np.ndarray, np.ndarray, tp.Dict[str, tp.Any]]


@dataclass(frozen=True)
class _Rows:
    """The rows to split: user and item codes, times (int64) and whether they are datetimes (ns)."""

    users: np.ndarray
    items: np.ndarray
    times: np.ndarray
    are_datetimes: bool

    def __len__(self) -> int:
        return len(self.users)

    @classmethod
    def of(cls, interactions: tp.Any) -> "_Rows":
        if isinstance(interactions, Dataset):
            interactions = interactions.interactions
        if isinstance(interactions, Interactions):
            users = np.repeat(np.arange(interactions.n_users), interactions.lengths)
            return cls(users, np.asarray(interactions.items), np.asarray(interactions.times),
                       interactions.times_are_datetimes)
        if isinstance(interactions, pd.DataFrame):
            check_columns(interactions, "interactions", [Columns.User, Columns.Item])
            if Columns.Datetime in interactions.columns:
                check_columns(interactions, "interactions", [Columns.Datetime])
                col = interactions[Columns.Datetime]
                times, are_datetimes = _time_values(col), not _is_numeric_time(col)
            else:
                times, are_datetimes = np.arange(len(interactions), dtype=np.int64), False
            return cls(pd.factorize(interactions[Columns.User])[0], pd.factorize(interactions[Columns.Item])[0],
                       times, are_datetimes)
        raise TypeError("interactions must be dataset.interactions, a seqrec Dataset or a pandas DataFrame, got "
                        f"{type(interactions).__name__}")


def _check_flag(value: tp.Any, name: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def _check_count(value: tp.Any, name: str) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class Splitter:
    """Base class: a subclass yields unfiltered folds from ``_split_without_filter``."""

    def __init__(self, filter_cold_users: bool = True, filter_cold_items: bool = True,
                 filter_already_seen: bool = True) -> None:
        for name, value in (("filter_cold_users", filter_cold_users), ("filter_cold_items", filter_cold_items),
                            ("filter_already_seen", filter_already_seen)):
            _check_flag(value, name)
        self.filter_cold_users = filter_cold_users
        self.filter_cold_items = filter_cold_items
        self.filter_already_seen = filter_already_seen

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def split(self, interactions: tp.Any, collect_fold_stats: bool = False) -> tp.Iterator[Fold]:
        """Yield ``(train_ids, test_ids, fold_info)`` for each fold (row positions, see the module)."""
        _check_flag(collect_fold_stats, "collect_fold_stats")
        rows = _Rows.of(interactions)
        for train_ids, test_ids, info in self._split_without_filter(rows):
            yield self.filter(rows, collect_fold_stats, train_ids, test_ids, info)

    def _split_without_filter(self, rows: _Rows) -> tp.Iterator[Fold]:
        raise NotImplementedError

    def filter(self, rows: _Rows, collect_fold_stats: bool, train_ids: np.ndarray, test_ids: np.ndarray,
               info: tp.Dict[str, tp.Any]) -> Fold:
        """Drop test rows of cold users / items and already seen pairs; add the fold's sizes."""
        test_users, test_items = rows.users[test_ids], rows.items[test_ids]
        train_users, train_items = rows.users[train_ids], rows.items[train_ids]
        both = np.concatenate([train_ids, test_ids])
        keep = cold_test_mask(np.arange(len(train_ids)), rows.users[both], rows.items[both],
                              self.filter_cold_users, self.filter_cold_items)[len(train_ids):]
        if self.filter_already_seen and len(test_ids):
            n_items = int(rows.items.max()) + 1
            keep &= ~np.isin(test_users * n_items + test_items, train_users * n_items + train_items)
        test_ids = test_ids[keep]
        if collect_fold_stats:
            info.update(train=len(train_ids), train_users=len(np.unique(train_users)),
                        train_items=len(np.unique(train_items)), test=len(test_ids),
                        test_users=len(np.unique(rows.users[test_ids])),
                        test_items=len(np.unique(rows.items[test_ids])))
        return train_ids, test_ids, info


class LastNSplitter(Splitter):
    """Leave-n-out by recent activity: fold ``i`` of ``n_splits`` tests each user's ``n``
    interactions before the last ``(n_splits - 1 - i) * n`` and trains on the earlier ones
    (the last fold tests the last ``n``). Same-time interactions are ordered by row (the later
    row is the more recent), as RecTools 0.19 does."""

    def __init__(self, n: int, n_splits: int = 1, filter_cold_users: bool = True, filter_cold_items: bool = True,
                 filter_already_seen: bool = True) -> None:
        super().__init__(filter_cold_users, filter_cold_items, filter_already_seen)
        _check_count(n, "n")
        _check_count(n_splits, "n_splits")
        self.n = n
        self.n_splits = n_splits

    def _split_without_filter(self, rows: _Rows) -> tp.Iterator[Fold]:
        from_end, _ = positions_from_end(rows.users, rows.times)  # 0 = the user's latest
        for i_split in range(self.n_splits):
            newer = (self.n_splits - 1 - i_split) * self.n  # rows after this fold's test rows
            test = (from_end >= newer) & (from_end < newer + self.n)
            yield np.flatnonzero(from_end >= newer + self.n), np.flatnonzero(test), {"i_split": i_split}


class TimeRangeSplitter(Splitter):
    """Leave-time-out: ``n_splits`` consecutive test periods of ``test_size`` (``"<n>D"`` days or
    ``"<n>H"`` hours) at the end of the data; the last period holds the whole day (hour) of the
    last interaction. Each fold trains on everything before its period. ``fold_info`` also has
    the period's ``start`` and ``end`` (timestamps, end excluded)."""

    def __init__(self, test_size: str, n_splits: int = 1, filter_cold_users: bool = True,
                 filter_cold_items: bool = True, filter_already_seen: bool = True) -> None:
        super().__init__(filter_cold_users, filter_cold_items, filter_already_seen)
        match = re.fullmatch(r"([1-9]\d*)([DH])", test_size) if isinstance(test_size, str) else None
        if match is None:
            raise ValueError(f"test_size must be a number of days or hours like '1D', '7D' or '4H' "
                             f"(pattern [1-9][0-9]*[DH]), got {test_size!r}")
        _check_count(n_splits, "n_splits")
        self.test_size = test_size
        self.n_splits = n_splits
        self._size = pd.Timedelta(int(match.group(1)), unit="D" if match.group(2) == "D" else "h")
        self._unit = "D" if match.group(2) == "D" else "h"

    def get_test_fold_borders(self, interactions: tp.Any) -> tp.List[tp.Tuple[pd.Timestamp, pd.Timestamp]]:
        """``(start, end)`` of each test period."""
        return self._borders(_Rows.of(interactions))

    def _borders(self, rows: _Rows) -> tp.List[tp.Tuple[pd.Timestamp, pd.Timestamp]]:
        if not rows.are_datetimes:
            raise ValueError(f"TimeRangeSplitter needs datetimes in column '{Columns.Datetime}'; the interactions "
                             "have numbers or row order")
        if len(rows) == 0:
            raise ValueError("interactions is empty")
        last = pd.Timestamp(int(rows.times.max()))
        end = last.ceil(self._unit)
        if end == last:  # exactly on a border: the period must contain the last interaction
            end += pd.Timedelta(1, unit=self._unit)
        starts = [end - self._size * (self.n_splits - i) for i in range(self.n_splits + 1)]
        return list(zip(starts[:-1], starts[1:]))

    def _split_without_filter(self, rows: _Rows) -> tp.Iterator[Fold]:
        for i_split, (start, end) in enumerate(self._borders(rows)):
            lo, hi = start.value, end.value
            yield (np.flatnonzero(rows.times < lo), np.flatnonzero((rows.times >= lo) & (rows.times < hi)),
                   {"i_split": i_split, "start": start, "end": end})


class RandomSplitter(Splitter):
    """Random folds: the rows are shuffled once (``numpy.random.default_rng(random_state)``) and
    ``n_splits`` disjoint test parts of ``round(test_fold_frac * n_rows)`` rows are cut from it;
    each fold trains on the rest."""

    def __init__(self, test_fold_frac: float, n_splits: int = 1, random_state: tp.Optional[int] = None,
                 filter_cold_users: bool = True, filter_cold_items: bool = True,
                 filter_already_seen: bool = True) -> None:
        super().__init__(filter_cold_users, filter_cold_items, filter_already_seen)
        if (not isinstance(test_fold_frac, (int, float, np.number)) or isinstance(test_fold_frac, bool)
                or not 0.0 < test_fold_frac < 1.0):
            raise ValueError(f"test_fold_frac must be a number strictly between 0 and 1, got {test_fold_frac!r}")
        _check_count(n_splits, "n_splits")
        if test_fold_frac * n_splits > 1:
            raise ValueError(f"{n_splits} disjoint test folds of {test_fold_frac:.1%} each do not fit in the data "
                             f"(n_splits * test_fold_frac = {n_splits * test_fold_frac:.2f} > 1)")
        if random_state is not None and (not isinstance(random_state, (int, np.integer))
                                         or isinstance(random_state, bool)):
            raise ValueError(f"random_state must be an integer or None, got {random_state!r}")
        self.test_fold_frac = test_fold_frac
        self.n_splits = n_splits
        self.random_state = random_state

    def _split_without_filter(self, rows: _Rows) -> tp.Iterator[Fold]:
        n = len(rows)
        size = int(round(self.test_fold_frac * n))
        if size == 0 or size == n:
            raise ValueError(f"test_fold_frac={self.test_fold_frac} of {n} interactions gives "
                             f"{'an empty test' if size == 0 else 'an empty train'} part")
        if self.n_splits * size > n:
            raise ValueError(f"{self.n_splits} disjoint test folds of {size} rows do not fit in {n} interactions")
        shuffled = np.random.default_rng(self.random_state).permutation(n)
        for i_split in range(self.n_splits):
            lo, hi = i_split * size, (i_split + 1) * size
            yield np.concatenate([shuffled[:lo], shuffled[hi:]]), shuffled[lo:hi], {"i_split": i_split}
