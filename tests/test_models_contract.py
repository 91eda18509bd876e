"""Contract tests every transformer model must pass, for every loss."""

import numpy as np
import pandas as pd
import pytest

from seqrec import (BERT4RecModel, CatFeaturesItemNet, Columns, Dataset, HSTUModel, IdEmbeddingsItemNet,
                    NotFittedError, SASRecModel)

from conftest import expected_next

MODELS = [SASRecModel, BERT4RecModel, HSTUModel]
LOSSES = ["softmax", "BCE", "gBCE"]


def small_model(model_cls, loss="softmax", **overrides):
    params = dict(n_factors=32, n_heads=2, n_blocks=1, session_max_len=16, epochs=2, lr=0.01, batch_size=32,
                  dropout_rate=0.0, loss=loss, n_negatives=4, deterministic=True,
                  item_net_block_types=(IdEmbeddingsItemNet,))
    if model_cls is BERT4RecModel:
        params["mask_prob"] = 0.3
    params.update(overrides)
    return model_cls(**params)


@pytest.fixture(scope="module")
def fitted(cycle_dataset):
    """One quickly fitted model per class, shared by the output-contract tests."""
    return {cls: small_model(cls).fit(cycle_dataset) for cls in MODELS}


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model_cls", MODELS)
def test_learns_the_cycle(model_cls, loss, cycle_df, cycle_dataset):
    epochs = 30 if model_cls is BERT4RecModel else 15
    model = small_model(model_cls, loss, epochs=epochs).fit(cycle_dataset)
    expected = expected_next(cycle_df)
    reco = model.recommend(expected.index, cycle_dataset, k=1, filter_viewed=False)
    top1 = reco.set_index(Columns.User)[Columns.Item].reindex(expected.index)
    accuracy = (top1 == expected).mean()
    assert accuracy >= (0.85 if model_cls is BERT4RecModel else 0.95), accuracy


