"""LiGR layers (seqrec.nn.layers.ligr) and eSASRec: SASRec with LiGR layers and sampled softmax."""

import numpy as np
import pandas as pd
import pytest
import torch

import seqrec
from seqrec import (BERT4RecModel, Columns, Dataset, IdEmbeddingsItemNet, LiGRLayers, PreLNTransformerLayers,
                    SASRecModel, SASRecTransformerLayers, model_from_config, model_from_params)
from seqrec.nn.item_net import SumItemNet
from seqrec.nn.layers import LiGRBlock, SwiGLU
from seqrec.nn.transformer import N_SPECIAL, PAD, TransformerNet, eager_attention

from conftest import expected_next


def _net(causal=True, key_padding=True, max_len=10, n_blocks=2, seed=0, options=None, ff=1, activation="relu"):
    torch.manual_seed(seed)
    df = pd.DataFrame({Columns.User: np.repeat(np.arange(5), 15), Columns.Item: np.tile(np.arange(15), 5)})
    item_net = SumItemNet.from_dataset(Dataset.construct(df), 16, (IdEmbeddingsItemNet,))
    net = TransformerNet(item_net, n_factors=16, n_blocks=n_blocks, n_heads=4, dropout=0.1, max_len=max_len,
                         use_causal_attn=causal, use_key_padding_mask=key_padding, ff_multiplier=ff,
                         activation=activation, layers_type=LiGRLayers, layers_options=options)
    # the Xavier init leaves the gate biases at zero: give them values so that a wrong gate shows
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "gate" in name and name.endswith("bias"):
                p.normal_()
    return net.eval()


def _tokens(rng, B, L, max_real=None, n_items=15):
    lengths = rng.integers(1, (max_real or L) + 1, B)
    tokens = rng.integers(N_SPECIAL, N_SPECIAL + n_items, (B, L))
    tokens[np.arange(L)[None, :] >= lengths[:, None]] = PAD
    return torch.as_tensor(tokens), lengths


def _small(**kw):
    params = dict(n_factors=32, n_heads=2, n_blocks=1, session_max_len=16, epochs=2, lr=0.01, batch_size=32,
                  dropout_rate=0.0, loss="sampled_softmax", n_negatives=8, random_state=0,
                  recommend_torch_device="cpu", transformer_layers_type=LiGRLayers,
                  item_net_block_types=(IdEmbeddingsItemNet,))
    params.update(kw)
    return SASRecModel(**params)


# ----------------------------------------------------------------- the layers
def test_shapes_and_structure():
    layers = LiGRLayers(2, 16, 4, 0.1)
    x = torch.randn(3, 7, 16)
    assert layers(x, None, True).shape == (3, 7, 16)
    block = layers.blocks[0]
    assert isinstance(block.ff, SwiGLU) and block.ff.w1.weight.shape == (64, 16)  # width 4d by default
    assert block.ff.w1.bias is None and block.ff.w2.bias is None and block.ff.w3.bias is None  # no bias
    assert block.gate_attn.weight.shape == (16, 16) and block.gate_ff.weight.shape == (16, 16)
    assert isinstance(layers.ln_out, torch.nn.Identity)  # no final norm, as RecTools
    plain = LiGRLayers(1, 16, 4, 0.1, ff_multiplier=2, activation="gelu", bias_in_ff=True, gating=False)
    assert plain.blocks[0].gate_attn is None and plain.blocks[0].ff[0].weight.shape == (32, 16)
    assert plain.blocks[0].ff[0].bias is not None


