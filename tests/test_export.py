"""ONNX export of the encoder: onnxruntime reproduces recommend (top-10 and scores) from one file
at several batch sizes; the tokens, files, metadata and errors."""

import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from seqrec import (  # noqa: E402
    BERT4RecModel,
    Columns,
    Dataset,
    IdEmbeddingsItemNet,
    NotFittedError,
    SASRecModel,
    SASRecTransformerLayers,
)
from seqrec.export import OnnxEncoder, encode_histories, export_onnx  # noqa: E402
from seqrec.nn.transformer import MASK, N_SPECIAL, PAD  # noqa: E402

L = 8


def _random_log(n_users: int = 60, n_items: int = 50, n_rows: int = 900, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        Columns.User: rng.integers(0, n_users, n_rows),
        Columns.Item: [f"item{i}" for i in rng.integers(0, n_items, n_rows)],  # string ids
        Columns.Weight: 1.0,
        Columns.Datetime: np.arange(n_rows),
    })


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    return _random_log()


@pytest.fixture(scope="module")
def dataset(log: pd.DataFrame) -> Dataset:
    return Dataset.construct(log)


@pytest.fixture(scope="module")
def dataset_with_features(log: pd.DataFrame) -> Dataset:
    items = log[Columns.Item].unique()
    features = pd.DataFrame({"id": items, "value": [f"g{int(i[4:]) % 4}" for i in items], "feature": "genre"})
    return Dataset.construct(log, item_features_df=features, cat_item_features=["genre"])


def _fit(cls, dataset: Dataset, **params):
    return cls(n_factors=16, n_heads=2, n_blocks=1, session_max_len=L, epochs=1, batch_size=32, random_state=0,
               **params).fit(dataset)


