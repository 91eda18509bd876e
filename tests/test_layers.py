"""The transformer layer stacks (seqrec.nn.layers) and the models' transformer_layers_type."""

import numpy as np
import pandas as pd
import pytest
import torch

from seqrec import (BERT4RecModel, Columns, Dataset, IdEmbeddingsItemNet, LiGRLayers, PreLNTransformerLayers,
                    SASRecModel, SASRecTransformerLayers)
from seqrec.nn.item_net import SumItemNet
from seqrec.nn.layers import SASRecBlock, TransformerLayersBase
from seqrec.nn.transformer import MASK, N_SPECIAL, PAD, TransformerNet

LAYER_TYPES = [PreLNTransformerLayers, SASRecTransformerLayers]


class FullOnlyLayers(PreLNTransformerLayers):
    """A stack without its own shortcut: the base class's fallback of forward_last."""

    forward_last = TransformerLayersBase.forward_last


def _dataset(n_items=15):
    df = pd.DataFrame({Columns.User: np.repeat(np.arange(5), n_items), Columns.Item: np.tile(np.arange(n_items), 5)})
    return Dataset.construct(df)


def _net(layers_type, causal, key_padding=True, max_len=10, seed=0, n_blocks=2, ff=1, activation="relu",
         options=None):
    torch.manual_seed(seed)
    item_net = SumItemNet.from_dataset(_dataset(), 16, (IdEmbeddingsItemNet,))
    net = TransformerNet(item_net, n_factors=16, n_blocks=n_blocks, n_heads=4, dropout=0.1, max_len=max_len,
                         use_causal_attn=causal, use_key_padding_mask=key_padding, ff_multiplier=ff,
                         activation=activation, layers_type=layers_type, layers_options=options)
    return net.eval()


def _tokens(rng, B, L, n_items=15, max_real=None):
    lengths = rng.integers(1, (max_real or L) + 1, B)
    tokens = rng.integers(N_SPECIAL, N_SPECIAL + n_items, (B, L))
    tokens[np.arange(L)[None, :] >= lengths[:, None]] = PAD
    return torch.as_tensor(tokens), lengths


@pytest.mark.parametrize("layers_type,options", [(t, None) for t in LAYER_TYPES + [FullOnlyLayers, LiGRLayers]]
                         + [(LiGRLayers, {"activation": "gelu", "gating": False, "bias_in_ff": True})])
@pytest.mark.parametrize("causal,key_padding", [(True, False), (False, True), (False, False)])
@pytest.mark.parametrize("n_blocks", [1, 2])
def test_fast_path_equals_full_encode(layers_type, options, causal, key_padding, n_blocks):
    net = _net(layers_type, causal, key_padding, n_blocks=n_blocks, ff=4 if not causal else 1,
               activation="gelu" if not causal else "relu", options=options)
    rng = np.random.default_rng(5)
    tokens, lengths = _tokens(rng, 9, 10, max_real=7)  # columns 7..9 are padding in every row
    if not causal:
        tokens[np.arange(9), lengths - 1] = MASK
    with torch.no_grad():
        table = net.item_table()
        full = net.encode(tokens, table)[torch.arange(9), torch.as_tensor(lengths - 1)]
        fast = net.last_vectors(tokens, table)
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-5)


def test_stacks_differ():
    """The two stacks compute different functions from the same weights (the seam is real)."""
    # the standard pre-LN stack (with a final LayerNorm) has the SASRec stack's parameters
    pre = _net(PreLNTransformerLayers, True, options={"final_norm": True})
    sas = _net(SASRecTransformerLayers, True)
    assert set(pre.state_dict()) == set(sas.state_dict())
    sas.load_state_dict(pre.state_dict())
    tokens, _ = _tokens(np.random.default_rng(0), 4, 10)
    with torch.no_grad():
        assert not torch.allclose(pre.encode(tokens, pre.item_table()), sas.encode(tokens, sas.item_table()))


