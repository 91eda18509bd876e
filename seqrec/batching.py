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
    return windows(items, indptr[rows], indptr[rows + 1], width, offset, pad)


def windows(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int, offset: int,
            pad: int = 0) -> np.ndarray:
    """Right-padded tokens ``(B, width)``: window ``b`` holds ``items[max(starts[b], ends[b] - width):ends[b]]``.

    Item ``i`` becomes token ``i + offset``; positions after a window's items hold ``pad``.
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    lengths = np.minimum(ends - starts, width)  # (B,)
    cols = np.arange(width)
    valid = cols[None, :] < lengths[:, None]  # (B, width)
    if len(items) == 0:
        return np.full((len(ends), width), pad, dtype=np.int64)
    idx = np.where(valid, (ends - lengths)[:, None] + cols[None, :], 0)
    return np.where(valid, items[idx] + offset, pad).astype(np.int64, copy=False)


def window_ends(indptr: np.ndarray, rows: np.ndarray, stride: int, min_items: int = 2
                ) -> tp.Tuple[np.ndarray, np.ndarray]:
    """Rows and end offsets of windows that step back from each row's end by ``stride`` items.

    Row ``r`` with ``n`` items gets ends ``indptr[r + 1] - j * stride`` for every ``j`` whose window
    still holds at least ``min_items`` items: the most recent window first. With ``stride`` equal
    to the number of targets a window trains on, every item is a target in exactly one window.
    Returns ``(rows_of_windows, ends)``, both ``(n_windows,)``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    lengths = indptr[rows + 1] - indptr[rows]
    counts = np.where(lengths >= min_items, (lengths - min_items) // stride + 1, 0)  # windows per row
    row_of = np.repeat(rows, counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    j = np.arange(int(counts.sum())) - first  # 0 for the most recent window of each row
    return row_of, indptr[row_of + 1] - j * stride


def slice_positions(starts: np.ndarray, lengths: np.ndarray) -> tp.Tuple[np.ndarray, np.ndarray]:
    """CSR of the flat positions ``starts[i], ..., starts[i] + lengths[i] - 1`` of each slice ``i``:
    ``(indptr (n + 1,), positions (lengths.sum(),))``."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    # start of its slice + rank inside the slice
    positions = np.repeat(starts, lengths) + (np.arange(int(indptr[-1])) - np.repeat(indptr[:-1], lengths))
    return indptr, positions


def keep_entries(indptr: np.ndarray, values: np.ndarray, keep: np.ndarray) -> tp.Tuple[np.ndarray, np.ndarray]:
    """The CSR ``(indptr, values)`` with only the entries where ``keep`` is True (rows keep their order)."""
    n_rows = len(indptr) - 1
    row_of = np.repeat(np.arange(n_rows), np.diff(indptr))
    new_indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_of[keep], minlength=n_rows), out=new_indptr[1:])
    return new_indptr, values[keep]


def take_rows(indptr: np.ndarray, values: np.ndarray, rows: np.ndarray,
              value_map: tp.Optional[np.ndarray] = None) -> tp.Tuple[np.ndarray, np.ndarray]:
    """CSR ``(indptr, values)`` of the chosen ``rows``, in their order.

    With ``value_map``, each value ``v`` becomes ``value_map[v]`` and entries mapped to a negative
    number are dropped (e.g. items the model does not know).
    """
    rows = np.asarray(rows, dtype=np.int64)
    new_indptr, positions = slice_positions(indptr[rows], indptr[rows + 1] - indptr[rows])
    out = values[positions]
    if value_map is None:
        return new_indptr, out
    out = value_map[out]
    return keep_entries(new_indptr, out, out >= 0)


def ranks_in_runs(groups: np.ndarray) -> np.ndarray:
    """1-based position of each entry inside its run of equal consecutive values, e.g. the rank
    of each recommendation when rows come grouped by user in score order."""
    n = len(groups)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[True, groups[1:] != groups[:-1]]
    return np.arange(n) - np.maximum.accumulate(np.where(starts, np.arange(n), 0)) + 1


def history_times(indptr: np.ndarray, times: np.ndarray, query_times: np.ndarray, width: int) -> np.ndarray:
    """Times ``(B, width + 1)`` of the last ``width`` entries of each row, right-padded with 0, with the
    row's ``query_times`` entry right after its last one: the time layout of HSTU's inputs."""
    rows = np.arange(len(indptr) - 1)
    out = np.zeros((len(rows), width + 1), dtype=np.int64)
    out[:, :width] = last_windows(indptr, times, rows, width, 0, 0)
    out[rows, np.minimum(np.diff(indptr), width)] = query_times
    return out
