"""ANN retrieval: the faiss index against exact search, its file, and recommend(retrieval="ann")
against the exact ranking (recall, filters, schema, the cache and its invalidation, errors)."""

import copy
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("faiss")

from seqrec import (  # noqa: E402
    Columns,
    Dataset,
    IdEmbeddingsItemNet,
    SASRecModel,
    ann,  # noqa: E402
)
from seqrec.ann import ItemIndex, attach_index, model_index  # noqa: E402


def _clustered(n: int, d: int, n_clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_clusters, d))
    return (centers[rng.integers(0, n_clusters, n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


def _exact_top(items: np.ndarray, queries: np.ndarray, k: int, similarity: str) -> np.ndarray:
    if similarity == "cosine":
        items = items / np.linalg.norm(items, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return np.argsort(-(queries @ items.T), axis=1)[:, :k]


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]))


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_index_recall_and_scores(similarity):
    items = _clustered(3000, 24, 40, seed=1)
    queries = _clustered(200, 24, 40, seed=2)
    exact = _exact_top(items, queries, 10, similarity)
    index = ItemIndex.build(items, similarity=similarity)
    scores, rows = index.search(queries, 10)
    assert rows.shape == scores.shape == (200, 10) and rows.dtype == np.int64
    assert _recall(rows, exact) >= 0.9
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # decreasing
    x, q = items, queries
    if similarity == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    np.testing.assert_allclose(scores, np.einsum("bd,bkd->bk", q, x[rows]), atol=1e-4)
    flat_rows = ItemIndex.build(items, similarity=similarity, kind="flat").search(queries, 10)[1]
    assert _recall(flat_rows, exact) > 0.999
    # more rows than items: padded with -1 / -inf
    small_scores, small_rows = ItemIndex.build(items[:5], similarity=similarity).search(queries[:2], 8)
    assert (small_rows[:, 5:] == -1).all() and np.isneginf(small_scores[:, 5:]).all()
    assert sorted(small_rows[0, :5]) == list(range(5))


def test_index_save_load(tmp_path):
    items = _clustered(800, 16, 10, seed=3)
    queries = _clustered(50, 16, 10, seed=4)
    index = ItemIndex.build(items, similarity="cosine", hnsw_m=16, ef_search=40)
    index.save(tmp_path / "items.index")
    loaded = ItemIndex.load(tmp_path / "items.index")
    assert (loaded.similarity, loaded.kind, loaded.params, loaded.n_items, loaded.dim) == (
        "cosine", "hnsw", {"hnsw_m": 16, "ef_construction": 64, "ef_search": 40}, 800, 16)
    assert loaded.fingerprint == index.fingerprint == ann.fingerprint(items)
    for a, b in zip(index.search(queries, 10), loaded.search(queries, 10)):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "junk").write_bytes(b"not an index")
    with pytest.raises(ValueError, match="not a seqrec item index"):
        ItemIndex.load(tmp_path / "junk")
    with pytest.raises(ValueError, match="kind"):
        ItemIndex.build(items, kind="ivf")
    with pytest.raises(ValueError, match="ef_search"):
        index.ef_search = 0
    with pytest.raises(ValueError, match=r"queries must have shape \(B, 16\)"):
        index.search(queries[:, :8], 10)


# ----------------------------------------------------------------- through recommend
def _log(n_users: int = 250, n_items: int = 900, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 20, n_users)
    return pd.DataFrame({
        Columns.User: np.repeat(np.arange(n_users), lengths),
        Columns.Item: rng.integers(0, n_items, lengths.sum()),
        Columns.Weight: 1.0,
        Columns.Datetime: np.arange(lengths.sum()),
    })


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset.construct(_log())


def _fit(dataset: Dataset, **params) -> SASRecModel:
    return SASRecModel(n_factors=16, n_heads=2, n_blocks=1, session_max_len=10, epochs=1, batch_size=64,
                       random_state=0, item_net_block_types=(IdEmbeddingsItemNet,), **params).fit(dataset)


@pytest.fixture(scope="module")
def model(dataset: Dataset) -> SASRecModel:
    return _fit(dataset)


@pytest.fixture
def exact_users(monkeypatch):
    """The users (counted) that the ANN path hands to the exact ranking."""
    counted = []
    original = ann.rank_users

    def spy(net, tokens_fn, indptr, *args, **kwargs):
        counted.append(len(indptr) - 1)
        return original(net, tokens_fn, indptr, *args, **kwargs)

    monkeypatch.setattr(ann, "rank_users", spy)
    return counted


