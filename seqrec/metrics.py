"""Offline metrics of top-k recommendations, computed with pandas merges and numpy (no per-user loops).

Inputs use external ids and the standard columns (:class:`~seqrec.Columns`):

- ``reco``: ``user_id, item_id, rank`` (rank 1 = best; extra columns are ignored);
- ``targets``: ``user_id, item_id``, the held-out items of each user (duplicates count once).

Ranking metrics are averaged over all users present in ``targets``: a user without
recommendations, or whose top-k holds none of their targets, contributes 0. Relevance is binary.

=================  ============================================================================
``HitRate(k)``     1 if at least one target is in the top-k
``Recall(k)``      hits in the top-k / number of the user's targets
``Precision(k)``   hits in the top-k / k
``NDCG(k)``        sum over hits of 1 / log2(rank + 1), divided by the ideal DCG of
                   ``min(k, n_targets)`` hits at ranks 1, 2, ...
``MRR(k)``         1 / rank of the first hit in the top-k
``MAP(k)``         sum over hits of (hits up to that rank / rank), divided by ``min(k, n_targets)``
``CatalogCoverage(k)``  distinct items in all top-k lists / catalog size
``MeanPopularity(k)``   mean popularity (number of distinct users in ``train`` who interacted
                   with the item) of the top-k items of each recommended user, averaged over the
                   users of ``reco``; ``normalize=True`` divides by the number of users in ``train``
=================  ============================================================================

With one target per user (leave-one-out), HitRate = Recall.
"""

from __future__ import annotations

import typing as tp
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .columns import Columns
from .dataset import check_columns

__all__ = [
    "CatalogCoverage", "HitRate", "MAP", "MRR", "MeanPopularity", "NDCG", "Precision", "Recall",
    "calc_metrics",
]


def _check_k(k: tp.Any) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _check_reco(reco: tp.Any) -> None:
    check_columns(reco, "reco", [Columns.User, Columns.Item, Columns.Rank])
    ranks = reco[Columns.Rank]
    if not pd.api.types.is_numeric_dtype(ranks) or pd.api.types.is_bool_dtype(ranks):
        raise ValueError(f"reco: column '{Columns.Rank}' must hold integers >= 1, got dtype {ranks.dtype}")
    values = ranks.to_numpy(dtype=np.float64)
    if len(values) and ((values < 1).any() or (values != np.floor(values)).any()):
        bad = ranks[(values < 1) | (values != np.floor(values))].iloc[0]
        raise ValueError(f"reco: column '{Columns.Rank}' must hold integers >= 1, found {bad!r}")
    dup = reco.duplicated([Columns.User, Columns.Item])
    if dup.any():
        first = reco.loc[dup, [Columns.User, Columns.Item]].iloc[0].tolist()
        raise ValueError(f"reco: (user_id, item_id) pairs must be unique, duplicated e.g. {first}")


def _top_k(reco: pd.DataFrame, k: int) -> pd.DataFrame:
    return reco.loc[reco[Columns.Rank].to_numpy() <= k, [Columns.User, Columns.Item, Columns.Rank]]


@dataclass(frozen=True)
class _Hits:
    """Hits of the top-k among the targets, in arrays indexed by target user."""

    users: pd.Index  # (U,) target users, in order of first appearance in targets
    n_targets: np.ndarray  # (U,) distinct targets per user
    hit_user: np.ndarray  # (H,) position in ``users`` of each hit, sorted by user then rank
    hit_rank: np.ndarray  # (H,) rank of each hit
    hit_order: np.ndarray  # (H,) 1-based ordinal of each hit among its user's hits

    @classmethod
    def compute(cls, reco: pd.DataFrame, targets: pd.DataFrame, k: int) -> "_Hits":
        _check_reco(reco)
        check_columns(targets, "targets", [Columns.User, Columns.Item])
        targets = targets[[Columns.User, Columns.Item]].drop_duplicates()
        if len(targets) == 0:
            raise ValueError("targets is empty: ranking metrics average over the users of targets")
        user_codes, users = pd.factorize(targets[Columns.User])
        n_targets = np.bincount(user_codes, minlength=len(users))
        hits = _top_k(reco, k).merge(targets, on=[Columns.User, Columns.Item], how="inner")
        hit_user = pd.Index(users).get_indexer(hits[Columns.User])
        hit_rank = hits[Columns.Rank].to_numpy(dtype=np.int64)
        order = np.lexsort((hit_rank, hit_user))
        hit_user, hit_rank = hit_user[order], hit_rank[order]
        # ordinal of a hit inside its user's run of hits
        n = len(hit_user)
        starts = np.r_[True, hit_user[1:] != hit_user[:-1]] if n else np.zeros(0, dtype=bool)
        group_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0)) if n else np.zeros(0, np.int64)
        hit_order = np.arange(n) - group_start + 1
        return cls(pd.Index(users), n_targets, hit_user, hit_rank, hit_order)

    def per_user_sum(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.hit_user, weights=values, minlength=len(self.users))