@pytest.mark.parametrize("model_cls", MODELS)
def test_second_fit_equals_fresh_fit(model_cls, cycle_df, cycle_dataset):
    other = Dataset.construct(cycle_df.iloc[: len(cycle_df) // 2])
    users = cycle_dataset.user_id_map.external_ids[:30]
    refit = small_model(model_cls).fit(other).fit(cycle_dataset)
    fresh = small_model(model_cls).fit(cycle_dataset)
    a = refit.recommend(users, cycle_dataset, k=5, filter_viewed=True)
    b = fresh.recommend(users, cycle_dataset, k=5, filter_viewed=True)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("model_cls", MODELS)
def test_deterministic_fits_are_identical_and_seeds_matter(model_cls, cycle_dataset):
    users = cycle_dataset.user_id_map.external_ids[:30]
    a = small_model(model_cls, random_state=7).fit(cycle_dataset).recommend(users, cycle_dataset, 5, True)
    b = small_model(model_cls, random_state=7).fit(cycle_dataset).recommend(users, cycle_dataset, 5, True)
    c = small_model(model_cls, random_state=8).fit(cycle_dataset).recommend(users, cycle_dataset, 5, True)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a[Columns.Score], c[Columns.Score])


@pytest.mark.parametrize("model_cls", MODELS)
def test_output_schema_sorting_and_k(model_cls, fitted, cycle_dataset):
    model = fitted[model_cls]
    users = list(cycle_dataset.user_id_map.external_ids[[5, 2, 9]])
    reco = model.recommend(users, cycle_dataset, k=4, filter_viewed=False)
    assert list(reco.columns) == [Columns.User, Columns.Item, Columns.Score, Columns.Rank]
    assert reco[Columns.User].tolist() == [u for u in users for _ in range(4)]
    for _, group in reco.groupby(Columns.User, sort=False):
        assert group[Columns.Rank].tolist() == [1, 2, 3, 4]
        assert (np.diff(group[Columns.Score].to_numpy()) <= 0).all()
    assert set(reco[Columns.Item]) <= set(cycle_dataset.item_id_map.external_ids)
    no_rank = model.recommend(users, cycle_dataset, k=4, filter_viewed=False, add_rank_col=False)
    assert list(no_rank.columns) == [Columns.User, Columns.Item, Columns.Score]
    # k larger than the catalog: every item once
    everything = model.recommend(users[:1], cycle_dataset, k=100, filter_viewed=False)
    assert len(everything) == cycle_dataset.n_items and everything[Columns.Item].is_unique


@pytest.mark.parametrize("model_cls", MODELS)
def test_scores_match_network_scores(model_cls, fitted, cycle_dataset):
    """recommend's batched top-k equals a plain argsort of the full score vector."""
    import torch

    model = fitted[model_cls]
    users = cycle_dataset.user_id_map.external_ids[:20]
    reco = model.recommend(users, cycle_dataset, k=5, filter_viewed=False)
    inter = cycle_dataset.interactions
    rows = cycle_dataset.user_id_map.to_internal(users)
    from seqrec.batching import take_rows

    indptr, items = take_rows(inter.indptr, inter.items, rows)
    tokens = torch.as_tensor(model._inference_tokens(indptr, items))
    extras = ()
    if model._uses_times():  # HSTU: the history's times, asked at the last interaction (recommend's default)
        _, positions = take_rows(inter.indptr, np.arange(len(inter)), rows)
        times = model._sequence_times(inter, positions)
        extras = tuple(map(torch.as_tensor, model._inference_extras(indptr, times, times[indptr[1:] - 1])))
    with torch.no_grad():
        table = model.net_.item_table()
        h = model.net_.last_vectors(tokens, table, *extras)
        if model._similarity() == "cosine":
            h, table = torch.nn.functional.normalize(h, dim=-1), torch.nn.functional.normalize(table, dim=-1)
        scores = (h @ table.T).numpy()
    for b, user in enumerate(users):
        top = np.argsort(-scores[b], kind="stable")[:5]
        got = reco[reco[Columns.User] == user]
        assert got[Columns.Item].tolist() == cycle_dataset.item_id_map.to_external(top).tolist()
        np.testing.assert_allclose(got[Columns.Score], scores[b, top], rtol=1e-5)


@pytest.mark.parametrize("model_cls", MODELS)
def test_filter_viewed_and_whitelist(model_cls, fitted, cycle_df, cycle_dataset):
    model = fitted[model_cls]
    users = cycle_dataset.user_id_map.external_ids[:40]
    reco = model.recommend(users, cycle_dataset, k=5, filter_viewed=True)
    seen = set(map(tuple, cycle_df[[Columns.User, Columns.Item]].to_numpy()))
    assert not any((u, i) in seen for u, i in reco[[Columns.User, Columns.Item]].to_numpy())
    whitelist = ["i1", "i3", "i5", "unknown-item"]
    wl = model.recommend(users, cycle_dataset, k=3, filter_viewed=False, items_to_recommend=whitelist)
    assert set(wl[Columns.Item]) <= set(whitelist[:3])
    assert (wl.groupby(Columns.User).size() == 3).all()
    both = model.recommend(users, cycle_dataset, k=3, filter_viewed=True, items_to_recommend=whitelist)
    assert not any((u, i) in seen for u, i in both[[Columns.User, Columns.Item]].to_numpy())
    assert (both.groupby(Columns.User)[Columns.Rank].max() <= 3).all()


@pytest.mark.parametrize("model_cls", MODELS)
def test_unsupported_users(model_cls, fitted, cycle_dataset):
    model = fitted[model_cls]
    known = list(cycle_dataset.user_id_map.external_ids[:3])
    # a dataset where one user saw only items the model never saw, plus a user absent from it
    new = pd.DataFrame({Columns.User: ["new1", "new1", "cold"], Columns.Item: ["i1", "i2", "brand-new"],
                        Columns.Datetime: pd.date_range("2024-02-01", periods=3, freq="h")})
    new_ds = Dataset.construct(new)
    with pytest.raises(ValueError, match="cold"):
        model.recommend(["new1", "cold", "ghost"], new_ds, k=3, filter_viewed=False)
    with pytest.warns(UserWarning, match="2 user"):
        reco = model.recommend(["new1", "cold", "ghost"], new_ds, k=3, filter_viewed=False,
                               on_unsupported_targets="warn")
    assert set(reco[Columns.User]) == {"new1"}  # a user unseen at fit time is supported
    quiet = model.recommend(["new1", "cold"], new_ds, k=3, filter_viewed=True, on_unsupported_targets="ignore")
    assert set(quiet[Columns.User]) == {"new1"} and not set(quiet[Columns.Item]) & {"i1", "i2"}
    with pytest.raises(ValueError, match="on_unsupported_targets"):
        model.recommend(known, cycle_dataset, k=3, filter_viewed=False, on_unsupported_targets="drop")


@pytest.mark.parametrize("model_cls", MODELS)
def test_padding_and_batching_do_not_change_scores(model_cls, fitted, cycle_dataset):
    model = fitted[model_cls]
    users = cycle_dataset.user_id_map.external_ids[:25]
    one_by_one = model.set_params(recommend_batch_size=1).recommend(users, cycle_dataset, k=5, filter_viewed=False)
    batched = model.set_params(recommend_batch_size=256).recommend(users, cycle_dataset, k=5, filter_viewed=False)
    pd.testing.assert_frame_equal(one_by_one, batched, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model_cls", MODELS)
def test_parameter_validation(model_cls):
    with pytest.raises(ValueError, match="allowed"):
        model_cls(loss="hinge")
    with pytest.raises(ValueError, match="divisible"):
        model_cls(n_factors=10, n_heads=4)
    with pytest.raises(ValueError, match="n_blocks"):
        model_cls(n_blocks=0)
    with pytest.raises(ValueError, match="session_max_len"):
        model_cls(session_max_len=-1)
    with pytest.raises(ValueError, match="dropout_rate"):
        model_cls(dropout_rate=1.5)
    with pytest.raises(ValueError, match="item_net_block_types"):
        model_cls(item_net_block_types=())
    with pytest.raises(ValueError, match="Unknown parameter"):
        model_cls().set_params(n_factor=3)
    if model_cls is BERT4RecModel:
        for bad in (0.0, 1.0, -0.1):
            with pytest.raises(ValueError, match="mask_prob"):
                BERT4RecModel(mask_prob=bad)


@pytest.mark.parametrize("model_cls", MODELS)
def test_fit_checks(model_cls, cycle_dataset):
    model = small_model(model_cls)
    with pytest.raises(NotFittedError):
        model.recommend(["u1"], cycle_dataset, k=3, filter_viewed=False)
    one_item = Dataset.construct(pd.DataFrame({Columns.User: [1, 2, 2], Columns.Item: [7, 7, 7],
                                               Columns.Datetime: pd.date_range("2024-01-01", periods=3, freq="h")}))
    with pytest.raises(ValueError, match="at least 2"):
        model.fit(one_item)
    with pytest.raises(TypeError, match="Dataset"):
        model.fit(pd.DataFrame({Columns.User: [1], Columns.Item: [1]}))
    cats_only = small_model(model_cls, item_net_block_types=(CatFeaturesItemNet,))
    with pytest.raises(ValueError, match="categorical item features"):
        cats_only.fit(cycle_dataset)


@pytest.mark.parametrize("model_cls", MODELS)
def test_get_params_clone_gives_same_recommendations(model_cls, fitted, cycle_dataset):
    model = fitted[model_cls]
    clone = model_cls(**model.get_params()).fit(cycle_dataset)
    users = cycle_dataset.user_id_map.external_ids[:10]
    pd.testing.assert_frame_equal(model.recommend(users, cycle_dataset, 3, True),
                                  clone.recommend(users, cycle_dataset, 3, True))
    assert "n_factors=32" in repr(model)


@pytest.mark.parametrize("model_cls", MODELS)
@pytest.mark.parametrize("blocks", [(IdEmbeddingsItemNet,), (CatFeaturesItemNet,),
                                    (IdEmbeddingsItemNet, CatFeaturesItemNet)])
def test_item_blocks_with_features(model_cls, blocks, cycle_df):
    items = cycle_df[Columns.Item].unique()
    feats = pd.DataFrame({Columns.Id: np.r_[items, items],
                          Columns.Value: np.r_[[int(i[1:]) % 3 for i in items], [int(i[1:]) % 2 for i in items]],
                          Columns.Feature: ["mod3"] * len(items) + ["mod2"] * len(items)})
    ds = Dataset.construct(cycle_df, item_features_df=feats, cat_item_features=["mod3", "mod2"])
    model = small_model(model_cls, item_net_block_types=blocks, epochs=1).fit(ds)
    reco = model.recommend(ds.user_id_map.external_ids[:5], ds, k=3, filter_viewed=False)
    assert len(reco) == 15
    n_blocks = len(model.net_.item_net.blocks)
    assert n_blocks == len(blocks)
