"""HSTUModel: the STU attention against a plain computation, the time buckets, time flowing from the
dataset to the network (training, validation, recommend with and without context), causality,
padding invariance, the refusal without real times, round trips, and RecTools-style HSTU code."""

import io

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from seqrec import (Columns, Dataset, DistanceSimilarityModule, HSTUModel, IdEmbeddingsItemNet, PopularModel,
                    PreLNTransformerLayers, SASRecModel, STULayers, get_context, leave_one_out_mask, load_model,
                    model_from_config)
from seqrec.batching import history_times
from seqrec.nn.hstu import HSTUNet, pointwise_attention, time_buckets
from seqrec.nn.item_net import SumItemNet
from seqrec.nn.transformer import N_SPECIAL, PAD

from conftest import expected_next

HOUR = 3600


def small_hstu(**overrides):
    params = dict(n_factors=16, n_heads=2, n_blocks=2, session_max_len=20, epochs=3, lr=0.01, batch_size=32,
                  dropout_rate=0.0, deterministic=True, item_net_block_types=(IdEmbeddingsItemNet,))
    params.update(overrides)
    return HSTUModel(**params)


@pytest.fixture(scope="module")
def hstu(cycle_dataset):
    return small_hstu().fit(cycle_dataset)


@pytest.fixture(scope="module")
def hstu_no_time(cycle_dataset):
    return small_hstu(relative_time_attention=False).fit(cycle_dataset)


def _history(model, dataset, users):
    """Tokens (B, L) and times (B, L + 1) of users' histories asked at their last interaction (recommend's default)."""
    inter = dataset.interactions
    rows = dataset.user_id_map.to_internal(users)
    indptr = np.r_[0, np.cumsum(inter.lengths[rows])]
    pos = np.concatenate([np.arange(inter.indptr[r], inter.indptr[r + 1]) for r in rows])
    items = model._model_items_of(dataset)[inter.items[pos]]
    seconds = inter.times[pos] // 10**9
    times = history_times(indptr, seconds, seconds[indptr[1:] - 1], model.session_max_len)
    return torch.as_tensor(model._inference_tokens(indptr, items)), torch.as_tensor(times)


