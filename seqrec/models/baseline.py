"""What the baselines (``PopularModel``, ``RandomModel``) share: parameters, checks and the
recommendation tables, in the shapes of the transformer models."""

from __future__ import annotations

import inspect
import typing as tp

import numpy as np
import pandas as pd

from ..batching import ranks_in_runs
from ..columns import Columns
from ..dataset import Dataset
from .base import NotFittedError

ON_UNSUPPORTED = ("raise", "warn", "ignore")


def unique_ids(values: tp.Any, what: str) -> np.ndarray:
    """The distinct ids of ``values`` in order of first appearance."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{what} must be a sequence of ids, got {type(values).__name__}")
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.to_numpy()
    elif not isinstance(values, np.ndarray):
        values = pd.Series(list(values)).to_numpy()  # mixed ids stay objects, not strings
    return np.asarray(pd.unique(values))


class BaselineModelBase:
    """scikit-learn conventions: ``__init__`` stores its arguments (checked by ``_validate_params``),
    ``fit`` starts afresh, learned attributes end in ``_``.

    Persistence hook: ``_state_arrays()`` returns the learned state as named numpy arrays and
    ``_set_state_arrays(arrays)`` restores it on a model built from ``get_params()``.
    """

    def _validate_params(self) -> None:
        raise NotImplementedError

    def _fit(self, dataset: Dataset) -> None:
        raise NotImplementedError

    def _state_arrays(self) -> tp.Dict[str, np.ndarray]:
        raise NotImplementedError

    def _set_state_arrays(self, arrays: tp.Mapping[str, np.ndarray]) -> None:
        raise NotImplementedError

    @classmethod
    def _param_names(cls) -> tp.List[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> tp.Dict[str, tp.Any]:
        """Constructor parameters (``type(model)(**model.get_params())`` is an unfitted clone)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: tp.Any) -> "BaselineModelBase":
        """Set constructor parameters (checked), as in scikit-learn."""
        allowed = self._param_names()
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(f"Unknown parameter(s) {unknown} for {type(self).__name__}; allowed: {allowed}")
        old = self.get_params()
        for name, value in params.items():
            setattr(self, name, value)
        try:
            self._validate_params()
        except (ValueError, TypeError):
            for name, value in old.items():
                setattr(self, name, value)
            raise
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    def save(self, f: tp.Any) -> int:
        """Write the model to a path or a binary file object (the format of the transformer models:
        no code runs on load); returns the bytes written."""
        from ..persistence import save_model
        return save_model(self, f)

    @classmethod
    def load(cls, f: tp.Any) -> "BaselineModelBase":
        """Read a model written by :meth:`save`; it must be of this class."""
        from ..persistence import load_model
        return load_model(f, expected=cls)

    @property
    def is_fitted(self) -> bool:
        return getattr(self, "n_fit_items_", None) is not None

    def fit(self, dataset: Dataset) -> "BaselineModelBase":
        """Learn from the interactions of ``dataset`` (always from scratch)."""
        if not isinstance(dataset, Dataset):
            raise TypeError(f"fit needs a seqrec Dataset, got {type(dataset).__name__}")
        self._fit(dataset)
        return self

    def _check_reco_args(self, dataset: tp.Any, k: tp.Any, on_unsupported_targets: tp.Any, what: str) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet: call fit(dataset) first")
        if not isinstance(dataset, Dataset):
            raise TypeError(f"{what} needs a seqrec Dataset, got {type(dataset).__name__}")
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if on_unsupported_targets not in ON_UNSUPPORTED:
            raise ValueError(f"on_unsupported_targets must be one of {ON_UNSUPPORTED}, got "
                             f"{on_unsupported_targets!r}")

    @staticmethod
    def _viewed(dataset: Dataset, users: np.ndarray, item_pos: np.ndarray) -> tp.Tuple[np.ndarray, np.ndarray]:
        """(query, position) pairs, distinct and sorted: the positions ``item_pos`` (of each
        dataset item, -1: none) of the items each of ``users`` (external ids) has in ``dataset``."""
        rows = dataset.user_id_map.to_internal(users, strict=False)
        known = np.flatnonzero(rows >= 0)
        inter = dataset.interactions
        starts, ends = inter.indptr[rows[known]], inter.indptr[rows[known] + 1]
        lengths = ends - starts
        offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        query = np.repeat(known, lengths)
        pos = item_pos[inter.items[np.repeat(starts, lengths) + offsets]]
        keep = pos >= 0
        pairs = np.unique(np.stack([query[keep], pos[keep]]), axis=1) if keep.any() else np.zeros((2, 0), np.int64)
        return pairs[0].astype(np.int64), pairs[1].astype(np.int64)

    @staticmethod
    def _table(target_col: str, targets: np.ndarray, query: np.ndarray, items: np.ndarray, scores: np.ndarray,
               add_rank_col: bool) -> pd.DataFrame:
        """The recommendation table; rows grouped by query (in order), best first."""
        reco = pd.DataFrame({target_col: targets[query], Columns.Item: items,
                             Columns.Score: np.asarray(scores, dtype=np.float32)})
        if add_rank_col:
            reco[Columns.Rank] = ranks_in_runs(query)
        return reco