def test_block_matches_its_definition():
    """x + sigmoid(G_a x) * attn(LN_a x), then + sigmoid(G_f x) * W2(SiLU(W1 h) * W3 h), h = LN_f x (eval)."""
    torch.manual_seed(0)
    block = LiGRBlock(16, 2, 0.0, 4, "swiglu", bias_in_ff=False, gating=True).eval()
    with torch.no_grad():
        block.gate_attn.bias.normal_()
        block.gate_ff.bias.normal_()
    x = torch.randn(3, 5, 16)
    a = block.attn
    h = block.ln_attn(x)
    q, k, v = (t.view(3, 5, 2, 8).transpose(1, 2) for t in a.qkv(h).split(16, dim=-1))
    attn = a.out(eager_attention(q, k, v, None, True).transpose(1, 2).reshape(3, 5, 16))
    y = x + torch.sigmoid(block.gate_attn(x)) * attn
    g = block.ln_ff(y)
    ff = block.ff.w2(torch.nn.functional.silu(block.ff.w1(g)) * block.ff.w3(g))
    expected = y + torch.sigmoid(block.gate_ff(y)) * ff
    with torch.no_grad():
        torch.testing.assert_close(block(x, None, True), expected, atol=1e-5, rtol=1e-5)


# the fast path (last position only) against the full forward: tests/test_layers.py, with LiGRLayers


