"""Offline metrics of top-k recommendations under RecTools' names, defaults and definitions.

Vectorised with pandas merges and numpy (no per-user Python loops). Inputs use external ids and
the standard columns (:class:`~seqrec.Columns`):

- ``reco``: ``user_id, item_id, rank`` (rank 1 = best; extra columns are ignored; each
  ``(user_id, item_id)`` pair at most once);
- ``interactions``: ``user_id, item_id``, the test interactions (the relevant items);
- ``prev_interactions``: ``user_id, item_id``, the interactions before the test period (train);
- ``catalog``: the item ids that could be recommended (a collection; a number is read as its size).

As in RecTools, every row of ``interactions`` counts: an item a user interacted with twice in
the test period is two relevant rows (drop duplicates first if repeats should count once).

Metrics of relevance average over the users of ``interactions`` (a user without
recommendations, or without a hit in the top-k, contributes 0). With ``tp`` the user's relevant
rows in the top-k and ``n`` their relevant rows:

==========================  ===================================================================
``Precision(k)``            ``tp / k`` (``r_precision=True``: ``tp / min(k, n)``)
``Recall(k)``               ``tp / n``
``HitRate(k)``              1 if ``tp > 0``
``F1Beta(k, beta=1)``       ``(1 + beta^2) p r / (beta^2 p + r)`` of precision and recall (0 if both are 0)
``Accuracy(k)``             ``(tp + tn) / len(catalog)``, ``tn = len(catalog) - k - (n - tp)``
``MCC(k)``                  Matthews correlation of the top-k against the relevant items (0 if undefined)
``NDCG(k)``                 sum over hits of ``1 / log(rank + 1)`` (``log_base``, default 2), divided
                            by the ideal DCG of ``k`` hits at ranks 1..k; ``divide_by_achievable=True``
                            divides by the ideal DCG of ``min(k, n)`` hits (the convention of the
                            sequential-recommendation papers, used by the benchmarks)
``MAP(k)``                  sum over the ranks ``r`` of hits of precision@r, divided by ``n``
                            (``divide_by_k=True``: by ``k``)
``MRR(k)``                  ``1 / rank`` of the first hit
``CoveredUsers(k)``         1 if the user has at least one recommendation in the top-k
==========================  ===================================================================

Metrics of the recommendations themselves average over the users of ``reco`` that have at
least one recommendation in the top-k:

==============================  ===============================================================
``Serendipity(k)``              mean over the top-k of ``max(p(rank) - p_any(item), 0) * relevant``,
                                ``p(i) = (n_items + 1 - i) / n_items``, ``p_any`` the same of the
                                item's dense popularity rank in ``prev_interactions`` (0 for items
                                absent there), ``n_items = len(catalog)``
``AvgRecPopularity(k)``         mean number of rows of ``prev_interactions`` with the recommended
                                items (``normalize=True``: divided by the number of rows)
``MeanInvUserFreq(k)``          mean of ``-log2(users(item) / n_users)`` over the top-k, counted in
                                ``prev_interactions`` (an absent item counts as one user)
``SufficientReco(k)``           1 if the user has ``k`` recommendations (``deep=True``: their share of ``k``);
                                over all users of ``reco``
``UnrepeatedReco(k)``           1 if no item repeats in the top-k (``deep=True``: share of unrepeated rows)
``Intersection(k, ref_k)``      share of the top-k found in the top-``ref_k`` of ``ref_reco``
==============================  ===============================================================

Whole-list metrics: ``CatalogCoverage(k)`` (distinct items in all top-k lists; ``normalize=True``
divides by ``len(catalog)``) and seqrec's ``MeanPopularity(k)`` (mean number of distinct users of
``prev_interactions`` per recommended item, averaged over users; ``normalize=True`` divides by
the number of users).

A metric's ``calc`` returns the mean of ``calc_per_user`` (NaN when there are no users to
average over, as in RecTools); :func:`calc_metrics` computes several at once.
"""