def _history(dataset: Dataset) -> pd.DataFrame:
    inter = dataset.interactions
    users = np.repeat(np.arange(len(inter.indptr) - 1), np.diff(inter.indptr))
    return pd.DataFrame({Columns.User: dataset.user_id_map.to_external(users),
                         Columns.Item: dataset.item_id_map.to_external(inter.items)})


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_recommend_ann_close_to_exact(dataset, model, similarity, exact_users):
    model = model if similarity == "dot" else _fit(dataset, similarity="cosine")
    users = dataset.user_id_map.external_ids
    exact = model.recommend(users, dataset, k=10, filter_viewed=True)
    approx = model.recommend(users, dataset, k=10, filter_viewed=True, retrieval="ann")
    assert sum(exact_users) < 0.2 * len(users)  # the index served most users
    # same schema, users in the same order, the same number of rows each, ranks 1..k
    assert list(approx.columns) == list(exact.columns)
    assert (approx.dtypes == exact.dtypes).all()
    np.testing.assert_array_equal(approx[Columns.User].unique(), exact[Columns.User].unique())
    np.testing.assert_array_equal(approx.groupby(Columns.User, sort=False).size(),
                                  exact.groupby(Columns.User, sort=False).size())
    np.testing.assert_array_equal(approx[Columns.Rank], exact[Columns.Rank])
    assert (approx.groupby(Columns.User, sort=False)[Columns.Score].diff().dropna() <= 1e-6).all()
    both = approx.merge(exact, on=[Columns.User, Columns.Item], suffixes=("_ann", "_exact"))
    assert len(both) / len(exact) >= 0.9  # recall@10 of ANN against exact
    np.testing.assert_allclose(both["score_ann"], both["score_exact"], atol=1e-4)
    viewed = approx.merge(_history(dataset), on=[Columns.User, Columns.Item])
    assert viewed.empty


def test_recommend_ann_whitelist_and_fallback(dataset, model, exact_users):
    users = dataset.user_id_map.external_ids[:80]
    rng = np.random.default_rng(5)
    catalog = model.item_id_map_.external_ids
    wide = rng.choice(catalog, size=len(catalog) // 2, replace=False)
    approx = model.recommend(users, dataset, k=10, filter_viewed=True, items_to_recommend=wide, retrieval="ann")
    exact = model.recommend(users, dataset, k=10, filter_viewed=True, items_to_recommend=wide)
    assert approx[Columns.Item].isin(wide).all()
    assert approx.merge(_history(dataset), on=[Columns.User, Columns.Item]).empty
    assert len(approx) == len(exact) == 800
    assert len(approx.merge(exact, on=[Columns.User, Columns.Item])) >= 0.9 * len(exact)
    # a whitelist of 12 items, most of them not found among the over-fetched neighbours: the users
    # left short are ranked exactly, so each user gets what the exact ranking gives
    exact_users.clear()
    narrow = rng.choice(catalog, size=12, replace=False)
    approx = model.recommend(users, dataset, k=10, filter_viewed=True, items_to_recommend=narrow, retrieval="ann")
    exact = model.recommend(users, dataset, k=10, filter_viewed=True, items_to_recommend=narrow)
    assert sum(exact_users) > 0
    assert approx[Columns.Item].isin(narrow).all()
    pd.testing.assert_frame_equal(approx[[Columns.User, Columns.Item, Columns.Rank]],
                                  exact[[Columns.User, Columns.Item, Columns.Rank]])


def test_index_cached_and_invalidated(dataset, tmp_path):
    model = _fit(dataset)
    users = dataset.user_id_map.external_ids[:20]
    first = model.recommend(users, dataset, k=5, filter_viewed=False, retrieval="ann")
    index = model._ann_index
    model.recommend(users, dataset, k=5, filter_viewed=False, retrieval="ann")
    assert model._ann_index is index  # built once
    assert not hasattr(copy.deepcopy(model), "_ann_index")  # copies and pickles leave it out
    custom = model_index(model, hnsw_m=8, ef_search=64)
    model.recommend(users, dataset, k=5, filter_viewed=False, retrieval="ann")
    assert model._ann_index is custom
    index.save(tmp_path / "model.index")
    attach_index(model, ItemIndex.load(tmp_path / "model.index"))
    again = model.recommend(users, dataset, k=5, filter_viewed=False, retrieval="ann")
    pd.testing.assert_frame_equal(first, again)
    # new weights: fit_partial rebuilds with the same parameters; a refit drops the index
    model_index(model, hnsw_m=8, ef_search=64)
    stale = model._ann_index
    model.fit_partial(dataset, max_epochs=1)
    with pytest.raises(ValueError, match="current item table"):
        attach_index(model, stale)
    model.recommend(users, dataset, k=5, filter_viewed=False, retrieval="ann")
    assert model._ann_index is not stale and model._ann_index.params == stale.params
    assert model._ann_index.fingerprint != stale.fingerprint
    model.fit(dataset)
    assert not hasattr(model, "_ann_index")


def test_retrieval_errors(dataset, model, monkeypatch):
    users = dataset.user_id_map.external_ids[:3]
    with pytest.raises(ValueError, match=r"retrieval must be one of \('exact', 'ann'\), got 'fast'"):
        model.recommend(users, dataset, k=5, filter_viewed=False, retrieval="fast")
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r"seqrec\[ann\]"):
        model.recommend(users, dataset, k=5, filter_viewed=False, retrieval="ann")
    with pytest.raises(ImportError, match=r"seqrec\[ann\]"):
        ItemIndex.build(np.ones((3, 2), np.float32))
    # exact retrieval needs no faiss
    assert len(model.recommend(users, dataset, k=5, filter_viewed=False)) == 15