IDS_ONLY = {"item_net_block_types": (IdEmbeddingsItemNet,)}
CASES = {
    "sasrec": (SASRecModel, IDS_ONLY),
    "bert4rec-features": (BERT4RecModel, {}),
    "sasrec-cosine-original-layers": (SASRecModel, dict(IDS_ONLY, similarity="cosine",
                                                        transformer_layers_type=SASRecTransformerLayers)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_onnxruntime_reproduces_recommend(case, dataset, dataset_with_features, tmp_path):
    cls, params = CASES[case]
    data = dataset_with_features if "features" in case else dataset
    model = _fit(cls, data, **params)
    files = model.export_onnx(tmp_path / "model.onnx")
    assert files.items_path == str(tmp_path / "model.onnx") + ".items.npz"
    encoder = OnnxEncoder(files.model_path)
    meta = encoder.metadata
    similarity = params.get("similarity", "dot")
    assert (meta["model"], meta["similarity"], meta["session_max_len"]) == (cls.__name__, similarity, str(L))
    assert meta["mask_appended"] == ("true" if cls is BERT4RecModel else "false")
    assert (int(meta["pad_token"]), int(meta["mask_token"]), int(meta["item_token_offset"])) == (PAD, MASK, N_SPECIAL)
    assert meta["items_file"] == "model.onnx.items.npz"
    if similarity == "cosine":  # unit vectors on both sides: the dot product is the cosine
        np.testing.assert_allclose(np.linalg.norm(encoder.item_vectors, axis=1), 1.0, atol=1e-5)
    # one file, dynamic batch axis
    assert isinstance(encoder.session.get_inputs()[0].shape[0], str)
    assert encoder.session.get_inputs()[0].shape[1] == L
    np.testing.assert_array_equal(encoder.item_ids, model.item_id_map_.external_ids)
    assert encoder.item_vectors.shape == (model.net_.n_items, 16)
    users_all = dataset.user_id_map.external_ids
    for batch in (1, 7):
        users = users_all[3:3 + batch]
        for filter_viewed in (False, True):
            reco = model.recommend(users, data, k=10, filter_viewed=filter_viewed)
            vectors = encoder.user_vectors(encode_histories(model, data, users))  # (B, d)
            if similarity == "cosine":
                np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
            scores = vectors @ encoder.item_vectors.T  # (B, n_items)
            if filter_viewed:
                history = data.interactions
                for b, u in enumerate(users):
                    row = data.user_id_map.to_internal(np.array([u]))[0]
                    seen = history.items[history.indptr[row]:history.indptr[row + 1]]
                    rows = model.item_id_map_.to_internal(data.item_id_map.to_external(seen), strict=False)
                    scores[b, rows[rows >= 0]] = -np.inf
            top = np.argsort(-scores, axis=1, kind="stable")[:, :10]  # (B, 10)
            expected_ids = reco[Columns.Item].to_numpy().reshape(batch, 10)
            np.testing.assert_array_equal(encoder.item_ids[top], expected_ids)
            np.testing.assert_allclose(np.take_along_axis(scores, top, axis=1),
                                       reco[Columns.Score].to_numpy().reshape(batch, 10), atol=1e-4, rtol=0)


def test_encode_histories_layout(dataset):
    users = dataset.user_id_map.external_ids[:6]
    rows = dataset.user_id_map.to_internal(users)
    lengths = np.diff(dataset.interactions.indptr)[rows]
    sasrec = _fit(SASRecModel, dataset, **IDS_ONLY)
    tokens = encode_histories(sasrec, dataset, users)
    assert tokens.shape == (6, L) and tokens.dtype == np.int64
    # the last L items, oldest first: the newest item is the last real token
    for b, row in enumerate(rows):
        hist = dataset.interactions.items[dataset.interactions.indptr[row]:dataset.interactions.indptr[row + 1]]
        model_items = sasrec.item_id_map_.to_internal(dataset.item_id_map.to_external(hist[-L:]))
        n = min(len(hist), L)
        np.testing.assert_array_equal(tokens[b, :n], model_items + N_SPECIAL)
        assert (tokens[b, n:] == PAD).all()
    bert = _fit(BERT4RecModel, dataset, **IDS_ONLY)
    tokens = encode_histories(bert, dataset, users)
    n = np.minimum(lengths, L - 1)
    assert (tokens[np.arange(6), n] == MASK).all()
    assert ((tokens == MASK).sum(axis=1) == 1).all()


def test_errors(dataset, tmp_path, monkeypatch):
    with pytest.raises(NotFittedError):
        SASRecModel().export_onnx(tmp_path / "x.onnx")
    model = _fit(SASRecModel, dataset, **IDS_ONLY)
    with pytest.raises(ValueError, match="users.*no interactions.*'nobody'"):
        encode_histories(model, dataset, [dataset.user_id_map.external_ids[0], "nobody"])
    with pytest.raises(TypeError, match="path"):
        export_onnx(model, 123)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"seqrec\[onnx\]"):
        model.export_onnx(tmp_path / "x.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"seqrec\[onnx\]"):
        OnnxEncoder(tmp_path / "x.onnx")


def test_time_aware_hstu_is_refused_by_export_and_ann(tmp_path):
    """HSTU with time attention reads request times, which neither the ONNX graph nor the ANN path
    carries: both refuse it clearly instead of scoring without times."""
    from seqrec import Dataset, HSTUModel
    from conftest import make_cycle_interactions

    df = make_cycle_interactions(n_users=30)
    ds = Dataset.construct(df)
    model = HSTUModel(n_factors=16, n_heads=1, n_blocks=1, session_max_len=8, epochs=1, deterministic=True,
                      item_net_block_types=(IdEmbeddingsItemNet,)).fit(ds)
    with pytest.raises(ValueError, match="relative time attention"):
        model.export_onnx(str(tmp_path / "hstu.onnx"))
    with pytest.raises(ValueError, match="retrieval='ann' is not available"):
        model.recommend(ds.user_id_map.external_ids[:3], ds, k=3, filter_viewed=True, retrieval="ann")