# ----------------------------------------------------------------- the attention and its inputs
def _reference_attention(q, k, v, pos_bias, time_weights, buckets, keys_ok, causal, scale):
    # plain (B, H, L, L) computation with autograd
    s = q @ k.transpose(-1, -2)
    if pos_bias is not None:
        s = s + pos_bias
    if time_weights is not None:
        s = s + time_weights[buckets.long()].unsqueeze(1)
    L = q.shape[2]
    allowed = keys_ok[:, None, None, :].expand(-1, 1, L, -1)
    if causal:
        allowed = allowed & torch.ones(L, L, dtype=torch.bool).tril()
    return torch.where(allowed, F.silu(s) * scale, 0.0) @ v


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("biases", ["none", "pos", "time", "both"])
def test_pointwise_attention_equals_plain_computation_values_and_gradients(causal, biases):
    g = torch.Generator().manual_seed(0)
    B, H, L, a, h = 3, 2, 7, 4, 5
    q, k = (torch.randn(B, H, L, a, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    v = torch.randn(B, H, L, h, generator=g, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(L, L, generator=g, dtype=torch.float64, requires_grad=True) if biases in ("pos", "both") \
        else None
    tw = torch.randn(129, generator=g, dtype=torch.float64, requires_grad=True) if biases in ("time", "both") \
        else None
    times = torch.cumsum(torch.randint(0, 10**6, (B, L + 1), generator=g), dim=1)
    buckets = time_buckets(times) if tw is not None else None
    keys_ok = torch.arange(L).unsqueeze(0) < torch.tensor([[7], [4], [1]])  # right padding
    out = pointwise_attention(q, k, v, pos, tw, buckets, keys_ok, causal, 0.1)
    ref = _reference_attention(q, k, v, pos, tw, buckets, keys_ok, causal, 0.1)
    torch.testing.assert_close(out, ref)
    inputs = [t for t in (q, k, v, pos, tw) if t is not None]
    grad = torch.randn(out.shape, generator=g, dtype=torch.float64)
    for got, want in zip(torch.autograd.grad(out, inputs, grad), torch.autograd.grad(ref, inputs, grad)):
        torch.testing.assert_close(got, want)


def test_stu_training_keeps_no_per_head_attention_matrix(cycle_dataset):
    # what autograd saves for the backward of a training step: nothing as large as (B, H, L, L), while a
    # plain implementation saves several such tensors per block
    B, L, H, d = 8, 64, 4, 8
    item_net = SumItemNet.from_dataset(cycle_dataset, d, (IdEmbeddingsItemNet,))
    net = HSTUNet(item_net, n_factors=d, n_blocks=2, n_heads=H, dropout=0.1, max_len=L).train()
    tokens = torch.randint(N_SPECIAL, N_SPECIAL + net.n_items, (B, L))
    times = torch.cumsum(torch.randint(0, 10**5, (B, L + 1)), dim=1)
    sizes = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
        net.encode(tokens, net.item_table(), times).sum().backward()
    assert B * L * L <= max(sizes) < B * H * L * L  # the largest: the one-byte time buckets (B, L, L)
    assert net.blocks[0].rab.time_weights.grad is not None and net.blocks[0].rab.pos_weights.grad is not None


def test_time_buckets_are_log_buckets_of_seconds():
    # query i at times[i + 1], key j at times[j]
    gaps = np.array([0, 1, 2, 3, 60, HOUR, 24 * HOUR, 365 * 24 * HOUR, 10**60 // 10**50])
    times = torch.as_tensor(np.r_[0, gaps])[None, :]  # key 0 at time 0, queries at the gaps
    buckets = time_buckets(times)[0, :, 0].numpy()  # (L,) against key 0
    expected = np.clip(np.floor(np.log(np.maximum(gaps, 1)) / 0.301), 0, 128)
    np.testing.assert_array_equal(buckets, expected)
    assert buckets[0] == buckets[1] == 0 and buckets[2] == 2 and buckets[5] == 27
    # the gap is absolute: a key later than the query falls in the bucket of the same gap
    later = time_buckets(torch.tensor([[HOUR, 0, 2 * HOUR]]))  # query 0 at time 0, key 0 at HOUR
    assert later[0, 0, 0] == 27


def test_history_times_equals_a_loop():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 9, 20)
    indptr = np.r_[0, np.cumsum(lengths)]
    times = rng.integers(0, 10**9, indptr[-1])
    query = rng.integers(0, 10**9, 20)
    width = 5
    got = history_times(indptr, times, query, width)
    for r in range(20):
        row = list(times[indptr[r]:indptr[r + 1]][-width:]) + [query[r]]
        assert got[r].tolist() == row + [0] * (width + 1 - len(row))


# ----------------------------------------------------------------- the network
def test_no_future_leakage(hstu, cycle_dataset):
    net = hstu.net_
    tokens, times = _history(hstu, cycle_dataset, cycle_dataset.user_id_map.external_ids[:6])
    t = 3
    with torch.no_grad():
        base = net.encode(tokens, net.item_table(), times)
        later_item = tokens.clone()
        later_item[:, t + 1] = torch.where(later_item[:, t + 1] != PAD, N_SPECIAL + 5, PAD)
        changed_item = net.encode(later_item, net.item_table(), times)
        later_time = times.clone()
        later_time[:, t + 2:] += 1000 * HOUR
        changed_time = net.encode(tokens, net.item_table(), later_time)
    # positions 0..t see tokens 0..t and times 0..t + 1 only
    torch.testing.assert_close(changed_item[:, : t + 1], base[:, : t + 1])
    torch.testing.assert_close(changed_time[:, : t + 1], base[:, : t + 1])
    assert not torch.allclose(changed_item[:, t + 1:], base[:, t + 1:])
    assert not torch.allclose(changed_time[:, t + 1:], base[:, t + 1:])


def test_padding_and_the_last_position_path(hstu, cycle_dataset):
    net = hstu.net_
    tokens, times = _history(hstu, cycle_dataset, cycle_dataset.user_id_map.external_ids[:8])
    lengths = (tokens != PAD).sum(dim=1)
    longest = int(lengths.max())
    with torch.no_grad():
        full = net.encode(tokens, net.item_table(), times)  # padded to session_max_len
        cut = net.encode(tokens[:, :longest], net.item_table(), times[:, : longest + 1])
        last = net.last_vectors(tokens, net.item_table(), times)  # eval: cut columns, one query in the last block
    real = (tokens[:, :longest] != PAD).unsqueeze(-1)
    torch.testing.assert_close(full[:, :longest] * real, cut * real)
    torch.testing.assert_close(last, full[torch.arange(len(tokens)), lengths - 1], rtol=1e-5, atol=1e-6)
    assert longest < hstu.session_max_len  # the test really padded


# ----------------------------------------------------------------- times in recommend
def _stretched(df, factor):
    """The same interactions in the same order, every user's time gaps multiplied by ``factor``."""
    out = df.copy()
    start = out.groupby(Columns.User)[Columns.Datetime].transform("min")
    out[Columns.Datetime] = start + (out[Columns.Datetime] - start) * factor
    return out


def test_time_gaps_change_scores_only_with_time_attention(hstu, hstu_no_time, cycle_df, cycle_dataset):
    stretched = Dataset.construct(_stretched(cycle_df, 500))
    users = cycle_dataset.user_id_map.external_ids[:15]
    for model, changes in ((hstu, True), (hstu_no_time, False)):
        a = model.recommend(users, cycle_dataset, k=12, filter_viewed=False).sort_values([Columns.User, Columns.Item])
        b = model.recommend(users, stretched, k=12, filter_viewed=False).sort_values([Columns.User, Columns.Item])
        assert a[[Columns.User, Columns.Item]].values.tolist() == b[[Columns.User, Columns.Item]].values.tolist()
        close = np.allclose(a[Columns.Score], b[Columns.Score], atol=1e-6)
        assert close != changes, model.relative_time_attention


def test_context_time_changes_scores_and_defaults_to_the_last_interaction(hstu, cycle_df, cycle_dataset):
    users = list(cycle_dataset.user_id_map.external_ids[:10])
    last = cycle_df.groupby(Columns.User)[Columns.Datetime].max().loc[users]

    def reco(context):
        return hstu.recommend(users, cycle_dataset, k=12, filter_viewed=False, context=context) \
            .sort_values([Columns.User, Columns.Item])[Columns.Score].to_numpy()

    default = reco(None)
    at_last = reco(pd.DataFrame({Columns.User: users, Columns.Datetime: last.to_numpy()}))
    later = reco(pd.DataFrame({Columns.User: users, Columns.Datetime: (last + pd.Timedelta(days=300)).to_numpy()}))
    np.testing.assert_allclose(default, at_last, rtol=1e-6)
    assert not np.allclose(default, later, atol=1e-4)
    # the context's extra users and columns are ignored; datetimes as strings parse
    extra = pd.DataFrame({Columns.User: users + ["not-asked"], Columns.Item: "x",
                          Columns.Datetime: [str(t) for t in last] + ["2030-01-01 00:00:00"]})
    np.testing.assert_allclose(reco(extra), at_last, rtol=1e-6)


def test_context_errors(hstu, cycle_df, cycle_dataset):
    users = list(cycle_dataset.user_id_map.external_ids[:3])
    when = pd.Timestamp("2030-01-01")
    cases = [
        (pd.DataFrame({Columns.User: users + users[:1], Columns.Datetime: when}), "Duplicated user entries"),
        (pd.DataFrame({Columns.User: users[:2], Columns.Datetime: when}), "No context for some target users"),
        (pd.DataFrame({Columns.User: users, Columns.Datetime: pd.Timestamp("2000-01-01")}), "earlier than their last"),
        (pd.DataFrame({Columns.User: users, Columns.Datetime: 1_900_000_000}), "holds numbers"),
        (pd.DataFrame({Columns.User: users}), "missing required column"),
    ]
    for context, message in cases:
        with pytest.raises(ValueError, match=message):
            hstu.recommend(users, cycle_dataset, k=3, filter_viewed=False, context=context)


def test_context_warns_for_models_that_ignore_it(hstu_no_time, cycle_dataset):
    users = cycle_dataset.user_id_map.external_ids[:3]
    context = pd.DataFrame({Columns.User: users, Columns.Datetime: pd.Timestamp("2030-01-01")})
    assert not hstu_no_time.require_recommend_context
    with pytest.warns(UserWarning, match="does not use context"):
        hstu_no_time.recommend(users, cycle_dataset, k=3, filter_viewed=False, context=context)


def test_refuses_row_positions_as_times(cycle_df):
    no_times = Dataset.construct(cycle_df.sort_values(Columns.Datetime).drop(columns=[Columns.Datetime]))
    assert no_times.interactions.times_are_row_order
    assert not Dataset.construct(cycle_df).interactions.times_are_row_order
    with pytest.raises(ValueError, match="without a 'datetime' column"):
        small_hstu(epochs=1).fit(no_times)
    # without time attention no time is read: it trains, and recommends from such a dataset
    model = small_hstu(epochs=1, relative_time_attention=False).fit(no_times)
    assert len(model.recommend(no_times.user_id_map.external_ids[:2], no_times, k=2, filter_viewed=False)) == 4
    # a model trained with times cannot recommend from histories without them
    timed = small_hstu(epochs=1).fit(Dataset.construct(cycle_df))
    with pytest.raises(ValueError, match="relative_time_attention=False"):
        timed.recommend(no_times.user_id_map.external_ids[:2], no_times, k=2, filter_viewed=False)


def test_numeric_times_are_seconds(cycle_df, cycle_dataset, hstu):
    unix = (cycle_df[Columns.Datetime] - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    seconds = cycle_df.assign(**{Columns.Datetime: unix})
    numeric = Dataset.construct(seconds)
    assert not numeric.interactions.times_are_datetimes and not numeric.interactions.times_are_row_order
    users = cycle_dataset.user_id_map.external_ids[:5]
    a, b = (hstu.recommend(users, ds, k=12, filter_viewed=False).sort_values([Columns.User, Columns.Item])
            for ds in (cycle_dataset, numeric))
    assert a[[Columns.User, Columns.Item]].values.tolist() == b[[Columns.User, Columns.Item]].values.tolist()
    np.testing.assert_allclose(a[Columns.Score], b[Columns.Score], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------- parameters and round trips
def test_parameters_as_rectools():
    model = HSTUModel()
    assert (model.n_blocks, model.n_heads, model.n_factors, model.session_max_len, model.loss) == \
        (2, 4, 256, 100, "softmax")
    assert model.relative_time_attention and model.relative_pos_attention and model.use_causal_attn
    assert model.transformer_layers_type is STULayers and model._similarity() == "cosine"
    assert model.require_recommend_context and not HSTUModel(relative_time_attention=False).require_recommend_context
    # RecTools' similarity spelling: no distance means cosine for HSTU
    assert HSTUModel(similarity_module_type=DistanceSimilarityModule)._similarity() == "cosine"
    assert HSTUModel(similarity_module_kwargs={"distance": "dot"})._similarity() == "dot"
    with pytest.warns(UserWarning, match="use_key_padding_mask"):
        assert HSTUModel(use_key_padding_mask=True).use_key_padding_mask is False
    bad = [
        (dict(transformer_layers_type=PreLNTransformerLayers), "STULayers"),
        (dict(transformer_layers_kwargs={"attn_dropout": 0.1}), "attn_dropout"),
        (dict(transformer_layers_kwargs={"epsilon": 0}), "epsilon"),
        (dict(lightning_module_kwargs={"logits_t": -1}), "logits_t"),
        (dict(pos_encoding_kwargs={"use_scale_factor": "yes"}), "use_scale_factor"),
        (dict(relative_time_attention="yes"), "relative_time_attention"),
        (dict(n_factors=10, n_heads=4), "divisible"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            HSTUModel(**kwargs)


def test_config_and_file_round_trips(hstu, cycle_dataset):
    users = cycle_dataset.user_id_map.external_ids[:10]
    context = pd.DataFrame({Columns.User: users, Columns.Datetime: pd.Timestamp("2025-01-01")})
    config = hstu.get_config(simple_types=True)
    assert config["cls"] == "HSTUModel" and config["transformer_layers_type"] == "seqrec.nn.hstu.STULayers"
    assert HSTUModel.from_config(config).get_params() == hstu.get_params()
    assert model_from_config(config).get_params() == hstu.get_params()
    buffer = io.BytesIO()
    hstu.save(buffer)
    buffer.seek(0)
    loaded = load_model(buffer)
    assert type(loaded) is HSTUModel
    pd.testing.assert_frame_equal(hstu.recommend(users, cycle_dataset, 5, True, context=context),
                                  loaded.recommend(users, cycle_dataset, 5, True, context=context))
    # a config written with RecTools' names
    rectools = {"cls": "rectools.models.nn.transformers.hstu.HSTUModel", "n_factors": 16, "n_heads": 2,
                "transformer_layers_type": "rectools.models.nn.transformers.hstu.STULayers",
                "data_preparator_type": "rectools.models.nn.transformers.sasrec.SASRecDataPreparator",
                "similarity_module_type": "rectools.models.nn.transformers.similarity.DistanceSimilarityModule",
                "lightning_module_kwargs": {"logits_t": 0.05}, "relative_pos_attention": False}
    model = model_from_config(rectools)
    assert type(model) is HSTUModel and model.transformer_layers_type is STULayers
    assert model._logits_t() == 0.05 and model._similarity() == "cosine" and not model.relative_pos_attention


def test_logits_t_scales_the_training_logits(cycle_dataset):
    plain = small_hstu(epochs=1).fit(cycle_dataset)
    sharp = small_hstu(epochs=1, lightning_module_kwargs={"logits_t": 0.05}).fit(cycle_dataset)
    # at the same starting weights, cosine logits / 0.05 give a very different first-epoch loss
    assert abs(plain.history_["train_loss"].iloc[0] - sharp.history_["train_loss"].iloc[0]) > 0.1


def test_rectools_hstu_tutorial_code(cycle_df, cycle_dataset, tmp_path, monkeypatch):
    # RecTools' HSTU tutorial (transformers_HSTU_tutorial.ipynb) with only the imports changed and tiny
    # sizes: a config with logits_t, sampled softmax and leave-one-out validation, the rab ablation,
    # require_recommend_context, get_context and recommend with context
    from lightning.pytorch import Trainer  # notebook: from pytorch_lightning import Trainer
    from lightning.pytorch.loggers import CSVLogger

    monkeypatch.chdir(tmp_path)  # the trainer's logs

    def get_trainer():
        return Trainer(accelerator="cpu", devices=1, min_epochs=2, max_epochs=2, deterministic=True,
                       enable_model_summary=False, enable_progress_bar=False, logger=CSVLogger("test_logs"))

    config = {
        "session_max_len": 12,
        "lightning_module_kwargs": {"logits_t": 0.05},
        "item_net_block_types": (IdEmbeddingsItemNet,),
        "get_val_mask_func": leave_one_out_mask,
        "get_trainer_func": get_trainer,
        "verbose": 0,
        "loss": "sampled_softmax",
        "n_negatives": 8,
        "use_pos_emb": True,
        "dropout_rate": 0.2,
        "n_factors": 16,
        "n_heads": 1,
        "n_blocks": 2,
        "lr": 0.001,
        "batch_size": 32,
    }
    hstu = HSTUModel(relative_time_attention=True, relative_pos_attention=True, **config)
    hstu_rab_p = HSTUModel(relative_time_attention=False, relative_pos_attention=True, **config)
    # the notebook also fits SASRecModel(**config): seqrec's SASRecModel has no lightning_module_kwargs yet
    sasrec = SASRecModel(**{k: v for k, v in config.items() if k != "lightning_module_kwargs"})
    for model in (hstu, hstu_rab_p, sasrec):
        model.fit(cycle_dataset)
    assert "val_loss" in hstu.history_ and len(hstu.history_) == 2
    assert (hstu.require_recommend_context, hstu_rab_p.require_recommend_context) == (True, False)

    sizes = cycle_df.groupby(Columns.User).size()
    users = list(sizes[sizes <= 8].index[:3])  # users with unseen items left (filter_viewed)
    query_time = max(cycle_df[Columns.Datetime])
    context_df = pd.DataFrame({Columns.User: users, Columns.Datetime: [query_time] * 3})
    context = get_context(context_df)
    reco = hstu.recommend(users=users, dataset=cycle_dataset, k=3, filter_viewed=True, context=context)
    assert reco[Columns.User].tolist() == [u for u in users for _ in range(3)]
    assert list(reco.columns) == [Columns.User, Columns.Item, Columns.Score, Columns.Rank]


def test_cross_validate_gives_hstu_the_test_times(cycle_df, cycle_dataset, monkeypatch):
    from seqrec.metrics import Recall
    from seqrec.model_selection import LastNSplitter, cross_validate

    seen = {}
    original = HSTUModel.recommend

    def spy(self, *args, **kwargs):
        seen["context"] = kwargs.get("context")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(HSTUModel, "recommend", spy)
    models = {"hstu": small_hstu(epochs=1), "popular": PopularModel()}
    cv = cross_validate(cycle_dataset, LastNSplitter(n=1, n_splits=1), {"recall@5": Recall(5)}, models, k=5,
                        filter_viewed=False)
    assert {row["model"] for row in cv["metrics"]} == {"hstu", "popular"}
    # each user's first test interaction time, as RecTools' cross_validate passes it
    last = cycle_df.sort_values(Columns.Datetime, kind="stable").groupby(Columns.User)[Columns.Datetime].last()
    got = seen["context"].set_index(Columns.User)[Columns.Datetime]
    pd.testing.assert_series_equal(got.sort_index(), last.loc[got.index].sort_index().astype(got.dtype),
                                   check_names=False)


def test_learns_the_cycle_with_time_and_position_biases_off(cycle_df, cycle_dataset):
    model = small_hstu(epochs=15, n_blocks=1, relative_time_attention=False, relative_pos_attention=False)
    model.fit(cycle_dataset)
    expected = expected_next(cycle_df)
    top1 = model.recommend(expected.index, cycle_dataset, k=1, filter_viewed=False).set_index(Columns.User)[
        Columns.Item].reindex(expected.index)
    assert (top1 == expected).mean() >= 0.95
