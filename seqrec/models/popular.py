"""PopularModel: the same most popular items for everyone, with RecTools' options."""

from __future__ import annotations

import typing as tp
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from ..columns import Columns
from ..dataset import Dataset
from .baseline import BaselineModelBase, unique_ids

POPULARITIES = ("n_users", "n_interactions", "mean_weight", "sum_weight")


class PopularModel(BaselineModelBase):
    """Recommends the items of the training interactions by decreasing popularity.

    ``popularity``: ``"n_users"`` (distinct users, default), ``"n_interactions"`` (rows),
    ``"mean_weight"`` or ``"sum_weight"`` (of the ``weight`` column). ``period`` (a timedelta
    before the last interaction) or ``begin_from`` (a datetime) restricts the interactions counted
    (one of them at most; they need datetimes). ``add_cold=True`` appends the items of the
    dataset without counted interactions, with score 0, in id order; ``inverse=True`` reverses the
    list (least popular first). Items of equal popularity keep their order of first appearance in
    the dataset (RecTools leaves it unspecified). ``verbose`` is accepted for RecTools'
    signature (nothing is printed).

    Every user gets the list, less their viewed items with ``filter_viewed``: users without
    interactions in ``dataset``, and users unknown to it, get the top of the list, as in RecTools.
    ``recommend_to_items`` gives every target item the list (without the item itself, with
    ``filter_itself``). Learned: ``popularity_list_`` (external item ids, scores).
    """

    def __init__(self, popularity: str = "n_users", period: tp.Optional[timedelta] = None,
                 begin_from: tp.Optional[datetime] = None, add_cold: bool = False, inverse: bool = False,
                 verbose: int = 0) -> None:
        self.popularity = popularity
        self.period = period
        self.begin_from = begin_from
        self.add_cold = add_cold
        self.inverse = inverse
        self.verbose = verbose
        self._validate_params()

    def _validate_params(self) -> None:
        if self.popularity not in POPULARITIES:
            raise ValueError(f"Unknown popularity {self.popularity!r}; allowed: {POPULARITIES}")
        if self.period is not None and self.begin_from is not None:
            raise ValueError("Only one of period and begin_from can be set")
        if self.period is not None and not isinstance(self.period, (timedelta, pd.Timedelta)):
            raise ValueError(f"period must be a timedelta, got {self.period!r}")
        if self.begin_from is not None:
            try:
                pd.Timestamp(self.begin_from)
            except (ValueError, TypeError):
                raise ValueError(f"begin_from must be a datetime, got {self.begin_from!r}") from None
        for name in ("add_cold", "inverse"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.verbose, (int, np.integer)) or isinstance(self.verbose, bool) or self.verbose < 0:
            raise ValueError(f"verbose must be an integer >= 0, got {self.verbose!r}")

    # ------------------------------------------------------------------------------ fit
    def _fit(self, dataset: Dataset) -> None:
        inter = dataset.interactions
        users = np.repeat(np.arange(inter.n_users), inter.lengths)
        items, weights, times = inter.items, inter.weights.astype(np.float64), inter.times
        if self.period is not None or self.begin_from is not None:
            if not inter.times_are_datetimes:
                raise ValueError(f"period and begin_from need datetimes in column '{Columns.Datetime}'; the "
                                 "dataset has numbers or row order")
            if self.begin_from is not None:
                start = pd.Timestamp(self.begin_from)
                if start.tzinfo is not None:
                    start = start.tz_convert("UTC").tz_localize(None)
                start_ns = start.value
            else:
                start_ns = int(times.max()) - pd.Timedelta(self.period).value
            keep = times >= start_ns
            users, items, weights = users[keep], items[keep], weights[keep]
        n = dataset.n_items
        if self.popularity == "n_users":
            pairs = np.unique(users * n + items)
            scores = np.bincount(pairs % n, minlength=n).astype(np.float64)
        elif self.popularity == "n_interactions":
            scores = np.bincount(items, minlength=n).astype(np.float64)
        else:
            scores = np.bincount(items, weights=weights, minlength=n)
            if self.popularity == "mean_weight":
                scores = scores / np.maximum(np.bincount(items, minlength=n), 1)
        counted = np.bincount(items, minlength=n) > 0
        ranked = np.flatnonzero(counted)
        ranked = ranked[np.argsort(-scores[ranked], kind="stable")]  # ties: dataset id order
        if self.add_cold:
            ranked = np.concatenate([ranked, np.flatnonzero(~counted)])
        if self.inverse:
            ranked = ranked[::-1]
        self.popularity_list_ = (dataset.item_id_map.to_external(ranked), scores[ranked].astype(np.float32))
        self.n_fit_items_ = n

    def _state_arrays(self) -> tp.Dict[str, np.ndarray]:
        return {"items": self.popularity_list_[0], "scores": self.popularity_list_[1],
                "n_fit_items": np.asarray([self.n_fit_items_])}

    def _set_state_arrays(self, arrays: tp.Mapping[str, np.ndarray]) -> None:
        self.popularity_list_ = (np.asarray(arrays["items"]), np.asarray(arrays["scores"], dtype=np.float32))
        self.n_fit_items_ = int(np.asarray(arrays["n_fit_items"])[0])

    # ------------------------------------------------------------------------ recommend
    def _list(self, items_to_recommend: tp.Any) -> tp.Tuple[np.ndarray, np.ndarray]:
        items, scores = self.popularity_list_
        if items_to_recommend is not None:
            keep = pd.Index(unique_ids(items_to_recommend, "items_to_recommend"))
            mask = keep.get_indexer(pd.Index(items)) >= 0
            items, scores = items[mask], scores[mask]
        return items, scores

    @staticmethod
    def _first_unviewed(n_queries: int, m: int, k: int, view_query: np.ndarray, view_pos: np.ndarray
                        ) -> tp.Tuple[np.ndarray, np.ndarray]:
        """For each query, the first ``k`` positions of a list of ``m`` that are not among its
        sorted distinct viewed positions: (query, position) pairs, grouped by query in order.

        The j-th free position is ``j + #{i : p_i - i <= j}`` (``p_i`` the i-th viewed position of
        the query, 0-based), found for all queries at once by one sorted search."""
        k = min(k, m)
        span = m + k + 1
        n_view = len(view_query)
        new_query = np.r_[True, view_query[1:] != view_query[:-1]] if n_view else np.zeros(0, dtype=bool)
        ordinal = np.arange(n_view) - np.maximum.accumulate(np.where(new_query, np.arange(n_view), 0))
        keys = view_query * span + (view_pos - ordinal)  # sorted: p_i - i does not decrease
        query = np.repeat(np.arange(n_queries), k)
        j = np.tile(np.arange(k), n_queries)
        count = np.searchsorted(keys, query * span + j, side="right") - np.searchsorted(keys, query * span)
        pos = j + count
        keep = pos < m
        return query[keep], pos[keep]

    def recommend(self, users: tp.Any, dataset: Dataset, k: int, filter_viewed: bool,
                  items_to_recommend: tp.Any = None, add_rank_col: bool = True,
                  on_unsupported_targets: str = "raise") -> pd.DataFrame:
        """Top-``k`` of the popularity list for each of ``users`` (see the class); a DataFrame
        ``user_id, item_id, score[, rank]``, users in the order given. Every user is supported, so
        ``on_unsupported_targets`` (checked) never drops one."""
        self._check_reco_args(dataset, k, on_unsupported_targets, "recommend")
        users_ext = unique_ids(users, "users")
        items, scores = self._list(items_to_recommend)
        if filter_viewed:
            item_pos = pd.Index(items).get_indexer(pd.Index(dataset.item_id_map.external_ids))
            view_query, view_pos = self._viewed(dataset, users_ext, item_pos)
        else:
            view_query = view_pos = np.zeros(0, dtype=np.int64)
        query, pos = self._first_unviewed(len(users_ext), len(items), k, view_query, view_pos)
        return self._table(Columns.User, users_ext, query, items[pos], scores[pos], add_rank_col)

    def recommend_to_items(self, target_items: tp.Any, dataset: Dataset, k: int, filter_itself: bool = True,
                           items_to_recommend: tp.Any = None, add_rank_col: bool = True,
                           on_unsupported_targets: str = "raise") -> pd.DataFrame:
        """Top-``k`` of the popularity list for each of ``target_items`` (the target itself left
        out with ``filter_itself``); a DataFrame ``target_item_id, item_id, score[, rank]``."""
        self._check_reco_args(dataset, k, on_unsupported_targets, "recommend_to_items")
        targets = unique_ids(target_items, "target_items")
        items, scores = self._list(items_to_recommend)
        if filter_itself:
            own = pd.Index(items).get_indexer(pd.Index(targets))
            view_query, view_pos = np.flatnonzero(own >= 0), own[own >= 0]
        else:
            view_query = view_pos = np.zeros(0, dtype=np.int64)
        query, pos = self._first_unviewed(len(targets), len(items), k, view_query, view_pos)
        return self._table(Columns.TargetItem, targets, query, items[pos], scores[pos], add_rank_col)
