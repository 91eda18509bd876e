import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqrec import Columns, Dataset
from seqrec.nn.item_net import CatFeaturesItemNet, IdEmbeddingsItemNet, SumItemNet
from seqrec.nn.transformer import MASK, N_SPECIAL, PAD, TransformerNet, eager_attention
import pandas as pd


def _dataset(n_items=15):
    df = pd.DataFrame({Columns.User: np.repeat(np.arange(5), n_items), Columns.Item: np.tile(np.arange(n_items), 5)})
    feats = pd.DataFrame({Columns.Id: np.arange(n_items), Columns.Value: np.arange(n_items) % 3,
                          Columns.Feature: "genre"})
    return Dataset.construct(df, item_features_df=feats, cat_item_features=["genre"])


def _net(causal: bool, key_padding: bool = True, max_len: int = 8, seed: int = 0) -> TransformerNet:
    torch.manual_seed(seed)
    ds = _dataset()
    item_net = SumItemNet.from_dataset(ds, 16, (IdEmbeddingsItemNet, CatFeaturesItemNet))
    net = TransformerNet(item_net, n_factors=16, n_blocks=2, n_heads=4, dropout=0.1, max_len=max_len,
                         use_causal_attn=causal, use_key_padding_mask=key_padding)
    return net.eval()


def _tokens(rng, B, L, n_items=15):
    lengths = rng.integers(1, L + 1, B)
    tokens = rng.integers(N_SPECIAL, N_SPECIAL + n_items, (B, L))
    tokens[np.arange(L)[None, :] >= lengths[:, None]] = PAD
    return torch.as_tensor(tokens), lengths


def test_item_table_is_sum_of_id_and_category_embeddings():
    net = _net(True)
    ds = _dataset()
    ids, cats = net.item_net.blocks
    table = net.item_table()
    genre_of = ds.item_features.categorical()
    for item in range(ds.n_items):
        cols = genre_of.indices[genre_of.indptr[item]:genre_of.indptr[item + 1]]
        expected = ids.embedding.weight[item] + cats.embedding_bag.weight[cols].sum(0)
        torch.testing.assert_close(table[item], expected)


@pytest.mark.parametrize("causal,key_padding", [(True, False), (False, True), (False, False)])
def test_fused_attention_equals_eager(causal, key_padding):
    net = _net(causal, key_padding)
    rng = np.random.default_rng(0)
    tokens, _ = _tokens(rng, 6, 8)
    valid = tokens != PAD
    attn_mask, is_causal = net.attention_mask(valid)
    attn = net.blocks[0].attn
    x = torch.randn(6, 8, 16)
    q, k, v = attn.project(x)
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
    torch.testing.assert_close(fused, eager_attention(q, k, v, attn_mask, is_causal), atol=1e-5, rtol=1e-5)
    # and the whole block output through the module path
    y = attn(x, attn_mask, is_causal)
    expected = attn.out(eager_attention(q, k, v, attn_mask, is_causal).transpose(1, 2).reshape(6, 8, 16))
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)


def test_causal_net_has_no_future_leakage():
    net = _net(causal=True)
    rng = np.random.default_rng(1)
    tokens, lengths = _tokens(rng, 4, 8)
    tokens[:, :] = torch.as_tensor(rng.integers(N_SPECIAL, N_SPECIAL + 15, (4, 8)))  # full sequences
    table = net.item_table()
    with torch.no_grad():
        base = net.encode(tokens, table)
        for t in range(7):
            changed = tokens.clone()
            changed[:, t + 1:] = torch.as_tensor(rng.integers(N_SPECIAL, N_SPECIAL + 15, (4, 7 - t)))
            out = net.encode(changed, table)
            torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], atol=1e-5, rtol=1e-5)
            assert not torch.allclose(out[:, t + 1:], base[:, t + 1:])


