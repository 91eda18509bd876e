import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqrec.nn.losses import (
    LOSSES, bce_loss, compute_loss, gbce_beta, gbce_positive_logits, sampled_logits, softmax_loss,
)


def _inputs(N=20, d=8, n_items=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, d, generator=g, requires_grad=True)
    W = torch.randn(n_items, d, generator=g, requires_grad=True)
    y = torch.randint(0, n_items, (N,), generator=g)
    return h, W, y


def test_softmax_is_full_catalog_cross_entropy():
    h, W, y = _inputs()
    expected = -torch.log_softmax(h @ W.T, dim=1)[torch.arange(len(y)), y].mean()
    torch.testing.assert_close(softmax_loss(h, W, y), expected)


@pytest.mark.parametrize("n_items", [30, 5000])
def test_sampled_logits_both_paths_agree(n_items):
    h, W, y = _inputs(n_items=n_items)
    neg = torch.randint(0, n_items, (len(y), 7))
    got = sampled_logits(h, W, y, neg)
    cand = torch.cat([y[:, None], neg], 1)
    expected = torch.stack([W[cand[n]] @ h[n] for n in range(len(y))])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_bce_against_manual_formula():
    h, W, y = _inputs()
    neg = torch.randint(0, 30, (len(y), 4))
    s = torch.cat([y[:, None], neg], 1)
    logits = torch.stack([W[s[n]] @ h[n] for n in range(len(y))])
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    expected = F.binary_cross_entropy_with_logits(logits, labels)
    torch.testing.assert_close(bce_loss(h, W, y, 4, negatives=neg), expected, atol=1e-6, rtol=1e-6)


def test_gbce_with_t_zero_equals_bce():
    h, W, y = _inputs()
    neg = torch.randint(0, 30, (len(y), 5))
    assert gbce_beta(5, 30, 0.0) == pytest.approx(1.0)
    bce = bce_loss(h, W, y, 5, gbce_t=0.0, negatives=neg)
    # the gBCE transform itself with beta = 1 leaves logits unchanged
    s = torch.linspace(-20, 20, 101, dtype=torch.float64)
    torch.testing.assert_close(gbce_positive_logits(s, gbce_beta(5, 30, 0.0)), s, atol=1e-9, rtol=1e-9)
    gbce_tiny = bce_loss(h, W, y, 5, gbce_t=1e-12, negatives=neg)
    torch.testing.assert_close(bce, gbce_tiny, atol=1e-6, rtol=1e-6)


def test_gbce_matches_paper_formula_and_is_finite_everywhere():
    beta = gbce_beta(256, 3417, 0.75)
    alpha = 256 / 3416
    assert beta == pytest.approx(alpha * (0.75 * (1 - 1 / alpha) + 1 / alpha))
    s = torch.tensor([-3.0, -0.5, 0.0, 0.7, 4.0], dtype=torch.float64)
    direct = torch.log(1.0 / (torch.sigmoid(s) ** (-beta) - 1.0))
    torch.testing.assert_close(gbce_positive_logits(s, beta), direct)
    extreme = torch.tensor([-1e4, -800.0, -50.0, 50.0, 800.0, 1e4], requires_grad=True)
    out = gbce_positive_logits(extreme, beta)
    loss = F.softplus(-out).sum()
    loss.backward()
    assert torch.isfinite(out).all() and torch.isfinite(loss) and torch.isfinite(extreme.grad).all()


def test_compute_loss_dispatch_and_unknown_name():
    h, W, y = _inputs()
    torch.manual_seed(0)
    for name in LOSSES:
        value = compute_loss(name, h, W, y, n_negatives=3, gbce_t=0.5)
        assert torch.isfinite(value) and value.requires_grad
    with pytest.raises(ValueError, match="allowed"):
        compute_loss("hinge", h, W, y, 3, 0.5)


@pytest.mark.parametrize("loss", ["softmax", "sampled_softmax", "BCE", "gBCE"])
def test_bf16_autocast_on_cpu_trains_with_every_loss(loss, cycle_dataset):
    """precision="bf16" on CPU runs the blocked float32 kernels outside autocast (they used to mix
    bf16 matmul outputs with float32 buffers and fail)."""
    from seqrec import IdEmbeddingsItemNet, SASRecModel

    model = SASRecModel(n_factors=16, n_heads=1, n_blocks=1, session_max_len=8, epochs=1, batch_size=32, loss=loss,
                        n_negatives=4, precision="bf16", deterministic=True,
                        item_net_block_types=(IdEmbeddingsItemNet,)).fit(cycle_dataset)
    assert np.isfinite(model.history_["train_loss"]).all()