def test_pre_ln_stack_defaults_are_rectools_and_options_give_the_standard_stack():
    """PreLNTransformerLayers by default: no final LayerNorm and dropout on each block's output
    (RecTools' stack); final_norm / output_dropout give the standard pre-LN stack of the presets."""
    from seqrec.nn.layers.preln import PreLNBlock

    torch.manual_seed(0)
    rectools_like = PreLNTransformerLayers(2, 16, 2, 0.5)
    standard = PreLNTransformerLayers(2, 16, 2, 0.5, final_norm=True, output_dropout=False)
    assert isinstance(rectools_like.ln_out, torch.nn.Identity) and isinstance(standard.ln_out, torch.nn.LayerNorm)
    standard.load_state_dict({**rectools_like.state_dict(), **{k: v for k, v in standard.state_dict().items()
                                                               if k.startswith("ln_out")}})
    x = torch.randn(3, 6, 16)
    with torch.no_grad():
        # eval: the output dropout is the identity, the final LayerNorm is the difference
        a, b = rectools_like.eval()(x, None, False), standard.eval()(x, None, False)
        torch.testing.assert_close(standard.ln_out(a), b)
        assert not torch.allclose(a, b)
    # train: a block with output dropout zeroes whole elements of its output (a residual-stream
    # value is almost never exactly zero otherwise)
    block = PreLNBlock(16, 2, 0.5, 1, "relu", output_dropout=True).train()
    plain = PreLNBlock(16, 2, 0.5, 1, "relu", output_dropout=False).train()
    torch.manual_seed(1)
    assert (block(x, None, False) == 0).float().mean() > 0.3
    assert (plain(x, None, False) == 0).float().mean() < 0.01
    # the options are validated and reach the stack through a model's transformer_layers_kwargs
    with pytest.raises(ValueError, match="final_norm must be True or False"):
        PreLNTransformerLayers.check_options({"final_norm": 1})
    net = _net(PreLNTransformerLayers, False, options={"final_norm": True, "output_dropout": False})
    assert isinstance(net.layers.ln_out, torch.nn.LayerNorm) and net.blocks[0].drop_out is None