class _RankingMetric:
    """A metric of the top-k against the targets; ``calc`` is the mean of ``calc_per_user``."""

    k: int

    def __post_init__(self) -> None:
        _check_k(self.k)

    def _per_user(self, hits: _Hits) -> np.ndarray:
        raise NotImplementedError

    def calc_per_user(self, reco: pd.DataFrame, targets: pd.DataFrame) -> pd.Series:
        """Value for each user of ``targets`` (index: user id)."""
        hits = _Hits.compute(reco, targets, self.k)
        return pd.Series(self._per_user(hits), index=hits.users, name=type(self).__name__)

    def calc(self, reco: pd.DataFrame, targets: pd.DataFrame) -> float:
        """Mean over the users of ``targets``."""
        return float(self._per_user(_Hits.compute(reco, targets, self.k)).mean())


@dataclass(frozen=True)
class HitRate(_RankingMetric):
    k: int

    def _per_user(self, hits: _Hits) -> np.ndarray:
        return (np.bincount(hits.hit_user, minlength=len(hits.users)) > 0).astype(np.float64)


@dataclass(frozen=True)
class Recall(_RankingMetric):
    k: int

    def _per_user(self, hits: _Hits) -> np.ndarray:
        return np.bincount(hits.hit_user, minlength=len(hits.users)) / hits.n_targets


@dataclass(frozen=True)
class Precision(_RankingMetric):
    k: int

    def _per_user(self, hits: _Hits) -> np.ndarray:
        return np.bincount(hits.hit_user, minlength=len(hits.users)) / self.k


@dataclass(frozen=True)
class NDCG(_RankingMetric):
    k: int

    def _per_user(self, hits: _Hits) -> np.ndarray:
        dcg = hits.per_user_sum(1.0 / np.log2(hits.hit_rank + 1.0))
        # ideal DCG of n relevant items: all of them at ranks 1..n
        ideal = np.cumsum(1.0 / np.log2(np.arange(2, self.k + 2)))  # (k,)
        return dcg / ideal[np.minimum(hits.n_targets, self.k) - 1]


@dataclass(frozen=True)
class MRR(_RankingMetric):
    k: int

    def _per_user(self, hits: _Hits) -> np.ndarray:
        # hits are sorted by rank inside each user: the first one has ordinal 1
        return hits.per_user_sum(np.where(hits.hit_order == 1, 1.0 / hits.hit_rank, 0.0))


@dataclass(frozen=True)
class MAP(_RankingMetric):
    k: int

    def _per_user(self, hits: _Hits) -> np.ndarray:
        precision_at_hit = hits.hit_order / hits.hit_rank
        return hits.per_user_sum(precision_at_hit) / np.minimum(hits.n_targets, self.k)


@dataclass(frozen=True)
class CatalogCoverage:
    """Share of the catalog that appears in at least one top-k list.

    ``catalog`` is the catalog size (int) or the catalog's item ids (recommended items outside
    it are not counted).
    """

    k: int

    def __post_init__(self) -> None:
        _check_k(self.k)

    def calc(self, reco: pd.DataFrame, catalog: tp.Union[int, tp.Sequence[tp.Hashable], np.ndarray, pd.Index]
             ) -> float:
        _check_reco(reco)
        items = pd.unique(_top_k(reco, self.k)[Columns.Item])
        if isinstance(catalog, (int, np.integer)) and not isinstance(catalog, bool):
            if catalog <= 0:
                raise ValueError(f"catalog size must be positive, got {catalog}")
            return len(items) / int(catalog)
        catalog_index = pd.Index(pd.unique(pd.Series(list(catalog) if not hasattr(catalog, "__array__")
                                                     else np.asarray(catalog))))
        if len(catalog_index) == 0:
            raise ValueError("catalog is empty")
        return float(catalog_index.isin(items).sum()) / len(catalog_index)


