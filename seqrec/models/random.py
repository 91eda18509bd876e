"""RandomModel: uniformly random items, as RecTools' baseline."""

from __future__ import annotations

import typing as tp

import numpy as np
import pandas as pd

from ..columns import Columns
from ..dataset import Dataset
from .baseline import BaselineModelBase, unique_ids

_BATCH_CELLS = 1 << 22  # random keys drawn at once (queries x candidates)


class RandomModel(BaselineModelBase):
    """Recommends ``k`` items drawn uniformly without replacement from the items of the fitted
    dataset (or ``items_to_recommend``), leaving out each user's viewed items with
    ``filter_viewed`` (users without interactions in ``dataset``, and unknown users, get random
    items). Scores are ``n, n - 1, ..., 1`` for a list of ``n`` items, as in RecTools.

    The random stream starts from ``random_state`` at ``fit``: the calls after one ``fit`` are
    reproducible as a sequence, and each call draws new items. ``verbose`` is accepted for
    RecTools' signature. Learned: ``item_ids_`` (external ids of the candidate items).
    """

    def __init__(self, random_state: tp.Optional[int] = None, verbose: int = 0) -> None:
        self.random_state = random_state
        self.verbose = verbose
        self._validate_params()

    def _validate_params(self) -> None:
        if self.random_state is not None and (not isinstance(self.random_state, (int, np.integer))
                                              or isinstance(self.random_state, bool) or self.random_state < 0):
            raise ValueError(f"random_state must be a non-negative integer or None, got {self.random_state!r}")
        if not isinstance(self.verbose, (int, np.integer)) or isinstance(self.verbose, bool) or self.verbose < 0:
            raise ValueError(f"verbose must be an integer >= 0, got {self.verbose!r}")

    def _fit(self, dataset: Dataset) -> None:
        self.item_ids_ = dataset.item_id_map.external_ids.copy()
        self.n_fit_items_ = len(self.item_ids_)
        self.random_gen_ = np.random.default_rng(self.random_state)

    def _state_arrays(self) -> tp.Dict[str, np.ndarray]:
        return {"item_ids": self.item_ids_}

    def _set_state_arrays(self, arrays: tp.Mapping[str, np.ndarray]) -> None:
        """Restore the candidates; the random stream restarts from ``random_state``."""
        self.item_ids_ = np.asarray(arrays["item_ids"])
        self.n_fit_items_ = len(self.item_ids_)
        self.random_gen_ = np.random.default_rng(self.random_state)

    def _candidates(self, items_to_recommend: tp.Any) -> np.ndarray:
        if items_to_recommend is None:
            return self.item_ids_
        wanted = pd.Index(unique_ids(items_to_recommend, "items_to_recommend"))
        return self.item_ids_[wanted.get_indexer(pd.Index(self.item_ids_)) >= 0]

    def _sample(self, n_queries: int, m: int, k: int, excl_query: np.ndarray, excl_pos: np.ndarray
                ) -> tp.Tuple[np.ndarray, np.ndarray]:
        """``min(k, allowed)`` distinct random positions of ``0..m-1`` per query, without its excluded
        (query, position) pairs: random keys, excluded ones set above 1, the ``k`` smallest kept."""
        k = min(k, m)
        out_query: tp.List[np.ndarray] = []
        out_pos: tp.List[np.ndarray] = []
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        batch = max(1, _BATCH_CELLS // max(m, 1))
        for lo in range(0, n_queries, batch):
            hi = min(n_queries, lo + batch)
            keys = self.random_gen_.random((hi - lo, m))
            sel = (excl_query >= lo) & (excl_query < hi)
            keys[excl_query[sel] - lo, excl_pos[sel]] = 2.0
            top = np.argpartition(keys, k - 1, axis=1)[:, :k] if k < m else np.tile(np.arange(m), (hi - lo, 1))
            top_keys = np.take_along_axis(keys, top, axis=1)
            order = np.argsort(top_keys, axis=1)
            top, top_keys = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_keys, order, axis=1)
            keep = top_keys < 1.0
            out_query.append(np.repeat(np.arange(lo, hi), k).reshape(hi - lo, k)[keep])
            out_pos.append(top[keep])
        if not out_query:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(out_query), np.concatenate(out_pos)

    def _table_of(self, target_col: str, targets: np.ndarray, candidates: np.ndarray, query: np.ndarray,
                  pos: np.ndarray, add_rank_col: bool) -> pd.DataFrame:
        n_of_query = np.bincount(query, minlength=len(targets))
        first = np.r_[0, np.cumsum(n_of_query)[:-1]]
        scores = n_of_query[query] - (np.arange(len(query)) - first[query])  # n, n - 1, ..., 1
        return self._table(target_col, targets, query, candidates[pos], scores, add_rank_col)

    def recommend(self, users: tp.Any, dataset: Dataset, k: int, filter_viewed: bool,
                  items_to_recommend: tp.Any = None, add_rank_col: bool = True,
                  on_unsupported_targets: str = "raise") -> pd.DataFrame:
        """``k`` random items for each of ``users``; a DataFrame ``user_id, item_id, score[, rank]``,
        users in the order given. Every user is supported (``on_unsupported_targets`` is checked
        and never drops one)."""
        self._check_reco_args(dataset, k, on_unsupported_targets, "recommend")
        users_ext = unique_ids(users, "users")
        candidates = self._candidates(items_to_recommend)
        if filter_viewed:
            item_pos = pd.Index(candidates).get_indexer(pd.Index(dataset.item_id_map.external_ids))
            excl_query, excl_pos = self._viewed(dataset, users_ext, item_pos)
        else:
            excl_query = excl_pos = np.zeros(0, dtype=np.int64)
        query, pos = self._sample(len(users_ext), len(candidates), k, excl_query, excl_pos)
        return self._table_of(Columns.User, users_ext, candidates, query, pos, add_rank_col)

    def recommend_to_items(self, target_items: tp.Any, dataset: Dataset, k: int, filter_itself: bool = True,
                           items_to_recommend: tp.Any = None, add_rank_col: bool = True,
                           on_unsupported_targets: str = "raise") -> pd.DataFrame:
        """``k`` random items for each of ``target_items`` (never the target itself with
        ``filter_itself``); a DataFrame ``target_item_id, item_id, score[, rank]``."""
        self._check_reco_args(dataset, k, on_unsupported_targets, "recommend_to_items")
        targets = unique_ids(target_items, "target_items")
        candidates = self._candidates(items_to_recommend)
        if filter_itself:
            own = pd.Index(candidates).get_indexer(pd.Index(targets))
            excl_query, excl_pos = np.flatnonzero(own >= 0), own[own >= 0]
        else:
            excl_query = excl_pos = np.zeros(0, dtype=np.int64)
        query, pos = self._sample(len(targets), len(candidates), k, excl_query, excl_pos)
        return self._table_of(Columns.TargetItem, targets, candidates, query, pos, add_rank_col)