def test_causal_attention_does_not_leak_the_future():
    net = _net(causal=True)
    tokens, _ = _tokens(np.random.default_rng(4), 6, 10, max_real=10)
    tokens[:, :] = torch.randint(N_SPECIAL, N_SPECIAL + 15, (6, 10))  # full sequences
    changed = tokens.clone()
    changed[:, 6:] = torch.randint(N_SPECIAL, N_SPECIAL + 15, (6, 4))
    with torch.no_grad():
        a, b = net.encode(tokens, net.item_table()), net.encode(changed, net.item_table())
    # positions are counted back from the newest item, so compare the same token window: outputs
    # at 0..5 depend on tokens 0..5 and the (shared) position embeddings only
    torch.testing.assert_close(a[:, :6], b[:, :6], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(a[:, 6:], b[:, 6:])


@pytest.mark.parametrize("causal", [True, False])
def test_padding_does_not_change_real_positions(causal):
    short, long = _net(causal, max_len=6), _net(causal, max_len=12)
    long.load_state_dict({k: v if not k.startswith("pos_emb") else torch.cat([v, torch.randn(6, 16)])
                          for k, v in short.state_dict().items()})
    tokens, lengths = _tokens(np.random.default_rng(2), 5, 6)
    padded = torch.cat([tokens, torch.zeros(5, 6, dtype=torch.long)], dim=1)
    with torch.no_grad():
        a, b = short.encode(tokens, short.item_table()), long.encode(padded, long.item_table())
        for row, n in enumerate(lengths):
            torch.testing.assert_close(a[row, :n], b[row, :n], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(short.last_vectors(tokens, short.item_table()),
                                   long.last_vectors(padded, long.item_table()), atol=1e-5, rtol=1e-5)


def test_gates_change_the_function():
    """Same weights, gating on and off: different outputs (the gates are used)."""
    gated, plain = _net(options={"gating": True}), _net(options={"gating": False})
    plain.load_state_dict({k: v for k, v in gated.state_dict().items() if "gate" not in k})
    tokens, _ = _tokens(np.random.default_rng(0), 4, 10)
    with torch.no_grad():
        assert not torch.allclose(gated.encode(tokens, gated.item_table()), plain.encode(tokens, plain.item_table()))


# ----------------------------------------------------------------- in the models
def test_esasrec_learns_the_cycle(cycle_df, cycle_dataset):
    model = _small(epochs=15).fit(cycle_dataset)
    assert type(model.net_.layers) is LiGRLayers
    expected = expected_next(cycle_df)
    top1 = model.recommend(expected.index, cycle_dataset, k=1, filter_viewed=False).set_index(Columns.User)
    accuracy = (top1[Columns.Item].reindex(expected.index) == expected).mean()
    assert accuracy >= 0.95, accuracy


def test_bert4rec_trains_with_ligr_layers(cycle_dataset):
    model = BERT4RecModel(n_factors=16, n_heads=2, n_blocks=1, session_max_len=10, epochs=1, batch_size=32,
                          transformer_layers_type=LiGRLayers, item_net_block_types=(IdEmbeddingsItemNet,),
                          transformer_layers_kwargs={"ff_multiplier": 2}, random_state=0,
                          recommend_torch_device="cpu").fit(cycle_dataset)
    assert model.net_.layers.blocks[0].ff.w1.weight.shape == (32, 16)
    reco = model.recommend(cycle_dataset.user_id_map.external_ids[:5], cycle_dataset, k=3, filter_viewed=False)
    assert len(reco) == 15 and np.isfinite(reco[Columns.Score]).all()


def test_config_and_file_round_trips(cycle_dataset, tmp_path):
    model = _small(transformer_layers_kwargs={"ff_multiplier": 2, "gating": True}).fit(cycle_dataset)
    config = model.get_config(simple_types=True)
    assert config["transformer_layers_type"] == "seqrec.nn.layers.LiGRLayers"
    assert config["transformer_layers_kwargs"] == {"ff_multiplier": 2, "gating": True}
    assert model_from_config(config).get_params() == model.get_params()
    flat = model.get_params(simple_types=True)
    assert flat["transformer_layers_kwargs.ff_multiplier"] == 2
    assert model_from_params(flat).get_params() == model.get_params()
    model.save(tmp_path / "m")
    loaded = seqrec.load_model(tmp_path / "m")
    assert loaded.transformer_layers_type is LiGRLayers and loaded.net_.layers.blocks[0].ff.w1.weight.shape == (64, 32)
    users = cycle_dataset.user_id_map.external_ids[:10]
    pd.testing.assert_frame_equal(model.recommend(users, cycle_dataset, k=3, filter_viewed=True),
                                  loaded.recommend(users, cycle_dataset, k=3, filter_viewed=True))


def test_a_rectools_esasrec_config_loads():
    config = {"cls": "SASRecModel", "transformer_layers_type": "rectools.models.nn.transformers.ligr.LiGRLayers",
              "transformer_layers_kwargs": {"ff_factors_multiplier": 2, "ff_activation": "gelu", "bias_in_ff": True},
              "loss": "sampled_softmax", "n_negatives": 16, "n_factors": 32}
    model = model_from_config(config)
    assert model.transformer_layers_type is LiGRLayers
    block = model._net_from_item_net(SumItemNet([IdEmbeddingsItemNet(10, 32)])).layers.blocks[0]
    assert block.ff[0].weight.shape == (64, 32) and isinstance(block.ff[1], torch.nn.GELU)
    assert block.ff[0].bias is not None


def test_rectools_esasrec_code_runs_with_only_the_imports_changed(cycle_df):
    # RecTools:
    #   from rectools import Columns
    #   from rectools.dataset import Dataset
    #   from rectools.models import SASRecModel
    #   from rectools.models.nn.item_net import IdEmbeddingsItemNet
    #   from rectools.models.nn.transformers.ligr import LiGRLayers
    from seqrec import Columns, Dataset, IdEmbeddingsItemNet, SASRecModel  # noqa: F811
    from seqrec.nn.layers import LiGRLayers

    dataset = Dataset.construct(cycle_df)
    model = SASRecModel(
        transformer_layers_type=LiGRLayers,
        transformer_layers_kwargs={"ff_factors_multiplier": 4, "ff_activation": "swiglu", "bias_in_ff": False},
        loss="sampled_softmax",
        n_negatives=16,
        n_factors=32,
        n_blocks=1,
        n_heads=1,
        dropout_rate=0.1,
        session_max_len=16,
        use_key_padding_mask=True,
        lr=0.001,
        batch_size=64,
        epochs=1,
        deterministic=True,
        item_net_block_types=(IdEmbeddingsItemNet,),
    )
    model.fit(dataset)
    n_seen = cycle_df.groupby(Columns.User)[Columns.Item].nunique()
    users = n_seen.index[n_seen <= 7][:3]  # at least 5 unseen items each
    reco = model.recommend(users=users, dataset=dataset, k=5, filter_viewed=True)
    assert list(reco.columns) == [Columns.User, Columns.Item, Columns.Score, Columns.Rank]
    assert len(reco) == 15 and reco.groupby(Columns.User)[Columns.Score].is_monotonic_decreasing.all()


def test_preset(cycle_dataset):
    model = SASRecModel.from_preset("ml-1m-esasrec", epochs=1)
    p = model.get_params()
    assert (p["transformer_layers_type"], p["loss"], p["n_negatives"], p["n_factors"], p["n_blocks"],
            p["session_max_len"], p["lr"]) == (LiGRLayers, "sampled_softmax", 256, 64, 2, 200, 1e-3)
    assert SASRecModel.from_preset("beauty-esasrec").get_params()["session_max_len"] == 50
    # the preset's dict is the model's own: changing one model's options leaves the preset alone
    model.transformer_layers_kwargs["ff_multiplier"] = 1
    assert SASRecModel.from_preset("ml-1m-esasrec").transformer_layers_kwargs == {"ff_multiplier": 4}


# ----------------------------------------------------------------- option checks
@pytest.mark.parametrize("cls", [SASRecModel, BERT4RecModel])
def test_unknown_options_are_named_with_the_allowed_ones(cls):
    with pytest.raises(ValueError, match=r"unknown option 'ff_multiplyer' for LiGRLayers; allowed: "
                                         r"\['ff_multiplier', 'activation', 'bias_in_ff', 'gating'"):
        cls(transformer_layers_type=LiGRLayers, transformer_layers_kwargs={"ff_multiplyer": 2})
    # the classic stacks have only the feed-forward shape as options
    with pytest.raises(ValueError, match="unknown option 'gating' for PreLNTransformerLayers"):
        cls(transformer_layers_type=PreLNTransformerLayers, transformer_layers_kwargs={"gating": False})
    model = cls(transformer_layers_type=LiGRLayers)
    with pytest.raises(ValueError, match="bias_in_ff must be True or False"):
        model.set_params(transformer_layers_kwargs={"bias_in_ff": "no"})


@pytest.mark.parametrize("options, message", [
    ({"activation": "tanh"}, r"unknown activation 'tanh'; allowed: \('swiglu', 'relu', 'gelu'\)"),
    ({"ff_multiplier": 0}, "ff_multiplier must be a positive integer"),
    ({"ff_multiplier": 2.0}, "ff_multiplier must be a positive integer"),
    ({"ff_multiplier": 2, "ff_factors_multiplier": 2}, "name the same option"),
    ("swiglu", "must be a dict"),
])
def test_bad_option_values(options, message):
    with pytest.raises(ValueError, match=message):
        SASRecModel(transformer_layers_type=LiGRLayers, transformer_layers_kwargs=options)


def test_swiglu_is_ligr_only_and_classic_stacks_take_the_model_shape(cycle_dataset):
    with pytest.raises(ValueError, match=r"unknown activation 'swiglu'; allowed: \('relu', 'gelu'\)"):
        SASRecModel(transformer_layers_type=SASRecTransformerLayers, transformer_layers_kwargs={"activation": "swiglu"})
    item_net = SumItemNet([IdEmbeddingsItemNet(10, 16)])
    # no options: the model's own feed-forward (SASRec: 1 x d, ReLU); options override it
    default = SASRecModel(n_factors=16, transformer_layers_type=SASRecTransformerLayers)._net_from_item_net(item_net)
    assert default.layers.blocks[0].ff[0].weight.shape == (16, 16)
    wide = SASRecModel(n_factors=16, transformer_layers_type=SASRecTransformerLayers,
                       transformer_layers_kwargs={"ff_factors_multiplier": 2, "ff_activation": "gelu"})
    ff = wide._net_from_item_net(item_net).layers.blocks[0].ff
    assert ff[0].weight.shape == (32, 16) and isinstance(ff[1], torch.nn.GELU)
