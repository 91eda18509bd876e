"""Dense content item vectors (DenseFeaturesItemNet): fixed features through a learned projection,
cold items embedded from their content, and the network init leaving fixed data alone."""

import typing as tp
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import seqrec
from seqrec import (CatFeaturesItemNet, Columns, Dataset, DenseFeaturesItemNet, IdEmbeddingsItemNet, ItemNetBase,
                    SASRecModel, model_from_config)
from seqrec.nn.item_net import SumItemNet
from seqrec.nn.transformer import TransformerNet

from conftest import N_CYCLE_ITEMS

N_DIM = 6


def _content(seed: int = 0) -> pd.DataFrame:
    """Pretrained-style vectors (one column per dimension) for the cycle items, and a cold item
    "cold" (features only) whose content is that of the most frequent item."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(N_CYCLE_ITEMS, N_DIM)).astype(np.float32)
    df = pd.DataFrame(vectors, columns=[f"emb_{j}" for j in range(N_DIM)])
    df.insert(0, Columns.Id, [f"i{i}" for i in range(N_CYCLE_ITEMS)])
    return df


@pytest.fixture(scope="module")
def popular(cycle_df) -> str:
    return cycle_df[Columns.Item].value_counts().index[0]


@pytest.fixture(scope="module")
def content_df(popular) -> pd.DataFrame:
    df = _content()
    cold = df[df[Columns.Id] == popular].assign(**{Columns.Id: "cold"})
    return pd.concat([df, cold], ignore_index=True)


@pytest.fixture(scope="module")
def content_dataset(cycle_df, content_df) -> Dataset:
    return Dataset.construct(cycle_df, item_features_df=content_df, make_dense_item_features=True)


def _model(blocks, **kw):
    params = dict(n_factors=16, n_heads=2, n_blocks=1, session_max_len=10, epochs=3, lr=0.01, batch_size=32,
                  dropout_rate=0.0, random_state=0, recommend_torch_device="cpu", item_net_block_types=blocks)
    params.update(kw)
    return SASRecModel(**params)


def _dense_block(model) -> DenseFeaturesItemNet:
    return [b for b in model.net_.item_net.blocks if isinstance(b, DenseFeaturesItemNet)][0]


def test_features_are_a_fixed_buffer_that_fit_keeps_exactly(content_df, content_dataset):
    before = content_df.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "numeric features are not used" warning: they are used
        model = _model((IdEmbeddingsItemNet, DenseFeaturesItemNet)).fit(content_dataset)
    pd.testing.assert_frame_equal(content_df, before)  # the caller's table is untouched
    block = _dense_block(model)
    assert "features" in dict(block.named_buffers()) and "features" not in dict(block.named_parameters())
    # the catalog's rows, in the model's item order, bit for bit after init and training
    expected = content_df.set_index(Columns.Id).loc[model.item_id_map_.external_ids].to_numpy(np.float32)
    assert torch.equal(block.features, torch.tensor(expected))
    # the projection is what trains: the block's table is features @ W^T
    torch.testing.assert_close(block(), block.features @ block.proj.weight.T)
    fresh = DenseFeaturesItemNet.from_dataset(content_dataset, 16)
    assert not torch.allclose(block.proj.weight, fresh.proj.weight)


class PretrainedFrozen(ItemNetBase):
    """A block holding fixed vectors as a frozen parameter (fixed data of another kind)."""

    def __init__(self, n_items: int, n_factors: int) -> None:
        super().__init__()
        self.n_items = n_items
        gen = torch.Generator().manual_seed(1)
        self.vectors = nn.Parameter(torch.randn(n_items, n_factors, generator=gen), requires_grad=False)

    @classmethod
    def from_dataset(cls, dataset, n_factors):
        return cls(dataset.n_items, n_factors)

    def get_spec(self) -> tp.Dict[str, tp.Any]:
        return {"n_items": self.n_items}

    def forward(self) -> torch.Tensor:
        return self.vectors


class SelfInitialised(ItemNetBase):
    """A block that initialises itself: every weight 0.5 (the network's Xavier init would not)."""

    initialises_itself = True

    def __init__(self, n_items: int, n_factors: int) -> None:
        super().__init__()
        self.n_items = n_items
        self.embedding = nn.Embedding(n_items, n_factors)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.constant_(self.embedding.weight, 0.5)

    @classmethod
    def from_dataset(cls, dataset, n_factors):
        return cls(dataset.n_items, n_factors)

    def forward(self) -> torch.Tensor:
        return self.embedding.weight


def test_network_init_leaves_frozen_and_self_initialised_blocks_alone(cycle_dataset):
    frozen = PretrainedFrozen(N_CYCLE_ITEMS, 16)
    pretrained = frozen.vectors.detach().clone()
    own = SelfInitialised(N_CYCLE_ITEMS, 16)
    ids = IdEmbeddingsItemNet(N_CYCLE_ITEMS, 16)
    nn.init.constant_(ids.embedding.weight, 0.5)  # an ordinary block: the network re-initialises it
    net = TransformerNet(SumItemNet([frozen, own, ids]), n_factors=16, n_blocks=1, n_heads=2, dropout=0.0,
                         max_len=10)
    assert torch.equal(frozen.vectors, pretrained)
    assert torch.equal(own.embedding.weight, torch.full((N_CYCLE_ITEMS, 16), 0.5))
    assert not torch.equal(ids.embedding.weight, torch.full((N_CYCLE_ITEMS, 16), 0.5))
    net.reset_parameters()  # again: same rules
    assert torch.equal(frozen.vectors, pretrained)
    assert torch.equal(own.embedding.weight, torch.full((N_CYCLE_ITEMS, 16), 0.5))
    # through fit: the frozen vectors survive init and training exactly
    model = _model((IdEmbeddingsItemNet, PretrainedFrozen), epochs=1).fit(cycle_dataset)
    assert torch.equal(model.net_.item_net.blocks[1].vectors, pretrained)


def test_a_cold_item_with_a_popular_items_content_scores_like_it(content_dataset, popular):
    """Content only: the cold item's vector is the popular item's, so are its scores."""
    model = _model((DenseFeaturesItemNet,), epochs=5).fit(content_dataset)
    assert "cold" not in set(model.item_id_map_.external_ids)
    k = N_CYCLE_ITEMS + 1  # every item, the cold one included
    reco = model.recommend_to_items(["cold", popular], content_dataset, k=k, filter_itself=False)
    by_target = {t: g.set_index(Columns.Item)[Columns.Score] for t, g in reco.groupby(Columns.TargetItem)}
    assert len(by_target["cold"]) == k and "cold" in by_target[popular].index  # a target and a candidate
    items = by_target[popular].index
    np.testing.assert_allclose(by_target["cold"][items].to_numpy(), by_target[popular][items].to_numpy(),
                               rtol=1e-5, atol=1e-6)
    # as candidate for the popular item, it scores as the item itself
    assert by_target[popular]["cold"] == pytest.approx(by_target[popular][popular], rel=1e-5)


def test_with_ids_the_cold_vector_is_the_content_part(content_dataset, popular):
    model = _model((IdEmbeddingsItemNet, DenseFeaturesItemNet)).fit(content_dataset)
    block = _dense_block(model)
    cold_row = content_dataset.item_id_map.to_internal(["cold"])
    vectors, ok = model.net_.item_net.cold_vectors(content_dataset, cold_row)
    assert ok.tolist() == [True]
    pop = model.item_id_map_.to_internal([popular])[0]
    torch.testing.assert_close(vectors[0], block()[pop], rtol=0, atol=1e-6)
    # the item-to-item score of the pair is the dot product of those vectors
    table = model.net_.item_table().detach()
    reco = model.recommend_to_items([popular], content_dataset, k=N_CYCLE_ITEMS + 1)
    got = reco.loc[reco[Columns.Item] == "cold", Columns.Score].item()
    assert got == pytest.approx(float(table[pop] @ vectors[0].detach()), rel=1e-5)


def test_items_without_content_are_not_embedded(cycle_df):
    """An item absent from the content table (a row of zeros) is not a cold item this block embeds."""
    content = _content().iloc[1:]  # no row for i0
    ds = Dataset.construct(cycle_df, item_features_df=content, make_dense_item_features=True)
    block = DenseFeaturesItemNet.from_dataset(ds, 8)
    _, ok = block.cold_vectors(ds, ds.item_id_map.to_internal(["i0", "i1"]))
    assert ok.tolist() == [False, True]


def test_save_load_and_config_round_trips(content_dataset, popular, tmp_path):
    model = _model((IdEmbeddingsItemNet, DenseFeaturesItemNet)).fit(content_dataset)
    config = model.get_config(simple_types=True)
    assert config["item_net_block_types"] == ["seqrec.nn.item_net.IdEmbeddingsItemNet",
                                              "seqrec.nn.item_net.DenseFeaturesItemNet"]
    rebuilt = model_from_config(config)
    assert rebuilt.get_params() == model.get_params()
    model.save(tmp_path / "m")
    loaded = seqrec.load_model(tmp_path / "m")
    assert torch.equal(_dense_block(loaded).features, _dense_block(model).features)
    users = content_dataset.user_id_map.external_ids[:10]
    pd.testing.assert_frame_equal(model.recommend(users, content_dataset, k=3, filter_viewed=False),
                                  loaded.recommend(users, content_dataset, k=3, filter_viewed=False))
    targets = ["cold", popular]
    pd.testing.assert_frame_equal(model.recommend_to_items(targets, content_dataset, k=5),
                                  loaded.recommend_to_items(targets, content_dataset, k=5))
    # the refit of the rebuilt config trains the same model
    pd.testing.assert_frame_equal(model.recommend(users, content_dataset, k=3, filter_viewed=False),
                                  rebuilt.fit(content_dataset).recommend(users, content_dataset, k=3,
                                                                         filter_viewed=False))


def test_cold_items_need_the_trained_columns(content_dataset, cycle_df):
    model = _model((IdEmbeddingsItemNet, DenseFeaturesItemNet), epochs=1).fit(content_dataset)
    other = _content().rename(columns={"emb_0": "other"}).assign(**{Columns.Id: lambda d: d[Columns.Id] + "x"})
    ds = Dataset.construct(cycle_df, item_features_df=other, make_dense_item_features=True)
    with pytest.raises(ValueError, match=r"lack the column\(s\) \['emb_0'\]"):
        model.recommend_to_items(["i0x"], ds, k=3)


def test_bad_dense_features_name_the_column(cycle_df):
    bad_type = _content().assign(title=[f"t{i}" for i in range(N_CYCLE_ITEMS)])
    with pytest.raises(ValueError, match="dense features must be numeric: column 'title'"):
        Dataset.construct(cycle_df, item_features_df=bad_type, make_dense_item_features=True)
    with_nan = _content()
    with_nan.loc[3, "emb_2"] = np.nan
    with pytest.raises(ValueError, match="column 'emb_2' has 1 missing or non-finite value.*index 3"):
        Dataset.construct(cycle_df, item_features_df=with_nan, make_dense_item_features=True)


def test_the_block_needs_dense_features(cycle_dataset, cycle_df):
    with pytest.raises(ValueError, match="DenseFeaturesItemNet is the only item block.*make_dense_item_features"):
        _model((DenseFeaturesItemNet,), epochs=1).fit(cycle_dataset)
    flat = pd.DataFrame({Columns.Id: ["i1", "i2"], Columns.Value: ["g", "h"], Columns.Feature: ["genre"] * 2})
    ds = Dataset.construct(cycle_df, item_features_df=flat, cat_item_features=["genre"])
    with pytest.warns(UserWarning, match="Ignoring DenseFeaturesItemNet"):
        _model((CatFeaturesItemNet, DenseFeaturesItemNet), epochs=1).fit(ds)


def test_recommend_to_users_ranks_cold_items_named_in_items_to_recommend(content_dataset, popular):
    """A cold item named in items_to_recommend is scored by its content vector: with content only,
    exactly as the popular item whose content it has, for every user."""
    model = _model((DenseFeaturesItemNet,), epochs=5).fit(content_dataset)
    users = content_dataset.user_id_map.external_ids[:20]
    everything = list(content_dataset.item_id_map.external_ids)  # the model's items and "cold"
    assert "cold" in everything and "cold" not in set(model.item_id_map_.external_ids)
    reco = model.recommend(users, content_dataset, k=len(everything), filter_viewed=False,
                           items_to_recommend=everything)
    scores = reco.pivot(index=Columns.User, columns=Columns.Item, values=Columns.Score)
    assert scores.notna().all().all() and "cold" in scores.columns
    np.testing.assert_allclose(scores["cold"], scores[popular], rtol=1e-5, atol=1e-6)
    # the known items' scores are those of the plain call (the cold item only adds a column)
    plain = model.recommend(users, content_dataset, k=N_CYCLE_ITEMS, filter_viewed=False)
    plain = plain.pivot(index=Columns.User, columns=Columns.Item, values=Columns.Score)
    np.testing.assert_allclose(scores[plain.columns].loc[plain.index], plain, rtol=1e-5, atol=1e-6)
    # without items_to_recommend the candidates are the model's items, as in RecTools
    assert "cold" not in set(model.recommend(users, content_dataset, k=N_CYCLE_ITEMS + 1,
                                             filter_viewed=False)[Columns.Item])
    # only the cold item asked for: every user gets it, ranked first
    only = model.recommend(users, content_dataset, k=3, filter_viewed=True, items_to_recommend=["cold"])
    assert only[Columns.Item].eq("cold").all() and len(only) == len(users) and only[Columns.Rank].eq(1).all()


def test_filter_viewed_removes_a_cold_item_the_user_has_seen(cycle_df, content_df, popular):
    """A user's interaction with an item the model never trained on (in the recommend dataset only)
    still removes that item when it is a cold candidate."""
    train_ds = Dataset.construct(cycle_df, item_features_df=content_df, make_dense_item_features=True)
    model = _model((DenseFeaturesItemNet,), epochs=2).fit(train_ds)
    user = cycle_df[Columns.User].iloc[0]
    later = pd.DataFrame({Columns.User: [user], Columns.Item: ["cold"], Columns.Weight: [1.0],
                          Columns.Datetime: [cycle_df[Columns.Datetime].max() + pd.Timedelta(days=1)]})
    ds = Dataset.construct(pd.concat([cycle_df, later], ignore_index=True), item_features_df=content_df,
                           make_dense_item_features=True)
    others = [u for u in ds.user_id_map.external_ids[:5] if u != user]
    reco = model.recommend([user] + others, ds, k=3, filter_viewed=True, items_to_recommend=["cold", popular])
    got = reco.groupby(Columns.User)[Columns.Item].apply(set)
    assert "cold" not in got.get(user, set())
    assert all("cold" in got[u] for u in others)
    with pytest.raises(ValueError, match="retrieval='exact'"):
        model.recommend(others, ds, k=3, filter_viewed=False, items_to_recommend=["cold"], retrieval="ann")


def test_ids_only_models_ignore_cold_items_in_items_to_recommend(cycle_dataset, content_dataset):
    model = _model((IdEmbeddingsItemNet,), epochs=1).fit(cycle_dataset)
    users = content_dataset.user_id_map.external_ids[:5]
    reco = model.recommend(users, content_dataset, k=3, filter_viewed=False,
                           items_to_recommend=["cold", "i1", "i2", "i3"])
    assert set(reco[Columns.Item]) <= {"i1", "i2", "i3"} and len(reco) == 15
    with pytest.warns(UserWarning, match="none of the 1 item"):
        empty = model.recommend(users, content_dataset, k=3, filter_viewed=False, items_to_recommend=["cold"])
    assert empty.empty
