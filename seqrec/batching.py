"""Vectorised batch building from the CSR sequences: array indexing, no per-user Python."""

from __future__ import annotations

import typing as tp

import numpy as np


def last_windows(indptr: np.ndarray, items: np.ndarray, rows: np.ndarray, width: int, offset: int,
                 pad: int = 0) -> np.ndarray:
    """Right-padded tokens ``(B, width)`` holding the last ``width`` items of each row.

    Item ``i`` becomes token ``i + offset``; positions after a row's items hold ``pad``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    ends = indptr[rows + 1]
    lengths = np.minimum(ends - indptr[rows], width)  # (B,)
    cols = np.arange(width)
    valid = cols[None, :] < lengths[:, None]  # (B, width)
    idx = np.where(valid, (ends - lengths)[:, None] + cols[None, :], 0)
    if len(items) == 0:
        return np.full((len(rows), width), pad, dtype=np.int64)
    return np.where(valid, items[idx] + offset, pad).astype(np.int64, copy=False)


def take_rows(indptr: np.ndarray, values: np.ndarray, rows: np.ndarray,
              value_map: tp.Optional[np.ndarray] = None) -> tp.Tuple[np.ndarray, np.ndarray]:
    """CSR ``(indptr, values)`` of the chosen ``rows``, in their order.

    With ``value_map``, each value ``v`` becomes ``value_map[v]`` and entries mapped to a negative
    number are dropped (e.g. items the model does not know).
    """
    rows = np.asarray(rows, dtype=np.int64)
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts  # (B,)
    total = int(lengths.sum())
    new_indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_indptr[1:])
    # flat position of every entry: start of its row + rank inside the row
    row_of = np.repeat(np.arange(len(rows)), lengths)
    flat = starts[row_of] + (np.arange(total) - new_indptr[:-1][row_of])
    out = values[flat]
    if value_map is None:
        return new_indptr, out
    out = value_map[out]
    keep = out >= 0
    kept_lengths = np.bincount(row_of[keep], minlength=len(rows))
    np.cumsum(kept_lengths, out=new_indptr[1:])
    return new_indptr, out[keep]


def ranks_in_runs(groups: np.ndarray) -> np.ndarray:
    """1-based position of each entry inside its run of equal consecutive values, e.g. the rank
    of each recommendation when rows come grouped by user in score order."""
    n = len(groups)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[True, groups[1:] != groups[:-1]]
    return np.arange(n) - np.maximum.accumulate(np.where(starts, np.arange(n), 0)) + 1