@pytest.mark.parametrize("causal", [True, False])
def test_padding_does_not_change_real_positions(causal):
    """The same history gives the same vectors whatever the amount of padding after it."""
    short, long = _net(causal, max_len=6), _net(causal, max_len=12)
    long.load_state_dict({k: v if not k.startswith("pos_emb") else torch.cat([v, torch.randn(6, 16)])
                          for k, v in short.state_dict().items()})
    rng = np.random.default_rng(2)
    tokens, lengths = _tokens(rng, 5, 6)
    padded = torch.cat([tokens, torch.zeros(5, 6, dtype=torch.long)], dim=1)
    with torch.no_grad():
        a = short.encode(tokens, short.item_table())
        b = long.encode(padded, long.item_table())
    for row, n in enumerate(lengths):
        torch.testing.assert_close(a[row, :n], b[row, :n], atol=1e-5, rtol=1e-5)
    # and the garbage at padding positions differs from nothing real: last vectors equal
    torch.testing.assert_close(short.last_vectors(tokens, short.item_table()),
                               long.last_vectors(padded, long.item_table()), atol=1e-5, rtol=1e-5)


def test_positions_count_from_the_newest_item():
    net = _net(causal=False)
    rng = np.random.default_rng(3)
    tokens, _ = _tokens(rng, 1, 8)
    tokens[0] = torch.tensor([5, 6, 7, PAD, PAD, PAD, PAD, PAD])
    shifted = torch.tensor([[5, 6, 7, MASK, PAD, PAD, PAD, PAD]])
    with torch.no_grad():
        # the newest real token always gets position 0: appending a token moves the others back
        h = net.encode(tokens, net.item_table())
        h2 = net.encode(shifted, net.item_table())
    assert not torch.allclose(h[0, 2], h2[0, 2])


@pytest.mark.parametrize("causal,key_padding", [(True, True), (False, True), (False, False)])
def test_last_vectors_shortcut_equals_full_encode(causal, key_padding):
    """In eval mode last_vectors cuts padding columns and runs the last block for one position
    only; it must equal the vector that the full encode gives at the last real token."""
    net = _net(causal, key_padding, max_len=10)
    rng = np.random.default_rng(5)
    tokens, lengths = _tokens(rng, 9, 10)
    tokens[:, 7:] = PAD  # every sequence has at most 7 tokens: columns 7..9 can be cut
    lengths = np.minimum(lengths, 7)
    if not causal:
        tokens[np.arange(9), lengths - 1] = MASK  # BERT4Rec's inference shape
    with torch.no_grad():
        table = net.item_table()
        full = net.encode(tokens, table)[torch.arange(9), torch.as_tensor(lengths - 1)]
        fast = net.last_vectors(tokens, table)
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-5)
    # without a key padding mask (bidirectional) the padding columns matter: they must not be cut
    if not causal and not key_padding:
        assert not torch.allclose(full, net.encode(tokens[:, :7], table)[torch.arange(9), torch.as_tensor(lengths - 1)])
    # the training-mode path is the plain one
    net.train()
    torch.manual_seed(0)
    with torch.no_grad():
        a = net.last_vectors(tokens, table)
    torch.manual_seed(0)
    with torch.no_grad():
        b = net.encode(tokens, table)[torch.arange(9), torch.as_tensor(lengths - 1)]
    torch.testing.assert_close(a, b)


def test_cpu_dropout_keeps_nn_dropouts_distribution_and_gradient():
    from seqrec.nn.dropout import Dropout

    torch.manual_seed(0)
    drop = Dropout(0.3).train()
    x = torch.ones(400, 500, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005  # P(keep) = 1 - p
    torch.testing.assert_close(y[kept], torch.full((int(kept.sum()),), 1 / 0.7))  # scaled by 1 / (1 - p)
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.7)  # the gradient goes through the same mask
    assert torch.equal(drop.eval()(x), x)  # eval: identity
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert Dropout(1.0).train()(x).abs().sum() == 0
    # bf16 inputs stay bf16; a module of nn.Dropout's kind (state dicts and repr unchanged)
    assert drop.train()(x.detach().bfloat16()).dtype == torch.bfloat16
    assert isinstance(drop, torch.nn.Dropout) and repr(drop) == "Dropout(p=0.3, inplace=False)"
