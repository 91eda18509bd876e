"""Dataset: id maps, time-sorted interaction sequences in CSR form, and item/user features.

Data flows one way: a pandas DataFrame goes in once, through :meth:`Dataset.construct`, and
comes out as compact numpy arrays that the models index directly (no per-user Python).
"""

from __future__ import annotations

import difflib
import typing as tp
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .batching import slice_positions
from .columns import Columns

ExternalIds = tp.Union[tp.Sequence[tp.Hashable], np.ndarray, pd.Series, pd.Index]


class DataWarning(UserWarning):
    """Input that seqrec accepts but that may not mean what the caller thinks (no ``datetime``
    column, duplicate rows, negative weights, ...); each message says what seqrec does with it."""


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    array.flags.writeable = False
    return array


class IdMap:
    """Immutable bijection between external ids (any hashable) and internal ids ``0..n-1``.

    Internal id ``i`` is the position of the external id in :attr:`external_ids`.
    """

    def __init__(self, external_ids: ExternalIds) -> None:
        index = pd.Index(external_ids)
        if index.hasnans:
            raise ValueError("IdMap: external ids must not contain missing values (NaN/None)")
        if not index.is_unique:
            dup = index[index.duplicated()].unique()[:5].tolist()
            raise ValueError(f"IdMap: external ids must be unique, duplicated: {dup}")
        self._index = index
        self._external = _readonly(index.to_numpy(copy=True))

    @classmethod
    def from_values(cls, values: ExternalIds) -> "IdMap":
        """Build a map of the unique values, in order of first appearance."""
        return cls(pd.unique(pd.Series(values)))

    @property
    def external_ids(self) -> np.ndarray:
        """External ids ordered by internal id (read-only)."""
        return self._external

    @property
    def size(self) -> int:
        return len(self._external)

    def __len__(self) -> int:
        return self.size

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdMap):
            return NotImplemented
        return self is other or (self.size == other.size and bool(self._index.equals(other._index)))

    def __repr__(self) -> str:
        return f"IdMap(size={self.size})"

    def to_internal(self, values: ExternalIds, strict: bool = True) -> np.ndarray:
        """Internal ids of ``values``; unknown ids raise (``strict``) or map to ``-1``."""
        internal = self._index.get_indexer(pd.Index(values)).astype(np.int64, copy=False)
        if strict and (internal < 0).any():
            unknown = pd.Index(values)[internal < 0].unique()[:5].tolist()
            raise KeyError(f"Unknown external ids (first {len(unknown)}): {unknown}")
        return internal

    def to_external(self, internal: np.ndarray) -> np.ndarray:
        """External ids of internal ids ``internal``."""
        return self._external[np.asarray(internal, dtype=np.int64)]

    def add_ids(self, values: ExternalIds) -> "IdMap":
        """A new map with the ids of ``values`` that this one lacks appended (first appearance order)."""
        new = pd.unique(pd.Series(values))
        new = new[self._index.get_indexer(pd.Index(new)) < 0]
        if len(new) == 0:
            return self
        return IdMap(self._index.append(pd.Index(new)))


