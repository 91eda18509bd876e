"""Reading interaction logs and item features into seqrec's standard columns.

One path for every source: a pandas or polars DataFrame, or a CSV / TSV / Parquet file. The
caller's columns are mapped onto ``user_id, item_id, weight, datetime`` (``Columns``); times may
be datetimes, unix timestamps (numbers, ``time_unit`` seconds by default) or ISO 8601 strings,
and come out as naive UTC ``datetime64[ns]``. Only the named columns are read. The input frame is
never modified: the result is a new DataFrame.

Polars and Parquet are optional (``pip install "seqrec[io]"``): polars is only imported when a
polars frame is passed (it is recognised by its module name), pyarrow only when a Parquet file is
read or written.
"""

from __future__ import annotations

import os
import typing as tp
from pathlib import Path

import numpy as np
import pandas as pd

from .columns import Columns

Source = tp.Union[str, "os.PathLike[str]", pd.DataFrame, tp.Any]  # tp.Any: a polars DataFrame / LazyFrame

CSV_SUFFIXES = (".csv", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
_COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")
TIME_UNITS = ("s", "ms", "us", "ns")


# ----------------------------------------------------------------- files and frames
def file_format(path: tp.Union[str, "os.PathLike[str]"]) -> str:
    """``"csv"``, ``"tsv"`` or ``"parquet"`` from a file name (compressed CSV such as ``.csv.gz`` included)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in CSV_SUFFIXES:
        return last[1:]
    if last in PARQUET_SUFFIXES:
        return "parquet"
    raise ValueError(f"{os.fspath(path)!r}: unknown file type {last or '(no extension)'!r}; allowed: "
                     f"{list(CSV_SUFFIXES + PARQUET_SUFFIXES)} (CSV also compressed, e.g. .csv.gz)")


def _need_pyarrow(what: str) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ImportError(f"{what} needs pyarrow: pip install \"seqrec[io]\"") from None


def _is_polars(obj: tp.Any) -> bool:
    return type(obj).__module__.split(".")[0] == "polars"


def _file_columns(path: Path, fmt: str) -> tp.List[str]:
    if fmt == "parquet":
        _need_pyarrow("Reading Parquet")
        import pyarrow.parquet as pq
        return list(pq.read_schema(path).names)
    return list(pd.read_csv(path, nrows=0, sep="\t" if fmt == "tsv" else ",").columns)


def _read_columns(source: Source, what: str, pick: tp.Callable[[tp.List[str]], tp.List[str]]) -> pd.DataFrame:
    """The columns ``pick(available)`` of ``source`` as a new pandas DataFrame (``pick`` raises for
    missing ones). Files read only those columns."""
    if isinstance(source, pd.DataFrame):
        cols = pick(list(source.columns))
        return pd.DataFrame({c: source[c].to_numpy(copy=True) for c in cols}, index=pd.RangeIndex(len(source)))
    if _is_polars(source):
        if hasattr(source, "collect"):  # a LazyFrame
            names = list(source.collect_schema().names())
            frame = source.select(pick(names)).collect()
        else:
            frame = source.select(pick(list(source.columns)))
        _need_pyarrow("Converting a polars DataFrame")
        return frame.to_pandas()
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"{what} must be a file path, a pandas DataFrame or a polars DataFrame, "
                        f"got {type(source).__name__}")
    path = Path(source)
    fmt = file_format(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no such file {os.fspath(path)!r}")
    cols = pick(_file_columns(path, fmt))
    if fmt == "parquet":
        return pd.read_parquet(path, columns=cols)
    return pd.read_csv(path, usecols=cols, sep="\t" if fmt == "tsv" else ",")[cols]


def write_table(df: pd.DataFrame, path: tp.Union[str, "os.PathLike[str]"]) -> None:
    """Write ``df`` as CSV, TSV or Parquet, chosen by the file name; the folder is created."""
    fmt = file_format(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        _need_pyarrow("Writing Parquet")
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")


def _describe(source: Source) -> str:
    return repr(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else "the DataFrame"


def _picker(what: str, source: Source, required: tp.Dict[str, str], optional: tp.Dict[str, str]
            ) -> tp.Callable[[tp.List[str]], tp.List[str]]:
    """Column picker: every ``required`` column (role -> source name) must exist, ``optional`` ones
    are taken when present."""
    def pick(available: tp.List[str]) -> tp.List[str]:
        for role, col in required.items():
            if col not in available:
                raise ValueError(f"{what}: {role} column {col!r} not found in {_describe(source)}; "
                                 f"its columns are {available}")
        chosen = list(required.values()) + [c for c in optional.values() if c in available]
        return list(dict.fromkeys(chosen))
    return pick


def _check_no_missing(frame: pd.DataFrame, col: str, what: str) -> None:
    missing = frame[col].isna().to_numpy()
    if missing.any():
        raise ValueError(f"{what}: column {col!r} has {int(missing.sum())} missing value(s), first in row "
                         f"{int(np.flatnonzero(missing)[0])}")


# ----------------------------------------------------------------- times
def to_datetimes(col: pd.Series, name: str, time_unit: str = "s") -> pd.Series:
    """Datetimes (naive, UTC) from datetimes, unix timestamps in ``time_unit`` or ISO 8601 strings;
    an error naming the column ``name`` otherwise."""
    if time_unit not in TIME_UNITS:
        raise ValueError(f"Unknown time_unit {time_unit!r}; allowed: {TIME_UNITS}")
    if pd.api.types.is_bool_dtype(col):
        raise ValueError(f"time column {name!r} holds booleans; expected datetimes, unix timestamps or ISO strings")
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        out = col.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(col):
        out = col
    elif pd.api.types.is_numeric_dtype(col):
        try:
            out = pd.to_datetime(col, unit=time_unit)
        except (ValueError, OverflowError) as e:
            raise ValueError(f"time column {name!r}: numbers are read as unix timestamps in {time_unit!r} "
                             f"(time_unit) and these are out of range: {e}") from None
    else:
        values = col.astype(object)
        if all(isinstance(v, str) for v in values):
            numbers = pd.to_numeric(values, errors="coerce")
            if not numbers.isna().any():  # numbers stored as text
                return to_datetimes(pd.Series(numbers, index=col.index), name, time_unit)
            try:
                out = pd.to_datetime(values, format="ISO8601", utc=True).dt.tz_localize(None)
            except (ValueError, TypeError):
                bad = next((v for v in values if pd.isna(pd.to_datetime(v, format="ISO8601", errors="coerce"))),
                           values.iloc[0])
                raise ValueError(f"time column {name!r}: {bad!r} is not an ISO 8601 date or time "
                                 "(e.g. '2024-01-31' or '2024-01-31T12:00:00'), nor a unix timestamp") from None
        else:
            try:
                out = pd.to_datetime(values, utc=True).dt.tz_localize(None)  # date / datetime objects
            except (ValueError, TypeError) as e:
                raise ValueError(f"time column {name!r} must hold datetimes, unix timestamps or ISO strings, "
                                 f"got dtype {col.dtype}: {e}") from None
    return out.astype("datetime64[ns]")


# ----------------------------------------------------------------- interactions
def read_interactions(source: Source, user_col: str = Columns.User, item_col: str = Columns.Item,
                      time_col: tp.Optional[str] = None, weight_col: tp.Optional[str] = None,
                      time_unit: str = "s") -> pd.DataFrame:
    """An interaction log as a new DataFrame with seqrec's columns ``user_id, item_id[, weight][, datetime]``.

    ``source``: a CSV / TSV / Parquet file or a pandas / polars DataFrame. ``user_col`` and
    ``item_col`` must exist. ``time_col`` / ``weight_col``: None takes ``datetime`` / ``weight``
    when present (no datetime: the row order is the time order; no weight: 1), a name must exist.
    Times: datetimes, unix timestamps in ``time_unit`` (``"s"``, ``"ms"``, ``"us"``, ``"ns"``)
    or ISO 8601 strings (with an offset: converted to UTC). Missing ids or times, non-numeric or
    non-finite weights raise a ``ValueError`` naming the column.
    """
    what = "interactions"
    roles = {"user": user_col, "item": item_col}
    for role, col in (("time", time_col), ("weight", weight_col)):
        if col is not None:
            roles[role] = col
    for role, col in roles.items():
        if not isinstance(col, str) or not col:
            raise TypeError(f"{role}_col must be a column name (str), got {col!r}")
    used = [c for c in roles.values()]
    dup = sorted({c for c in used if used.count(c) > 1})
    if dup:
        shared = [r for r, c in roles.items() if c == dup[0]]
        raise ValueError(f"{what}: column {dup[0]!r} is given for several roles {shared}")
    optional = {r: c for r, c in (("time", Columns.Datetime), ("weight", Columns.Weight)) if r not in roles}
    optional = {r: c for r, c in optional.items() if c not in used}
    frame = _read_columns(source, what, _picker(what, source, roles, optional))
    for role, col in optional.items():
        if col in frame.columns:
            roles[role] = col
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for role, std in (("user", Columns.User), ("item", Columns.Item)):
        _check_no_missing(frame, roles[role], what)
        out[std] = frame[roles[role]].to_numpy()
    if "weight" in roles:
        col = roles["weight"]
        weights = frame[col]
        if not pd.api.types.is_numeric_dtype(weights) or pd.api.types.is_bool_dtype(weights):
            raise ValueError(f"{what}: weight column {col!r} must be numeric, got dtype {weights.dtype}")
        _check_no_missing(frame, col, what)
        values = weights.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError(f"{what}: weight column {col!r} has non-finite values (inf)")
        out[Columns.Weight] = values
    if "time" in roles:
        col = roles["time"]
        _check_no_missing(frame, col, what)
        out[Columns.Datetime] = to_datetimes(frame[col].reset_index(drop=True), col, time_unit).to_numpy()
    if len(out) == 0:
        raise ValueError(f"{what}: {_describe(source)} has no rows")
    return out


# ----------------------------------------------------------------- item features
def read_item_features(source: Source, item_col: str = Columns.Item, cat_features: tp.Sequence[str] = (),
                       sep: tp.Optional[str] = None) -> pd.DataFrame:
    """Item features as a new flat table ``id, value, feature`` (the form ``Dataset.construct`` takes).

    Two input forms:

    - flat: columns ``id, value, feature`` (several rows per item allowed), taken as they are;
    - wide: one row per item, the item id in ``item_col`` and one column per feature; the columns
      named in ``cat_features`` are read (missing values skipped). With ``sep`` (e.g. ``"|"``)
      a text value holding several categories (``"Action|Comedy"``) becomes one row each.

    ``cat_features`` are the categorical features (pass the same list to ``Dataset.construct``'s
    ``cat_item_features``); in the flat form each must be one of the table's feature names.
    """
    what = "item_features"
    cats = [cat_features] if isinstance(cat_features, str) else list(cat_features)
    if sep is not None and (not isinstance(sep, str) or not sep):
        raise ValueError(f"sep must be a non-empty string or None, got {sep!r}")
    flat_cols = [Columns.Id, Columns.Value, Columns.Feature]
    form: tp.Dict[str, bool] = {}

    def pick(available: tp.List[str]) -> tp.List[str]:
        form["flat"] = all(c in available for c in flat_cols)
        if form["flat"]:
            return flat_cols
        if not cats:
            raise ValueError(f"{what}: {_describe(source)} is not in the flat form {flat_cols}, so name its "
                             f"categorical columns (cat_features); its columns are {available}")
        return _picker(what, source, {"item": item_col, **{f"feature {c!r}": c for c in cats}}, {})(available)

    frame = _read_columns(source, what, pick)
    if form["flat"]:
        _check_no_missing(frame, Columns.Id, what)
        frame = frame[frame[Columns.Value].notna()]
        names = pd.unique(frame[Columns.Feature])
        unknown = [c for c in cats if c not in set(names)]
        if unknown:
            raise ValueError(f"{what}: categorical feature {unknown[0]!r} is not in the table's "
                             f"'{Columns.Feature}' column; its features are {sorted(map(str, names))}")
        flat = frame
    else:
        _check_no_missing(frame, item_col, what)
        parts = []
        for cat in cats:
            values = frame[[item_col, cat]].dropna(subset=[cat])
            if sep is not None and values[cat].map(lambda v: isinstance(v, str)).all():
                values = values.assign(**{cat: values[cat].str.split(sep, regex=False)}).explode(cat)
                values = values[values[cat].str.strip() != ""]
            parts.append(pd.DataFrame({Columns.Id: values[item_col].to_numpy(), Columns.Value: values[cat].to_numpy(),
                                       Columns.Feature: cat}))
        flat = pd.concat(parts, ignore_index=True)
    if len(flat) == 0:
        raise ValueError(f"{what}: {_describe(source)} has no feature values")
    return pd.DataFrame({c: flat[c].to_numpy() for c in flat_cols})


def read_ids(source: Source, col: str, what: str) -> np.ndarray:
    """A list of ids from a file or frame: the column ``col``, or the only column there is."""
    def pick(available: tp.List[str]) -> tp.List[str]:
        if col in available:
            return [col]
        if len(available) == 1:
            return available
        raise ValueError(f"{what}: column {col!r} not found in {_describe(source)}, which has several columns "
                         f"{available}")
    frame = _read_columns(source, what, pick)
    name = frame.columns[0]
    _check_no_missing(frame, name, what)
    if len(frame) == 0:
        raise ValueError(f"{what}: {_describe(source)} has no ids")
    return pd.unique(frame[name].to_numpy())