def test_sasrec_block_matches_its_definition():
    """q = LN(x); y = q + attn(q, keys/values from x); z = LN(y); out = z + ff(z) (eval mode)."""
    torch.manual_seed(0)
    block = SASRecBlock(16, 2, 0.0, 1, "relu").eval()
    x = torch.randn(3, 5, 16)
    a = block.attn
    q_in = block.ln_attn(x)
    w, b = a.qkv.weight, a.qkv.bias
    q, k, v = q_in @ w[:16].T + b[:16], x @ w[16:32].T + b[16:32], x @ w[32:].T + b[32:]
    heads = lambda t: t.view(3, 5, 2, 8).transpose(1, 2)  # noqa: E731
    scores = heads(q) @ heads(k).transpose(-2, -1) / np.sqrt(8)
    scores = scores.masked_fill(~torch.tril(torch.ones(5, 5, dtype=torch.bool)), float("-inf"))
    attn = a.out((torch.softmax(scores, -1) @ heads(v)).transpose(1, 2).reshape(3, 5, 16))
    z = block.ln_ff(q_in + attn)
    with torch.no_grad():
        torch.testing.assert_close(block(x, None, True), z + block.ff(z), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layers_type", LAYER_TYPES)
@pytest.mark.parametrize("causal", [True, False])
def test_padding_does_not_change_real_positions(layers_type, causal):
    short, long = _net(layers_type, causal, max_len=6), _net(layers_type, causal, max_len=12)
    long.load_state_dict({k: v if not k.startswith("pos_emb") else torch.cat([v, torch.randn(6, 16)])
                          for k, v in short.state_dict().items()})
    tokens, lengths = _tokens(np.random.default_rng(2), 5, 6)
    padded = torch.cat([tokens, torch.zeros(5, 6, dtype=torch.long)], dim=1)
    with torch.no_grad():
        a = short.encode(tokens, short.item_table())
        b = long.encode(padded, long.item_table())
        for row, n in enumerate(lengths):
            torch.testing.assert_close(a[row, :n], b[row, :n], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(short.last_vectors(tokens, short.item_table()),
                                   long.last_vectors(padded, long.item_table()), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls", [SASRecModel, BERT4RecModel])
@pytest.mark.parametrize("bad", ["SASRecTransformerLayers", torch.nn.Module, SASRecBlock, None])
def test_transformer_layers_type_is_validated(cls, bad):
    with pytest.raises(ValueError, match="transformer_layers_type.*PreLNTransformerLayers.*SASRecTransformerLayers"):
        cls(transformer_layers_type=bad)
    model = cls()
    with pytest.raises(ValueError, match="transformer_layers_type"):
        model.set_params(transformer_layers_type=bad)


def test_defaults():
    assert SASRecModel().transformer_layers_type in (SASRecTransformerLayers, PreLNTransformerLayers)
    assert BERT4RecModel().transformer_layers_type in (SASRecTransformerLayers, PreLNTransformerLayers)


@pytest.mark.parametrize("cls", [SASRecModel, BERT4RecModel])
@pytest.mark.parametrize("layers_type", LAYER_TYPES)
def test_models_train_with_each_layer_type(cls, layers_type):
    """Both models learn the item cycle (the next item is known) with either stack."""
    from conftest import expected_next, make_cycle_interactions
    df = make_cycle_interactions()
    ds = Dataset.construct(df)
    extra = {"mask_prob": 0.3} if cls is BERT4RecModel else {}
    model = cls(n_factors=32, n_heads=2, n_blocks=1, session_max_len=16, lr=0.01, batch_size=32, dropout_rate=0.0,
                epochs=15 if cls is SASRecModel else 30, deterministic=True,
                item_net_block_types=(IdEmbeddingsItemNet,), transformer_layers_type=layers_type, **extra)
    model.fit(ds)
    assert type(model.net_.layers) is layers_type
    expected = expected_next(df)
    reco = model.recommend(expected.index, ds, k=1, filter_viewed=False)
    accuracy = (reco.set_index(Columns.User)[Columns.Item].reindex(expected.index) == expected).mean()
    assert accuracy >= (0.95 if cls is SASRecModel else 0.85), accuracy


# ------------------------------------------------------------------ padding keys (RecTools' left layout)
def _with_attention_biases(net, seed=1):
    """Non-zero attention biases: a padding row's key and value are then more than zeros."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in net.blocks:
            block.attn.qkv.bias.copy_(torch.randn(block.attn.qkv.bias.shape, generator=g))
    return net


@pytest.mark.parametrize("layers_type", [SASRecTransformerLayers, PreLNTransformerLayers, LiGRLayers])
def test_padding_keys_are_rectools_left_layout(layers_type):
    # causal without a key padding mask: the stack runs on the left layout of width max_len, each
    # padding row holding its position vector only (positions counted back from the newest item)
    net = _with_attention_biases(_net(layers_type, causal=True, key_padding=False, max_len=10))
    rng = np.random.default_rng(3)
    tokens, lengths = _tokens(rng, 6, 7)
    L = net.max_len
    with torch.no_grad():
        vocab = torch.cat([torch.zeros_like(net.special), net.item_table()])
        x = torch.zeros(6, L, 16)
        valid = torch.zeros(6, L, dtype=torch.bool)
        for b, n in enumerate(lengths):
            for j in range(L):
                x[b, j] = net.pos_emb.weight[L - 1 - j]
                if j >= L - n:
                    x[b, j] += vocab[tokens[b, j - (L - n)]]
                    valid[b, j] = True
        expected = net.layers(x, None, True, valid=valid)
        got = net.encode(tokens, net.item_table())
        fast = net.last_vectors(tokens, net.item_table())
    for b, n in enumerate(lengths):
        torch.testing.assert_close(got[b, :n], expected[b, L - n:], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fast[b], expected[b, -1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("key_padding", [False, True])
def test_padding_keys_are_attended_only_without_key_mask(key_padding):
    # the same history and weights in a network of a smaller max_len: fewer padding keys
    long = _with_attention_biases(_net(SASRecTransformerLayers, True, key_padding, max_len=10))
    short = _with_attention_biases(_net(SASRecTransformerLayers, True, key_padding, max_len=6))
    state = long.state_dict()
    state["pos_emb.weight"] = state["pos_emb.weight"][:6]
    short.load_state_dict(state)
    tokens = torch.as_tensor([[2, 5, 7, PAD, PAD, PAD]])
    with torch.no_grad():
        a = long.last_vectors(tokens, long.item_table())
        b = short.last_vectors(tokens, short.item_table())
        wide = long.last_vectors(torch.cat([tokens, torch.zeros(1, 4, dtype=torch.long)], 1), long.item_table())
    torch.testing.assert_close(wide, a)  # the batch's width never matters
    assert torch.allclose(a, b, atol=1e-5) == key_padding


@pytest.mark.parametrize("layers_type,sees_positions", [(SASRecTransformerLayers, False), (PreLNTransformerLayers, True),
                                                        (LiGRLayers, True)])
def test_padding_rows_read_positions_as_in_rectools(layers_type, sees_positions):
    # RecTools' SASRec layers zero the padding rows before every block (their padding keys are the
    # projections of a zero row); its pre-LN and LiGR layers let the padding rows (their position
    # vectors) flow through the blocks
    net = _with_attention_biases(_net(layers_type, causal=True, key_padding=False, max_len=10))
    tokens = torch.as_tensor([[2, 5, 7, PAD]])
    with torch.no_grad():
        before = net.last_vectors(tokens, net.item_table())
        net.pos_emb.weight[3:] += torch.randn(7, 16, generator=torch.Generator().manual_seed(0))  # padding rows' only
        after = net.last_vectors(tokens, net.item_table())
    assert (not torch.allclose(before, after, atol=1e-5)) == sees_positions


@pytest.mark.parametrize("n_blocks", [1, 2])
def test_counted_padding_key_equals_the_left_layout(n_blocks):
    # SASRec layers zero their padding rows, so their padding keys are all equal: inference runs
    # on the real rows with one key counted max_len - length times, and must give the left layout's vectors
    net = _with_attention_biases(_net(SASRecTransformerLayers, True, False, max_len=12, n_blocks=n_blocks))
    assert net._padding_count
    tokens, _ = _tokens(np.random.default_rng(7), 8, 12, max_real=9)
    with torch.no_grad():
        shortcut = net.last_vectors(tokens, net.item_table())
        net._padding_count = False
        left = net.last_vectors(tokens, net.item_table())
    torch.testing.assert_close(shortcut, left, atol=1e-5, rtol=1e-5)
    assert not _net(PreLNTransformerLayers, True, False)._padding_count  # its padding rows carry positions


@pytest.mark.parametrize("layers_type", [PreLNTransformerLayers, LiGRLayers])
@pytest.mark.parametrize("n_blocks", [1, 3])
def test_padding_prefix_equals_the_full_left_layout(layers_type, n_blocks):
    # pre-LN and LiGR padding rows carry their positions, so their keys differ; inference computes
    # their states once (an all-padding sequence) and runs the real rows behind them: the left
    # layout's vectors, for every history length, in a batch narrower than max_len or as wide
    net = _with_attention_biases(_net(layers_type, True, False, max_len=12, n_blocks=n_blocks))
    assert net._padding_prefix
    rng = np.random.default_rng(11)
    narrow, lengths = _tokens(rng, 10, 12, max_real=8)
    assert lengths.max() < 12
    wide = torch.cat([narrow, torch.as_tensor(rng.integers(N_SPECIAL, 17, (1, 12)))])  # one full-length history
    empty = torch.cat([narrow[:2], torch.full((1, 12), PAD)])  # a history of padding only
    for tokens in (narrow, wide, narrow[:1], empty):
        with torch.no_grad():
            shortcut = net.last_vectors(tokens, net.item_table())
            net._padding_prefix = False
            left = net.last_vectors(tokens, net.item_table())
            net._padding_prefix = True
        torch.testing.assert_close(shortcut, left, atol=1e-5, rtol=1e-5)


def test_padding_prefix_only_where_padding_rows_differ():
    assert _net(LiGRLayers, True, False)._padding_prefix
    assert not _net(SASRecTransformerLayers, True, False)._padding_prefix  # one counted key instead
    assert not _net(LiGRLayers, True, True)._padding_prefix  # key mask: padding never attended
    assert not _net(PreLNTransformerLayers, False, True)._padding_prefix  # bidirectional