@dataclass(frozen=True)
class Interactions:
    """Interactions grouped by internal user id, each user's rows sorted by time.

    User ``u`` owns rows ``indptr[u]:indptr[u + 1]`` of ``items``, ``weights`` and ``times``
    (stable sort by datetime: ties keep input order).
    """

    indptr: np.ndarray  # (n_users + 1,) int64
    items: np.ndarray  # (nnz,) int64, internal item ids
    weights: np.ndarray  # (nnz,) float32
    times: np.ndarray  # (nnz,) int64 (datetime64[ns] as integers, integer times, or row order if no
    # datetime), or float64 when the datetime column holds floats (kept exactly: no truncation)
    times_are_datetimes: bool = False  # whether ``times`` hold datetime64[ns] values
    times_are_row_order: bool = False  # no datetime column: ``times`` are row positions, not real times

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    @property
    def lengths(self) -> np.ndarray:
        """Number of interactions of each user, ``(n_users,)``."""
        return np.diff(self.indptr)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class SparseFeatures:
    """Features in CSR form: row = entity (internal id), column = ``names[j]``.

    Categorical features get one column per ``(feature, value)`` pair with value 1; numeric
    features get one column ``(feature, None)`` holding the number.
    """

    indptr: np.ndarray  # (n_entities + 1,) int64
    indices: np.ndarray  # (nnz,) int64, column ids
    values: np.ndarray  # (nnz,) float32
    names: tp.Tuple[tp.Tuple[str, tp.Any], ...]  # (n_columns,)
    cat_columns: np.ndarray  # (n_columns,) bool: column belongs to a categorical feature

    @property
    def n_columns(self) -> int:
        return len(self.names)

    def categorical(self) -> "SparseFeatures":
        """The same table restricted to the categorical columns (renumbered)."""
        keep = self.cat_columns
        new_col = np.cumsum(keep) - 1
        nz = keep[self.indices]
        row = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))[nz]
        indptr = np.zeros(len(self.indptr), dtype=np.int64)
        np.add.at(indptr, row + 1, 1)
        return SparseFeatures(
            indptr=np.cumsum(indptr),
            indices=new_col[self.indices[nz]],
            values=self.values[nz],
            names=tuple(n for n, k in zip(self.names, keep) if k),
            cat_columns=np.ones(int(keep.sum()), dtype=bool),
        )


@dataclass(frozen=True)
class DenseFeatures:
    """Dense numeric features, one row per entity (internal id)."""

    values: np.ndarray  # (n_entities, n_features) float32
    names: tp.Tuple[str, ...]


Features = tp.Union[SparseFeatures, DenseFeatures]


def take_feature_rows(features: tp.Optional[Features], rows: np.ndarray,
                      drop_unused_columns: bool = False) -> tp.Optional[Features]:
    """The feature table of the entities ``rows`` (internal ids), in that order; with
    ``drop_unused_columns`` the sparse columns no chosen entity has are dropped (and renumbered)."""
    if features is None:
        return None
    rows = np.asarray(rows, dtype=np.int64)
    if isinstance(features, DenseFeatures):
        return DenseFeatures(values=_readonly(features.values[rows]), names=features.names)
    indptr, pos = slice_positions(features.indptr[rows], features.indptr[rows + 1] - features.indptr[rows])
    indices, names, cat_columns = features.indices[pos], features.names, features.cat_columns
    if drop_unused_columns:
        used = np.zeros(len(names), dtype=bool)
        used[indices] = True
        indices = (np.cumsum(used) - 1)[indices]
        names = tuple(n for n, u in zip(names, used) if u)
        cat_columns = cat_columns[used]
    return SparseFeatures(indptr=_readonly(indptr), indices=_readonly(indices),
                          values=_readonly(features.values[pos]), names=names, cat_columns=_readonly(cat_columns))


def _py(value: tp.Any) -> tp.Any:
    """A numpy scalar as the Python value it holds (for messages: ``2``, not ``np.int64(2)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _suggest(missing: str, columns: tp.Sequence[tp.Any]) -> str:
    names = {str(c).lower(): str(c) for c in columns}
    close = difflib.get_close_matches(missing.lower(), list(names), n=1, cutoff=0.6)
    return f" (rename '{names[close[0]]}' to '{missing}'?)" if close else ""


def check_columns(df: tp.Any, what: str, required: tp.Sequence[str]) -> None:
    """TypeError unless ``df`` is a DataFrame; ValueError naming a missing column (with the close
    name it may be misspelt as) or the first missing value of a required column."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        hints = "".join(_suggest(c, [x for x in df.columns if x not in required]) for c in missing)
        raise ValueError(f"{what} is missing required column(s) {missing}; it has {list(df.columns)}{hints}")
    for col in required:
        isna = df[col].isna().to_numpy()
        if isna.any():
            first = df.index[isna][0]
            raise ValueError(f"{what}: column '{col}' has {int(isna.sum())} missing value(s) "
                             f"({_py(df[col].iloc[int(np.argmax(isna))])!r}), first at index {_py(first)!r}")


