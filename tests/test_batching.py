import numpy as np
import pytest

from seqrec.batching import last_windows, ranks_in_runs, take_rows, window_ends, windows


def _random_csr(rng, n_rows=50, max_len=12, n_values=30):
    lengths = rng.integers(0, max_len, n_rows)
    indptr = np.r_[0, np.cumsum(lengths)]
    return indptr, rng.integers(0, n_values, indptr[-1])


@pytest.mark.parametrize("seed", range(5))
def test_last_windows_equals_naive_loop(seed):
    rng = np.random.default_rng(seed)
    indptr, items = _random_csr(rng)
    rows = rng.integers(0, len(indptr) - 1, 40)
    width, offset = int(rng.integers(1, 10)), 2
    got = last_windows(indptr, items, rows, width, offset)
    for b, r in enumerate(rows):
        seq = list(items[indptr[r]:indptr[r + 1]][-width:] + offset)
        assert got[b].tolist() == seq + [0] * (width - len(seq))


@pytest.mark.parametrize("seed", range(5))
def test_windows_with_ends_equal_naive_slices(seed):
    rng = np.random.default_rng(seed)
    indptr, items = _random_csr(rng)
    rows = rng.integers(0, len(indptr) - 1, 40)
    starts = indptr[rows]
    ends = starts + rng.integers(0, 1 + indptr[rows + 1] - starts)  # anywhere inside the row
    width = int(rng.integers(1, 10))
    got = windows(items, starts, ends, width, offset=2, pad=0)
    for b in range(len(rows)):
        seq = list(items[max(starts[b], ends[b] - width):ends[b]] + 2)
        assert got[b].tolist() == seq + [0] * (width - len(seq))


@pytest.mark.parametrize("stride", [1, 2, 3, 7])
def test_all_windows_make_every_item_but_the_first_a_target_once(stride):
    # SASRec's use: windows of stride + 1 items, the first of each window is input only
    rng = np.random.default_rng(stride)
    indptr, items = _random_csr(rng, n_rows=60, max_len=25)
    users = np.flatnonzero(np.diff(indptr) >= 2)
    rows, ends = window_ends(indptr, users, stride)
    assert len(rows) == sum((indptr[u + 1] - indptr[u] - 2) // stride + 1 for u in users)
    targets = []
    for r, e in zip(rows, ends):
        lo = max(indptr[r], e - (stride + 1))
        assert e - lo >= 2  # every window has a target
        targets.extend(range(lo + 1, e))  # flat positions of the window's targets
    expected = [p for u in users for p in range(indptr[u] + 1, indptr[u + 1])]
    assert sorted(targets) == expected  # each non-first item exactly once


def test_window_ends_most_recent_first_and_short_rows_skipped():
    indptr = np.array([0, 1, 6, 8])  # lengths 1, 5, 2
    rows, ends = window_ends(indptr, np.arange(3), stride=2)
    assert rows.tolist() == [1, 1, 2] and ends.tolist() == [6, 4, 8]


@pytest.mark.parametrize("seed", range(5))
def test_take_rows_equals_naive_loop(seed):
    rng = np.random.default_rng(seed)
    indptr, items = _random_csr(rng)
    rows = rng.integers(0, len(indptr) - 1, 30)
    value_map = np.where(rng.random(30) < 0.3, -1, rng.integers(0, 100, 30))
    for vmap in (None, value_map):
        new_indptr, new_values = take_rows(indptr, items, rows, vmap)
        for b, r in enumerate(rows):
            seq = items[indptr[r]:indptr[r + 1]]
            if vmap is not None:
                seq = vmap[seq][vmap[seq] >= 0]
            assert new_values[new_indptr[b]:new_indptr[b + 1]].tolist() == seq.tolist()


def test_ranks_in_runs():
    assert ranks_in_runs(np.array([0, 0, 0, 2, 2, 5])).tolist() == [1, 2, 3, 1, 2, 1]
    assert ranks_in_runs(np.array([3, 1, 1, 3])).tolist() == [1, 1, 2, 1]
    assert ranks_in_runs(np.array([], dtype=np.int64)).tolist() == []
