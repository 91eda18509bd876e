import numpy as np
import pytest

from seqrec.batching import last_windows, ranks_in_runs, take_rows


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