def _id_kind(value: tp.Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


def check_id_types(uniques: tp.Any, what: str, col: str) -> None:
    """Ids of one column should be of one kind (numbers or strings, ...): distinct ids that only
    differ by type (``1`` and ``"1"``) raise a TypeError, other mixes give a DataWarning (they are
    distinct ids, but a lookup with the wrong type will not find them)."""
    values = pd.Series(np.asarray(uniques, dtype=object))
    if values.empty or pd.api.types.infer_dtype(values, skipna=False) not in ("mixed", "mixed-integer",
                                                                              "mixed-integer-float"):
        return
    kinds = values.map(_id_kind)
    if kinds.nunique() < 2:
        return
    text = values.astype(str)
    clash = text.duplicated(keep=False).to_numpy()
    if clash.any():
        same = [_py(x) for x in values[clash & (text == text[clash].iloc[0]).to_numpy()]]
        raise TypeError(f"{what}: column '{col}' has ids that differ only by type, e.g. {same}; convert the "
                        "column to one type (e.g. .astype(str))")
    examples = {k: _py(values[kinds == k].iloc[0]) for k in kinds.unique()}
    warnings.warn(f"{what}: column '{col}' mixes id types {sorted(examples)}, e.g. {list(examples.values())}; "
                  "they are distinct ids, and recommend must be given ids of the same types", DataWarning,
                  stacklevel=3)


def _is_numeric_time(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def _time_values(col: pd.Series, what: str = "interactions") -> np.ndarray:
    """The time order key of a ``datetime`` column, the same for ``Dataset`` and every split:
    datetimes as int64 nanoseconds (time zones converted to UTC), integers as int64, floats as
    float64 (kept exactly, not truncated)."""
    name = Columns.Datetime
    if _is_numeric_time(col):
        if col.dtype.kind == "f":
            values = col.to_numpy(dtype=np.float64)
            if not np.isfinite(values).all():
                bad = int(np.flatnonzero(~np.isfinite(values))[0])
                raise ValueError(f"{what}: column '{name}' has a non-finite time {float(values[bad])!r} at index "
                                 f"{_py(col.index[bad])!r}")
            return values
        return col.to_numpy(np.int64)
    if pd.api.types.is_bool_dtype(col):
        raise TypeError(f"{what}: column '{name}' must hold datetimes or numbers, got dtype {col.dtype}")
    try:
        converted = pd.to_datetime(col)
    except (ValueError, TypeError, OverflowError) as e:
        example = ""
        try:
            bad = pd.to_datetime(col, errors="coerce").isna().to_numpy()
            if bad.any():
                i = int(np.argmax(bad))
                example = f", e.g. {_py(col.iloc[i])!r} at index {_py(col.index[i])!r}"
        except (ValueError, TypeError, OverflowError):
            pass
        reason = str(e).splitlines()[0]
        raise ValueError(f"{what}: column '{name}' must hold datetimes (of one format and time zone) or numbers"
                         f"{example}: {reason}") from None
    if not pd.api.types.is_datetime64_any_dtype(converted):
        raise ValueError(f"{what}: column '{name}' could not be read as datetimes (mixed time zones?), "
                         f"got dtype {converted.dtype}")
    if converted.dt.tz is not None:
        converted = converted.dt.tz_convert("UTC").dt.tz_localize(None)
    return converted.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def _user_time_order(user_codes: np.ndarray, times: np.ndarray, n_users: int) -> np.ndarray:
    """Permutation grouping rows by user code, each user's rows by time, ties in row order.

    One stable sort of one key instead of two: times are shifted to start at 0 and divided by
    their common divisor (datetimes in ns are usually whole seconds), then combined with the user
    code into ``user * span + time``. The key is sorted by ``torch.sort(stable=True)``, a radix
    sort for integer keys on CPU (several times faster than numpy's stable sort, and single
    threaded under ``torch.set_num_threads(1)``). When the key does not fit in int64, or times
    are floats, two stable argsorts.
    """
    n = len(times)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    t_min, t_max = (int(times.min()), int(times.max())) if times.dtype.kind in "iu" else (0, 2**62)
    if t_max - t_min < 2**62:
        shifted = times - t_min
        step = int(np.gcd.reduce(shifted)) or 1
        span = (t_max - t_min) // step + 1
        if n_users * span < 2**63:
            key = user_codes * span + (shifted // step if step > 1 else shifted)
            return torch.sort(torch.from_numpy(key), stable=True).indices.numpy()
    order = np.argsort(times, kind="stable")
    return order[np.argsort(user_codes[order], kind="stable")]


def build_interactions(user_codes: np.ndarray, item_codes: np.ndarray, n_users: int,
                       weights: np.ndarray, times: np.ndarray, times_are_datetimes: bool = False,
                       times_are_row_order: bool = False) -> Interactions:
    """Group rows by user and sort each user's rows by time (stable)."""
    times = np.asarray(times)
    times = times if times.dtype.kind == "f" else times.astype(np.int64, copy=False)
    order = _user_time_order(np.asarray(user_codes, dtype=np.int64), times, n_users)
    counts = np.bincount(user_codes, minlength=n_users)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Interactions(
        indptr=_readonly(indptr),
        items=_readonly(item_codes[order].astype(np.int64, copy=False)),
        weights=_readonly(weights[order].astype(np.float32, copy=False)),
        times=_readonly(times[order]),
        times_are_datetimes=times_are_datetimes,
        times_are_row_order=times_are_row_order,
    )


def _make_sparse_features(df: tp.Any, id_map: IdMap, cat_features: tp.Sequence[str], what: str) -> SparseFeatures:
    check_columns(df, what, [Columns.Id, Columns.Value, Columns.Feature])
    cat_set = set(cat_features)
    present = set(pd.unique(df[Columns.Feature]))
    absent = sorted(map(str, cat_set - present))
    if absent:
        # not an error: a pipeline may declare features that a given table lacks (RecTools accepts it)
        warnings.warn(f"{what}: categorical feature(s) {absent} not found in column '{Columns.Feature}' "
                      f"(present: {sorted(map(str, present))}); they are ignored", DataWarning, stacklevel=4)
    rows = id_map.to_internal(df[Columns.Id], strict=False)
    known = rows >= 0  # every id of the table is in the map (construct adds them); kept for safety
    df = df.loc[known, [Columns.Id, Columns.Value, Columns.Feature]]
    rows = rows[known]
    is_cat = df[Columns.Feature].isin(cat_set).to_numpy()
    # the same (id, feature, value) twice would count the pair twice: such repeats are dropped
    repeated = df.duplicated().to_numpy() & is_cat
    if repeated.any():
        first = df.loc[repeated].iloc[0]
        warnings.warn(f"{what}: {int(repeated.sum())} repeated ({Columns.Id}, {Columns.Feature}, {Columns.Value}) "
                      f"row(s), e.g. ({_py(first[Columns.Id])!r}, {_py(first[Columns.Feature])!r}, {_py(first[Columns.Value])!r}); "
                      "each pair counts once", DataWarning, stacklevel=4)
        df, rows, is_cat = df.loc[~repeated], rows[~repeated], is_cat[~repeated]
    # categorical columns: one per (feature, value) pair
    pairs = pd.MultiIndex.from_arrays([df[Columns.Feature].to_numpy()[is_cat], df[Columns.Value].to_numpy()[is_cat]])
    cat_codes, cat_uniques = pd.factorize(pairs)
    cat_names = list(cat_uniques)
    # numeric columns: one per feature
    num_feat = df[Columns.Feature].to_numpy()[~is_cat]
    num_codes, num_uniques = pd.factorize(num_feat)
    raw_values = df[Columns.Value].to_numpy()[~is_cat]
    num_values = pd.to_numeric(pd.Series(raw_values), errors="coerce").to_numpy(np.float64)
    if not np.isfinite(num_values).all():
        bad = np.flatnonzero(~np.isfinite(num_values))
        features = pd.unique(num_uniques[num_codes[bad]])[:5].tolist()
        raise ValueError(f"{what}: feature(s) {features} have non-numeric or non-finite values, e.g. "
                         f"{_py(raw_values[bad[0]])!r} of {Columns.Id} {_py(df[Columns.Id].to_numpy()[~is_cat][bad[0]])!r}; "
                         "name them in the categorical features list or give finite numbers")
    num_rows = rows[~is_cat]
    twice = pd.Series(num_rows * max(1, len(num_uniques)) + num_codes).duplicated().to_numpy()
    if twice.any():
        i = int(np.argmax(twice))
        raise ValueError(f"{what}: numeric feature {num_uniques[num_codes[i]]!r} has several values for "
                         f"{Columns.Id} {_py(df[Columns.Id].to_numpy()[~is_cat][i])!r}; give one value per id, or name the "
                         "feature in the categorical features list")
    names = tuple((f, v) for f, v in cat_names) + tuple((f, None) for f in num_uniques)
    col = np.concatenate([cat_codes, num_codes + len(cat_names)]).astype(np.int64)
    row = np.concatenate([rows[is_cat], num_rows])
    val = np.concatenate([np.ones(int(is_cat.sum())), num_values]).astype(np.float32)
    order = np.lexsort((col, row))
    indptr = np.zeros(id_map.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=id_map.size), out=indptr[1:])
    cat_columns = np.zeros(len(names), dtype=bool)
    cat_columns[: len(cat_names)] = True
    return SparseFeatures(indptr=_readonly(indptr), indices=_readonly(col[order]), values=_readonly(val[order]),
                          names=names, cat_columns=_readonly(cat_columns))


def _make_dense_features(df: tp.Any, id_map: IdMap, what: str) -> DenseFeatures:
    check_columns(df, what, [Columns.Id])
    rows = id_map.to_internal(df[Columns.Id], strict=False)
    known = rows >= 0
    names = tuple(c for c in df.columns if c != Columns.Id)
    for name in names:  # each column checked, so that the error names it
        col = df[name]
        if not pd.api.types.is_numeric_dtype(col):  # bools count as 0 and 1
            raise ValueError(f"{what}: dense features must be numeric: column {name!r} has dtype {col.dtype}")
        finite = np.isfinite(col.to_numpy(dtype=np.float64))
        if not finite.all():
            first = np.flatnonzero(~finite)[0]
            raise ValueError(f"{what}: dense feature column {name!r} has {int((~finite).sum())} missing or "
                             f"non-finite value(s), first at index {df.index[first]!r} "
                             f"({Columns.Id} {_py(df[Columns.Id].to_numpy()[first])!r})")
    values = df.loc[known, list(names)].to_numpy(dtype=np.float32)
    dup = pd.Series(rows[known]).duplicated().to_numpy()
    if dup.any():
        ids = [_py(x) for x in pd.unique(df[Columns.Id].to_numpy()[known][dup])[:5]]
        raise ValueError(f"{what}: dense features need one row per '{Columns.Id}', found duplicated ids {ids}")
    out = np.zeros((id_map.size, len(names)), dtype=np.float32)
    out[rows[known]] = values
    return DenseFeatures(values=_readonly(out), names=names)


def _check_weights(col: pd.Series) -> np.ndarray:
    name = Columns.Weight
    if not pd.api.types.is_numeric_dtype(col):
        example = _py(col.iloc[0]) if len(col) else None
        raise TypeError(f"interactions: column '{name}' must be numeric, got dtype {col.dtype} (e.g. {example!r})")
    weights = col.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(weights)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"interactions: column '{name}' has {int(bad.sum())} non-finite value(s), e.g. "
                         f"{float(weights[i])!r} at index {_py(col.index[i])!r}")
    negative = weights < 0
    if negative.any():
        i = int(np.argmax(negative))
        warnings.warn(f"interactions: column '{name}' has {int(negative.sum())} negative value(s), e.g. "
                      f"{float(weights[i])!r} at index {_py(col.index[i])!r}; they are kept (the transformer models ignore "
                      "weights; PopularModel's weight popularities add them as they are)", DataWarning, stacklevel=4)
    return weights.astype(np.float32)


def _warn_duplicates(inter: Interactions, users: np.ndarray, items: np.ndarray) -> None:
    """A DataWarning when rows repeat the same (user, item, datetime): kept, as repeated interactions.

    Only rows that tie in time with their predecessor can repeat one, so only those tie groups are
    compared (nothing to do for distinct timestamps)."""
    user_of = np.repeat(np.arange(inter.n_users), inter.lengths)
    same = np.zeros(len(inter), dtype=bool)
    same[1:] = (user_of[1:] == user_of[:-1]) & (inter.times[1:] == inter.times[:-1])
    in_group = same.copy()
    in_group[:-1] |= same[1:]
    if not same.any():
        return
    pos = np.flatnonzero(in_group)
    groups = pd.DataFrame({"u": user_of[pos], "t": inter.times[pos], "i": inter.items[pos]})
    dup = groups.duplicated().to_numpy()
    if dup.any():
        j = pos[int(np.argmax(dup))]
        example = (_py(users[user_of[j]]), _py(items[inter.items[j]]))
        warnings.warn(f"interactions: {int(dup.sum())} row(s) repeat the same ({Columns.User}, {Columns.Item}, "
                      f"{Columns.Datetime}), e.g. {example}; they are kept as repeated interactions (drop them with "
                      "df.drop_duplicates() if they are logging artefacts)", DataWarning, stacklevel=3)


@dataclass(frozen=True)
class Dataset:
    """Interactions with their id maps and optional features; build it with :meth:`construct`."""

    user_id_map: IdMap
    item_id_map: IdMap
    interactions: Interactions
    user_features: tp.Optional[Features] = None
    item_features: tp.Optional[Features] = None

    @property
    def n_users(self) -> int:
        return self.user_id_map.size

    @property
    def n_items(self) -> int:
        return self.item_id_map.size

    @classmethod
    def construct(
        cls,
        interactions_df: pd.DataFrame,
        user_features_df: tp.Optional[pd.DataFrame] = None,
        cat_user_features: tp.Iterable[str] = (),
        make_dense_user_features: bool = False,
        item_features_df: tp.Optional[pd.DataFrame] = None,
        cat_item_features: tp.Iterable[str] = (),
        make_dense_item_features: bool = False,
    ) -> "Dataset":
        """Build a dataset from an interactions table and optional feature tables.

        ``interactions_df`` has columns ``user_id, item_id`` and optionally ``weight`` (default 1)
        and ``datetime`` (without it, row order, with a :class:`DataWarning`). Ids may be of any hashable type; internal ids
        follow the order of first appearance. Feature tables are in the flat form
        ``id, value, feature`` (several rows per entity allowed), or, with ``make_dense_*``, one
        row per ``id`` and one numeric column per feature. The features named in ``cat_*_features``
        are categorical. Ids that occur only in a feature table are appended to the id map after
        the ids of the interactions (as in RecTools: "warm" users, cold items), so that a cold item
        with features can be scored by a model that embeds features. The input DataFrames are not
        modified.
        """
        check_columns(interactions_df, "interactions", [Columns.User, Columns.Item])
        n = len(interactions_df)
        if n == 0:
            raise ValueError("interactions is empty")
        user_codes, user_uniques = pd.factorize(interactions_df[Columns.User])
        item_codes, item_uniques = pd.factorize(interactions_df[Columns.Item])
        check_id_types(user_uniques, "interactions", Columns.User)
        check_id_types(item_uniques, "interactions", Columns.Item)
        if Columns.Weight in interactions_df.columns:
            check_columns(interactions_df, "interactions", [Columns.Weight])
            weights = _check_weights(interactions_df[Columns.Weight])
        else:
            weights = np.ones(n, dtype=np.float32)
        has_times = Columns.Datetime in interactions_df.columns
        if has_times:
            check_columns(interactions_df, "interactions", [Columns.Datetime])
            times = _time_values(interactions_df[Columns.Datetime])
            are_datetimes = not _is_numeric_time(interactions_df[Columns.Datetime])
        else:
            warnings.warn(f"interactions has no '{Columns.Datetime}' column (it has {list(interactions_df.columns)}): "
                          "each user's interactions are taken in row order", DataWarning, stacklevel=2)
            times = np.arange(n, dtype=np.int64)
            are_datetimes = False
        user_map = IdMap(user_uniques)
        item_map = IdMap(item_uniques)
        # feature-only ids go after the ids of the interactions
        if user_features_df is not None and Columns.Id in getattr(user_features_df, "columns", ()):
            user_map = user_map.add_ids(user_features_df[Columns.Id].dropna())
        if item_features_df is not None and Columns.Id in getattr(item_features_df, "columns", ()):
            item_map = item_map.add_ids(item_features_df[Columns.Id].dropna())
        inter = build_interactions(user_codes, item_codes, user_map.size, weights, times, are_datetimes,
                                   times_are_row_order=Columns.Datetime not in interactions_df.columns)
        if has_times:
            _warn_duplicates(inter, user_map.external_ids, item_map.external_ids)

        def features(df: tp.Optional[pd.DataFrame], id_map: IdMap, cats: tp.Iterable[str], dense: bool,
                     what: str) -> tp.Optional[Features]:
            if isinstance(cats, str):
                cats = [cats]
            elif not isinstance(cats, tp.Iterable):
                raise TypeError(f"cat_{what} must be a list of feature names, got {cats!r}")
            cats = list(cats)
            if df is None:
                if cats:
                    raise ValueError(f"categorical {what} {cats} given without a {what} table")
                return None
            if dense:
                if cats:
                    raise ValueError(f"dense {what} cannot have categorical features ({cats})")
                return _make_dense_features(df, id_map, what)
            return _make_sparse_features(df, id_map, cats, what)

        return cls(
            user_id_map=user_map,
            item_id_map=item_map,
            interactions=inter,
            user_features=features(user_features_df, user_map, cat_user_features, make_dense_user_features,
                                   "user_features"),
            item_features=features(item_features_df, item_map, cat_item_features, make_dense_item_features,
                                   "item_features"),
        )

    @property
    def n_hot_users(self) -> int:
        """Users ``0..n_hot_users - 1`` have interactions; the others only features (as in RecTools)."""
        return self._n_hot(self.interactions.lengths > 0)

    @property
    def n_hot_items(self) -> int:
        """Items ``0..n_hot_items - 1`` occur in the interactions; the others only in the item features."""
        counts = np.bincount(self.interactions.items, minlength=self.n_items)
        return self._n_hot(counts > 0)

    @staticmethod
    def _n_hot(present: np.ndarray) -> int:
        # hot ids come first (construct appends feature-only ids after them)
        absent = np.flatnonzero(~present)
        return int(absent[0]) if len(absent) else len(present)

    def get_raw_interactions(self) -> pd.DataFrame:
        """Interactions as a DataFrame with external ids, grouped by user and sorted by time."""
        inter = self.interactions
        users = np.repeat(np.arange(inter.n_users), inter.lengths)
        return pd.DataFrame({
            Columns.User: self.user_id_map.to_external(users),
            Columns.Item: self.item_id_map.to_external(inter.items),
            Columns.Weight: inter.weights,
            Columns.Datetime: inter.times.view("datetime64[ns]") if inter.times_are_datetimes else inter.times,
        })