@dataclass(frozen=True)
class MeanPopularity:
    """Mean training popularity of recommended items (low = more novel recommendations)."""

    k: int
    normalize: bool = False

    def __post_init__(self) -> None:
        _check_k(self.k)

    def calc_per_user(self, reco: pd.DataFrame, train: pd.DataFrame) -> pd.Series:
        """Mean popularity of each recommended user's top-k (index: user id, users of ``reco``)."""
        _check_reco(reco)
        check_columns(train, "train", [Columns.User, Columns.Item])
        pairs = train[[Columns.User, Columns.Item]].drop_duplicates()
        popularity = pairs.groupby(Columns.Item, sort=False).size()
        if self.normalize:
            n_users = pairs[Columns.User].nunique()
            popularity = popularity / max(n_users, 1)
        top = _top_k(reco, self.k)
        item_pop = popularity.reindex(pd.Index(top[Columns.Item])).fillna(0).to_numpy(np.float64)
        values = pd.Series(item_pop, index=pd.Index(top[Columns.User].to_numpy(), name=Columns.User))
        return values.groupby(level=0, sort=False).mean().rename(type(self).__name__)

    def calc(self, reco: pd.DataFrame, train: pd.DataFrame) -> float:
        per_user = self.calc_per_user(reco, train)
        return float(per_user.mean()) if len(per_user) else 0.0


RANKING_METRICS = (HitRate, Recall, Precision, NDCG, MRR, MAP)
Metric = tp.Union[HitRate, Recall, Precision, NDCG, MRR, MAP, CatalogCoverage, MeanPopularity]


def calc_metrics(
    metrics: tp.Mapping[str, Metric],
    reco: pd.DataFrame,
    targets: tp.Optional[pd.DataFrame] = None,
    catalog: tp.Optional[tp.Union[int, tp.Sequence[tp.Hashable], np.ndarray, pd.Index]] = None,
    train: tp.Optional[pd.DataFrame] = None,
) -> tp.Dict[str, float]:
    """Compute several metrics at once: ``{"ndcg@10": NDCG(10), ...}`` -> ``{"ndcg@10": 0.18, ...}``.

    Ranking metrics need ``targets``, :class:`CatalogCoverage` needs ``catalog`` and
    :class:`MeanPopularity` needs ``train``. Hits are computed once per distinct ``k``.
    """
    if not isinstance(metrics, tp.Mapping):
        raise TypeError(f"metrics must be a dict name -> metric, got {type(metrics).__name__}")
    out: tp.Dict[str, float] = {}
    hits_by_k: tp.Dict[int, _Hits] = {}
    for name, metric in metrics.items():
        if isinstance(metric, RANKING_METRICS):
            if targets is None:
                raise ValueError(f"metric {name!r} ({type(metric).__name__}) needs targets")
            if metric.k not in hits_by_k:
                hits_by_k[metric.k] = _Hits.compute(reco, targets, metric.k)
            out[name] = float(metric._per_user(hits_by_k[metric.k]).mean())
        elif isinstance(metric, CatalogCoverage):
            if catalog is None:
                raise ValueError(f"metric {name!r} (CatalogCoverage) needs catalog")
            out[name] = metric.calc(reco, catalog)
        elif isinstance(metric, MeanPopularity):
            if train is None:
                raise ValueError(f"metric {name!r} (MeanPopularity) needs train interactions")
            out[name] = metric.calc(reco, train)
        else:
            raise TypeError(f"metric {name!r} is not a seqrec metric: {metric!r}; allowed: "
                            f"{[m.__name__ for m in RANKING_METRICS + (CatalogCoverage, MeanPopularity)]}")
    return out