from __future__ import annotations

import typing as tp
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .columns import Columns
from .dataset import check_columns

__all__ = [
    "MAP", "MCC", "MRR", "NDCG", "Accuracy", "AvgRecPopularity", "CatalogCoverage", "CoveredUsers", "F1Beta",
    "HitRate", "Intersection", "MeanInvUserFreq", "MeanPopularity", "Precision", "Recall", "Serendipity",
    "SufficientReco", "UnrepeatedReco", "calc_metrics",
]

Catalog = tp.Union[int, tp.Collection[tp.Hashable], np.ndarray, pd.Index]


# ------------------------------------------------------------------------------------------ checks
def _check_k(k: tp.Any, name: str = "k") -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")


def _check_bool(value: tp.Any, name: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def _check_reco(reco: tp.Any, what: str = "reco", unique: bool = True) -> None:
    check_columns(reco, what, [Columns.User, Columns.Item, Columns.Rank])
    ranks = reco[Columns.Rank]
    if not pd.api.types.is_numeric_dtype(ranks) or pd.api.types.is_bool_dtype(ranks):
        raise ValueError(f"{what}: column '{Columns.Rank}' must hold integers >= 1, got dtype {ranks.dtype}")
    values = ranks.to_numpy(dtype=np.float64)
    bad = (values < 1) | (values != np.floor(values))
    if len(values) and bad.any():
        raise ValueError(f"{what}: column '{Columns.Rank}' must hold integers >= 1, found {ranks[bad].iloc[0]!r}")
    if unique:
        dup = reco.duplicated([Columns.User, Columns.Item])
        if dup.any():
            first = reco.loc[dup, [Columns.User, Columns.Item]].iloc[0].tolist()
            raise ValueError(f"{what}: (user_id, item_id) pairs must be unique, duplicated e.g. {first}")


def _check_pairs(df: tp.Any, what: str) -> None:
    check_columns(df, what, [Columns.User, Columns.Item])


def _catalog_size(catalog: tp.Any) -> int:
    if isinstance(catalog, (int, np.integer)) and not isinstance(catalog, bool):
        size = int(catalog)
    elif isinstance(catalog, (str, bytes)) or not hasattr(catalog, "__len__"):
        raise TypeError(f"catalog must be a collection of item ids or their number, got {type(catalog).__name__}")
    else:
        size = len(catalog)
    if size <= 0:
        raise ValueError(f"catalog must not be empty, got size {size}")
    return size


def _top(reco: pd.DataFrame, k: int) -> pd.DataFrame:
    return reco.loc[reco[Columns.Rank].to_numpy() <= k, [Columns.User, Columns.Item, Columns.Rank]]


def _mean(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else float("nan")


def _per_user_mean(users: np.ndarray, values: np.ndarray, weights: tp.Optional[np.ndarray] = None) -> pd.Series:
    """Mean of ``values`` by user (users in order of first appearance)."""
    codes, uniques = pd.factorize(users)
    w = np.ones(len(values)) if weights is None else weights
    sums = np.bincount(codes, weights=values * w, minlength=len(uniques))
    counts = np.bincount(codes, weights=w, minlength=len(uniques))
    return pd.Series(sums / np.maximum(counts, 1e-300), index=pd.Index(uniques, name=Columns.User))


def _log(x: np.ndarray, base: float) -> np.ndarray:
    return np.log(x) / np.log(base)


# ----------------------------------------------------------------- hits of reco among interactions
@dataclass(frozen=True)
class _Hits:
    """The rows of ``interactions`` found in the top-``k_max`` of ``reco``, indexed by user."""

    users: pd.Index  # (U,) users of interactions, in order of first appearance
    n_relevant: np.ndarray  # (U,) rows of interactions per user (repeats counted, as in RecTools)
    hit_user: np.ndarray  # (H,) position in ``users`` of each hit row
    hit_rank: np.ndarray  # (H,) its rank in the user's list
    k_max: int

    @classmethod
    def compute(cls, reco: pd.DataFrame, interactions: pd.DataFrame, k_max: int) -> "_Hits":
        _check_reco(reco)
        _check_pairs(interactions, "interactions")
        codes, users = pd.factorize(interactions[Columns.User])
        n_relevant = np.bincount(codes, minlength=len(users))
        rows = pd.DataFrame({Columns.User: interactions[Columns.User].to_numpy(),
                             Columns.Item: interactions[Columns.Item].to_numpy(), "__user": codes})
        hits = rows.merge(_top(reco, k_max), on=[Columns.User, Columns.Item], how="inner")
        return cls(pd.Index(users, name=Columns.User), n_relevant, hits["__user"].to_numpy(np.int64),
                   hits[Columns.Rank].to_numpy(np.int64), k_max)

    def at(self, k: int) -> tp.Tuple[np.ndarray, np.ndarray]:
        keep = self.hit_rank <= k
        return self.hit_user[keep], self.hit_rank[keep]

    def true_positives(self, k: int) -> np.ndarray:
        return np.bincount(self.at(k)[0], minlength=len(self.users)).astype(np.float64)

    def series(self, values: np.ndarray) -> pd.Series:
        return pd.Series(values, index=self.users)


class _HitsMetric:
    """A metric of the top-k against the relevant rows of ``interactions``."""

    k: int
    needs_catalog = False

    def __post_init__(self) -> None:
        _check_k(self.k)

    def _values(self, hits: _Hits, catalog: tp.Optional[Catalog]) -> np.ndarray:
        raise NotImplementedError

    def _per_user(self, hits: _Hits, catalog: tp.Optional[Catalog] = None) -> pd.Series:
        return hits.series(self._values(hits, catalog))

    def calc_per_user(self, reco: pd.DataFrame, interactions: pd.DataFrame) -> pd.Series:
        """Value for each user of ``interactions`` (index: user id, order of first appearance)."""
        return self._per_user(_Hits.compute(reco, interactions, self.k))

    def calc(self, reco: pd.DataFrame, interactions: pd.DataFrame) -> float:
        """Mean over the users of ``interactions``."""
        return _mean(self.calc_per_user(reco, interactions))


class _CatalogHitsMetric(_HitsMetric):
    needs_catalog = True

    def calc_per_user(self, reco: pd.DataFrame, interactions: pd.DataFrame,  # type: ignore[override]
                      catalog: Catalog) -> pd.Series:
        return self._per_user(_Hits.compute(reco, interactions, self.k), catalog)

    def calc(self, reco: pd.DataFrame, interactions: pd.DataFrame,  # type: ignore[override]
             catalog: Catalog) -> float:
        return _mean(self.calc_per_user(reco, interactions, catalog))


@dataclass(frozen=True)
class Precision(_HitsMetric):
    """``tp / k``; with ``r_precision=True``, ``tp / min(k, n_relevant)``."""

    k: int
    r_precision: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_bool(self.r_precision, "r_precision")

    def _values(self, hits: _Hits, catalog: tp.Optional[Catalog]) -> np.ndarray:
        tp_ = hits.true_positives(self.k)
        return tp_ / (np.minimum(self.k, hits.n_relevant) if self.r_precision else self.k)


@dataclass(frozen=True)
class Recall(_HitsMetric):
    """``tp / n_relevant``."""

    k: int

    def _values(self, hits: _Hits, catalog: tp.Optional[Catalog]) -> np.ndarray:
        return hits.true_positives(self.k) / hits.n_relevant


@dataclass(frozen=True)
class HitRate(_HitsMetric):
    """1 if at least one relevant item is in the top-k, else 0."""

    k: int

    def _values(self, hits: _Hits, catalog: tp.Optional[Catalog]) -> np.ndarray:
        return (hits.true_positives(self.k) > 0).astype(np.float64)


@dataclass(frozen=True)
class F1Beta(_HitsMetric):
    """F-beta score of precision@k and recall@k (0 when both are 0)."""

    k: int
    beta: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.beta, (int, float, np.number)) or isinstance(self.beta, bool) or not self.beta > 0:
            raise ValueError(f"beta must be a positive number, got {self.beta!r}")

    def _values(self, hits: _Hits, catalog: tp.Optional[Catalog]) -> np.ndarray:
        tp_ = hits.true_positives(self.k)
        p, r = tp_ / self.k, tp_ / hits.n_relevant
        b2 = float(self.beta) ** 2
        denominator = b2 * p + r
        return np.where(denominator > 0, (1 + b2) * p * r / np.where(denominator > 0, denominator, 1.0), 0.0)


@dataclass(frozen=True)
class Accuracy(_CatalogHitsMetric):
    """``(tp + tn) / len(catalog)``: share of the catalog classified right by the top-k."""

    k: int

    def _values(self, hits: _Hits, catalog: tp.Optional[Catalog]) -> np.ndarray:
        n_items = _catalog_size(catalog)
        tp_ = hits.true_positives(self.k)
        tn = n_items - self.k - (hits.n_relevant - tp_)
        return (tp_ + tn) / n_items


@dataclass(frozen=True)
class MCC(_CatalogHitsMetric):
    """Matthews correlation coefficient of the top-k against the relevant items (0 when undefined)."""

    k: int

    def _values(self, hits: _Hits, catalog: tp.Optional[Catalog]) -> np.ndarray:
        n_items = _catalog_size(catalog)
        tp_ = hits.true_positives(self.k)
        fp = self.k - tp_
        fn = hits.n_relevant - tp_
        tn = n_items - self.k - fn
        denominator = np.sqrt((tp_ + fp) * (tp_ + fn) * (tn + fp) * (tn + fn))
        return np.where(denominator > 0, (tp_ * tn - fp * fn) / np.where(denominator > 0, denominator, 1.0), 0.0)


@dataclass(frozen=True)
class NDCG(_HitsMetric):
    """DCG of the hits in the top-k divided by an ideal DCG: of ``k`` hits (default, as RecTools) or,
    with ``divide_by_achievable=True``, of ``min(k, n_relevant)`` hits (the papers' convention)."""

    k: int
    log_base: int = 2
    divide_by_achievable: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if (not isinstance(self.log_base, (int, float, np.number)) or isinstance(self.log_base, bool)
                or not self.log_base > 1):
            raise ValueError(f"log_base must be a number > 1, got {self.log_base!r}")
        _check_bool(self.divide_by_achievable, "divide_by_achievable")

    def _values(self, hits: _Hits, catalog: tp.Optional[Catalog]) -> np.ndarray:
        user, rank = hits.at(self.k)
        dcg = np.bincount(user, weights=1.0 / _log(rank + 1.0, self.log_base), minlength=len(hits.users))
        ideal = np.cumsum(1.0 / _log(np.arange(2, self.k + 2, dtype=np.float64), self.log_base))  # (k,)
        if self.divide_by_achievable:
            return dcg / ideal[np.minimum(hits.n_relevant, self.k) - 1]
        return dcg / ideal[-1]


@dataclass(frozen=True)
class MAP(_HitsMetric):
    """Sum of precision@r over the ranks r of hits in the top-k, divided by the user's number of
    relevant rows (default, as RecTools) or by ``k`` (``divide_by_k=True``)."""

    k: int
    divide_by_k: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_bool(self.divide_by_k, "divide_by_k")

    def _values(self, hits: _Hits, catalog: tp.Optional[Catalog]) -> np.ndarray:
        user, rank = hits.at(self.k)
        order = np.lexsort((rank, user))
        user, rank = user[order], rank[order]
        n = len(user)
        new_user = np.r_[True, user[1:] != user[:-1]] if n else np.zeros(0, dtype=bool)
        hits_so_far = np.arange(n) - np.maximum.accumulate(np.where(new_user, np.arange(n), 0)) + 1
        # one precision per distinct rank: at the last of rows sharing it (repeated relevant rows)
        last_of_rank = np.r_[(user[1:] != user[:-1]) | (rank[1:] != rank[:-1]), True] if n else new_user
        precisions = np.where(last_of_rank, hits_so_far / rank, 0.0)
        total = np.bincount(user, weights=precisions, minlength=len(hits.users))
        return total / (self.k if self.divide_by_k else hits.n_relevant)


@dataclass(frozen=True)
class MRR(_HitsMetric):
    """``1 / rank`` of the first hit in the top-k (0 without a hit)."""

    k: int

    def _values(self, hits: _Hits, catalog: tp.Optional[Catalog]) -> np.ndarray:
        user, rank = hits.at(self.k)
        first = np.full(len(hits.users), np.inf)
        np.minimum.at(first, user, rank.astype(np.float64))
        return 1.0 / first


@dataclass(frozen=True)
class CoveredUsers:
    """1 if the user of ``interactions`` has at least one recommendation in the top-k, else 0."""

    k: int

    def __post_init__(self) -> None:
        _check_k(self.k)

    def calc_per_user(self, reco: pd.DataFrame, interactions: pd.DataFrame) -> pd.Series:
        _check_reco(reco, unique=False)
        _check_pairs(interactions, "interactions")
        users = pd.Index(pd.unique(interactions[Columns.User]), name=Columns.User)
        covered = users.isin(pd.unique(_top(reco, self.k)[Columns.User]))
        return pd.Series(covered.astype(np.int64), index=users)

    def calc(self, reco: pd.DataFrame, interactions: pd.DataFrame) -> float:
        return _mean(self.calc_per_user(reco, interactions))


# ------------------------------------------------------------------------ metrics of the lists
@dataclass(frozen=True)
class Serendipity:
    """Relevance weighted by how much more likely the item is at its rank for this user than by
    popularity alone (see the module table); mean over the user's top-k."""

    k: int

    def __post_init__(self) -> None:
        _check_k(self.k)

    def calc_per_user(self, reco: pd.DataFrame, interactions: pd.DataFrame, prev_interactions: pd.DataFrame,
                      catalog: Catalog) -> pd.Series:
        _check_reco(reco)
        _check_pairs(interactions, "interactions")
        _check_pairs(prev_interactions, "prev_interactions")
        n_items = _catalog_size(catalog)
        top = _top(reco, self.k)
        # a recommended item the user interacted with m times counts m times (as RecTools' merge)
        repeats = interactions.groupby([Columns.User, Columns.Item], sort=False).size().rename("__m")
        m = top.join(repeats, on=[Columns.User, Columns.Item])["__m"].to_numpy(np.float64)
        relevant = ~np.isnan(m)
        counts = prev_interactions[Columns.Item].value_counts()
        pop_rank = counts.rank(method="dense", ascending=False)
        rank_of_item = pop_rank.reindex(pd.Index(top[Columns.Item])).to_numpy(np.float64)
        p_user = (n_items + 1 - top[Columns.Rank].to_numpy(np.float64)) / n_items
        p_any = np.where(np.isnan(rank_of_item), 0.0, (n_items + 1 - rank_of_item) / n_items)
        value = np.maximum(p_user - p_any, 0.0) * relevant
        return _per_user_mean(top[Columns.User].to_numpy(), value, np.where(relevant, m, 1.0))

    def calc(self, reco: pd.DataFrame, interactions: pd.DataFrame, prev_interactions: pd.DataFrame,
             catalog: Catalog) -> float:
        return _mean(self.calc_per_user(reco, interactions, prev_interactions, catalog))


@dataclass(frozen=True)
class AvgRecPopularity:
    """Mean popularity of the top-k items, popularity = rows of ``prev_interactions`` with the item
    (``normalize=True``: divided by the number of rows)."""

    k: int
    normalize: bool = False

    def __post_init__(self) -> None:
        _check_k(self.k)
        _check_bool(self.normalize, "normalize")

    def calc_per_user(self, reco: pd.DataFrame, prev_interactions: pd.DataFrame) -> pd.Series:
        _check_reco(reco)
        _check_pairs(prev_interactions, "prev_interactions")
        popularity = prev_interactions[Columns.Item].value_counts(normalize=self.normalize)
        top = _top(reco, self.k)
        values = popularity.reindex(pd.Index(top[Columns.Item])).fillna(0).to_numpy(np.float64)
        return _per_user_mean(top[Columns.User].to_numpy(), values)

    def calc(self, reco: pd.DataFrame, prev_interactions: pd.DataFrame) -> float:
        return _mean(self.calc_per_user(reco, prev_interactions))


@dataclass(frozen=True)
class MeanInvUserFreq:
    """Mean novelty ``-log2(users(item) / n_users)`` of the top-k, in ``prev_interactions``."""

    k: int

    def __post_init__(self) -> None:
        _check_k(self.k)

    def calc_per_user(self, reco: pd.DataFrame, prev_interactions: pd.DataFrame) -> pd.Series:
        _check_reco(reco)
        _check_pairs(prev_interactions, "prev_interactions")
        pairs = prev_interactions[[Columns.User, Columns.Item]].drop_duplicates()
        n_users = pairs[Columns.User].nunique()
        users_of_item = pairs.groupby(Columns.Item, sort=False).size()
        top = _top(reco, self.k)
        counts = users_of_item.reindex(pd.Index(top[Columns.Item])).fillna(1).to_numpy(np.float64)
        return _per_user_mean(top[Columns.User].to_numpy(), -np.log2(counts / max(n_users, 1)))

    def calc(self, reco: pd.DataFrame, prev_interactions: pd.DataFrame) -> float:
        return _mean(self.calc_per_user(reco, prev_interactions))


@dataclass(frozen=True)
class SufficientReco:
    """1 if the user of ``reco`` has ``k`` recommendations in the top-k, else 0; ``deep=True``:
    their number divided by ``k``."""

    k: int
    deep: bool = False

    def __post_init__(self) -> None:
        _check_k(self.k)
        _check_bool(self.deep, "deep")

    def calc_per_user(self, reco: pd.DataFrame) -> pd.Series:
        _check_reco(reco, unique=False)
        users = pd.Index(pd.unique(reco[Columns.User]), name=Columns.User)
        n = pd.Series(_top(reco, self.k)[Columns.User].to_numpy()).value_counts()
        n = n.reindex(users).fillna(0).to_numpy(np.float64)
        values = np.minimum(n / self.k, 1.0) if self.deep else (n >= self.k).astype(np.int64)
        return pd.Series(values, index=users)

    def calc(self, reco: pd.DataFrame) -> float:
        return _mean(self.calc_per_user(reco))


@dataclass(frozen=True)
class UnrepeatedReco:
    """1 if no item repeats in the user's top-k, else 0; ``deep=True``: share of the top-k rows
    that are not repeats of an earlier row."""

    k: int
    deep: bool = False

    def __post_init__(self) -> None:
        _check_k(self.k)
        _check_bool(self.deep, "deep")

    def calc_per_user(self, reco: pd.DataFrame) -> pd.Series:
        _check_reco(reco, unique=False)
        top = _top(reco, self.k)
        unrepeated = (~top.duplicated([Columns.User, Columns.Item])).to_numpy(np.float64)
        share = _per_user_mean(top[Columns.User].to_numpy(), unrepeated)
        return share if self.deep else (share == 1.0).astype(np.int64)

    def calc(self, reco: pd.DataFrame) -> float:
        return _mean(self.calc_per_user(reco))


@dataclass(frozen=True)
class Intersection:
    """Share of the user's top-k that is in the top-``ref_k`` (default ``k``) of ``ref_reco``."""

    k: int
    ref_k: tp.Optional[int] = None

    def __post_init__(self) -> None:
        _check_k(self.k)
        if self.ref_k is not None:
            _check_k(self.ref_k, "ref_k")

    def calc_per_user(self, reco: pd.DataFrame, ref_reco: pd.DataFrame) -> pd.Series:
        _check_reco(reco)
        _check_reco(ref_reco, "ref_reco")
        top = _top(reco, self.k)
        if ref_reco is reco:
            return pd.Series(1.0, index=pd.Index(pd.unique(reco[Columns.User]), name=Columns.User))
        if len(ref_reco) == 0:
            return pd.Series(np.zeros(0), index=pd.Index([], name=Columns.User))
        ref = _top(ref_reco, self.ref_k if self.ref_k is not None else self.k)[[Columns.User, Columns.Item]]
        shared = top.merge(ref.assign(__in=1.0), on=[Columns.User, Columns.Item], how="left")["__in"]
        return _per_user_mean(top[Columns.User].to_numpy(), shared.fillna(0.0).to_numpy(np.float64))

    def calc(self, reco: pd.DataFrame, ref_reco: pd.DataFrame) -> float:
        return _mean(self.calc_per_user(reco, ref_reco))


@dataclass(frozen=True)
class CatalogCoverage:
    """Number of distinct items in all top-k lists; ``normalize=True``: divided by ``len(catalog)``."""

    k: int
    normalize: bool = False

    def __post_init__(self) -> None:
        _check_k(self.k)
        _check_bool(self.normalize, "normalize")

    def calc(self, reco: pd.DataFrame, catalog: Catalog) -> float:
        _check_reco(reco, unique=False)
        n_distinct = pd.unique(_top(reco, self.k)[Columns.Item]).size
        return n_distinct / _catalog_size(catalog) if self.normalize else float(n_distinct)


@dataclass(frozen=True)
class MeanPopularity:
    """seqrec's popularity of the top-k: mean number of distinct users of ``prev_interactions`` per
    recommended item (``normalize=True``: divided by their number of users), averaged over users."""

    k: int
    normalize: bool = False

    def __post_init__(self) -> None:
        _check_k(self.k)
        _check_bool(self.normalize, "normalize")

    def calc_per_user(self, reco: pd.DataFrame, prev_interactions: pd.DataFrame) -> pd.Series:
        _check_reco(reco)
        _check_pairs(prev_interactions, "prev_interactions")
        pairs = prev_interactions[[Columns.User, Columns.Item]].drop_duplicates()
        popularity = pairs.groupby(Columns.Item, sort=False).size().astype(np.float64)
        if self.normalize:
            popularity = popularity / max(pairs[Columns.User].nunique(), 1)
        top = _top(reco, self.k)
        values = popularity.reindex(pd.Index(top[Columns.Item])).fillna(0).to_numpy(np.float64)
        return _per_user_mean(top[Columns.User].to_numpy(), values)

    def calc(self, reco: pd.DataFrame, prev_interactions: pd.DataFrame) -> float:
        return _mean(self.calc_per_user(reco, prev_interactions))


# ------------------------------------------------------------------------------------ calc_metrics
HITS_METRICS = (Precision, Recall, HitRate, F1Beta, Accuracy, MCC, NDCG, MAP, MRR)
PREV_METRICS = (AvgRecPopularity, MeanInvUserFreq, MeanPopularity)
RECO_METRICS = (SufficientReco, UnrepeatedReco)
ALL_METRICS = HITS_METRICS + PREV_METRICS + RECO_METRICS + (CoveredUsers, Serendipity, Intersection, CatalogCoverage)
Metric = tp.Union[Precision, Recall, HitRate, F1Beta, Accuracy, MCC, NDCG, MAP, MRR, CoveredUsers, Serendipity,
                  AvgRecPopularity, MeanInvUserFreq, MeanPopularity, SufficientReco, UnrepeatedReco, Intersection,
                  CatalogCoverage]
RefReco = tp.Union[pd.DataFrame, tp.Mapping[tp.Hashable, pd.DataFrame]]


def _need(value: tp.Any, arg: str, name: str, metric: tp.Any) -> None:
    if value is None:
        raise ValueError(f"metric {name!r} ({type(metric).__name__}) needs {arg}")


def calc_metrics(
    metrics: tp.Mapping[str, Metric],
    reco: pd.DataFrame,
    interactions: tp.Optional[pd.DataFrame] = None,
    prev_interactions: tp.Optional[pd.DataFrame] = None,
    catalog: tp.Optional[Catalog] = None,
    ref_reco: tp.Optional[RefReco] = None,
) -> tp.Dict[str, float]:
    """Several metrics at once, as RecTools' ``calc_metrics``:
    ``{"ndcg@10": NDCG(10), ...}`` -> ``{"ndcg@10": 0.05, ...}``.

    Metrics of relevance and ``CoveredUsers`` need ``interactions``; ``Serendipity`` needs
    ``interactions``, ``prev_interactions`` and ``catalog``; the popularity and novelty metrics
    need ``prev_interactions``; ``Accuracy``, ``MCC`` and ``CatalogCoverage`` need ``catalog``;
    ``Intersection`` needs ``ref_reco``, one table or a dict ``name -> table`` (then its results
    are named ``f"{metric_name}_{ref_name}"``). The hits are computed once for all metrics of
    relevance. Objects that are not seqrec metrics raise ``TypeError``.
    """
    if not isinstance(metrics, tp.Mapping):
        raise TypeError(f"metrics must be a dict name -> metric, got {type(metrics).__name__}")
    for name, metric in metrics.items():
        if not isinstance(metric, ALL_METRICS):
            raise TypeError(f"metric {name!r} is not a seqrec metric: {metric!r}; allowed: "
                            f"{sorted(m.__name__ for m in ALL_METRICS)}")
    out: tp.Dict[str, float] = {}
    hits_metrics = {n: m for n, m in metrics.items() if isinstance(m, HITS_METRICS)}
    hits = None
    if hits_metrics:
        for name, metric in hits_metrics.items():
            _need(interactions, "interactions", name, metric)
            if metric.needs_catalog:
                _need(catalog, "catalog", name, metric)
        hits = _Hits.compute(reco, tp.cast(pd.DataFrame, interactions), max(m.k for m in hits_metrics.values()))
    for name, metric in metrics.items():
        if isinstance(metric, HITS_METRICS):
            out[name] = _mean(metric._per_user(tp.cast(_Hits, hits), catalog))
        elif isinstance(metric, CoveredUsers):
            _need(interactions, "interactions", name, metric)
            out[name] = metric.calc(reco, tp.cast(pd.DataFrame, interactions))
        elif isinstance(metric, Serendipity):
            for value, arg in ((interactions, "interactions"), (prev_interactions, "prev_interactions"),
                               (catalog, "catalog")):
                _need(value, arg, name, metric)
            out[name] = metric.calc(reco, interactions, prev_interactions, catalog)  # type: ignore[arg-type]
        elif isinstance(metric, PREV_METRICS):
            _need(prev_interactions, "prev_interactions", name, metric)
            out[name] = metric.calc(reco, tp.cast(pd.DataFrame, prev_interactions))
        elif isinstance(metric, RECO_METRICS):
            out[name] = metric.calc(reco)
        elif isinstance(metric, CatalogCoverage):
            _need(catalog, "catalog", name, metric)
            out[name] = metric.calc(reco, tp.cast(Catalog, catalog))
        else:  # Intersection
            _need(ref_reco, "ref_reco", name, metric)
            if isinstance(ref_reco, pd.DataFrame):
                out[name] = metric.calc(reco, ref_reco)
            elif isinstance(ref_reco, tp.Mapping):
                for ref_name, ref_df in ref_reco.items():
                    out[f"{name}_{ref_name}"] = metric.calc(reco, ref_df)
            else:
                raise TypeError(f"ref_reco must be a DataFrame or a dict name -> DataFrame, got "
                                f"{type(ref_reco).__name__}")
    return out
