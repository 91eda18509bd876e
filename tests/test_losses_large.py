"""Large-catalog losses: the chunked full softmax and the sampled softmax, each against a
brute-force computation; their options on the models."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from seqrec import BERT4RecModel, Dataset, SASRecModel
from seqrec.nn import losses
from seqrec.nn.losses import (
    Popularity,
    chunked_softmax_loss,
    compute_loss,
    in_batch_negatives,
    sample_popular,
    sampled_softmax_loss,
    softmax_chunk_size,
    softmax_loss,
)


def _inputs(N=40, n_items=53, d=16, seed=0, ignore_every=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, d, generator=g).requires_grad_()
    W = torch.randn(n_items, d, generator=g).requires_grad_()
    y = torch.randint(0, n_items, (N,), generator=g)
    if ignore_every:
        y[::ignore_every] = -1
    return h, W, y


# ----------------------------------------------------------------- chunked full softmax
@pytest.mark.parametrize("chunk", [1, 7, 52, 53, 1000])
@pytest.mark.parametrize("ignore_every", [0, 3])
def test_chunked_softmax_equals_cross_entropy(chunk, ignore_every):
    h, W, y = _inputs(ignore_every=ignore_every)
    loss = chunked_softmax_loss(h, W, y, chunk)
    gh, gW = torch.autograd.grad(loss, (h, W))
    ref = F.cross_entropy(h @ W.T, y, ignore_index=-1)
    rh, rW = torch.autograd.grad(ref, (h, W))
    assert abs(loss.item() - ref.item()) < 1e-5
    torch.testing.assert_close(gh, rh, atol=1e-5, rtol=0)
    torch.testing.assert_close(gW, rW, atol=1e-5, rtol=0)


def test_chunked_softmax_upstream_gradient_and_large_logits():
    # logits far beyond exp's range: the online logsumexp must not overflow
    h, W, y = _inputs(N=10, n_items=30, d=4)
    with torch.no_grad():
        h.mul_(40.0)
    loss = 2.5 * chunked_softmax_loss(h, W, y, 4)
    gh, gW = torch.autograd.grad(loss, (h, W))
    ref = 2.5 * F.cross_entropy(h @ W.T, y)
    rh, rW = torch.autograd.grad(ref, (h, W))
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, ref, atol=1e-4, rtol=1e-6)
    torch.testing.assert_close(gh, rh, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(gW, rW, atol=1e-5, rtol=1e-4)


def test_chunked_softmax_bf16_inputs_return_bf16_gradients():
    h, W, y = _inputs()
    hb, Wb = h.detach().bfloat16().requires_grad_(), W.detach().bfloat16().requires_grad_()
    loss = chunked_softmax_loss(hb, Wb, y, 8)
    gh, gW = torch.autograd.grad(loss, (hb, Wb))
    assert gh.dtype == torch.bfloat16 and gW.dtype == torch.bfloat16
    ref = F.cross_entropy(hb.float() @ Wb.float().T, y)
    assert abs(loss.item() - ref.item()) < 0.05


def test_softmax_loss_forced_chunk_equals_plain():
    h, W, y = _inputs(ignore_every=4)
    plain = softmax_loss(h, W, y)
    chunked = softmax_loss(h, W, y, chunk_size=5)
    assert abs(plain.item() - chunked.item()) < 1e-5


def test_chunk_size_is_automatic(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(losses, "_available_memory", lambda device: 16 << 30)
    # small catalog: the plain path (one block of the whole catalog)
    assert softmax_chunk_size(25_600, 3_416, cpu) == 3_416
    # a million items: chunks whose logits stay within the CPU chunk cap
    chunk = softmax_chunk_size(25_600, 1_000_000, cpu)
    assert 256 <= chunk < 1_000_000
    assert 25_600 * chunk * losses._BYTES_PER_LOGIT <= losses._CPU_CHUNK_CAP
    # less free memory: smaller chunks; an override wins and is clipped to the catalog
    monkeypatch.setattr(losses, "_available_memory", lambda device: 1 << 30)
    assert softmax_chunk_size(25_600, 1_000_000, cpu) < chunk
    assert softmax_chunk_size(25_600, 1_000_000, cpu, chunk_size=1234) == 1234
    assert softmax_chunk_size(10, 50, cpu, chunk_size=10**9) == 50


def test_softmax_loss_takes_chunked_path_when_logits_do_not_fit(monkeypatch):
    h, W, y = _inputs(n_items=600)
    calls = []
    real = losses.chunked_softmax_loss
    monkeypatch.setattr(losses, "chunked_softmax_loss", lambda *a: calls.append(a[3]) or real(*a))
    monkeypatch.setattr(losses, "_available_memory", lambda device: 40 * 600 * losses._BYTES_PER_LOGIT)
    loss = softmax_loss(h, W, y)
    assert calls and calls[0] < W.shape[0]
    assert abs(loss.item() - F.cross_entropy(h @ W.T, y).item()) < 1e-5


# ----------------------------------------------------------------- sampled softmax
def _brute_sampled_softmax(h, W, y, negatives, log_q=None):
    """Loop over rows: -log softmax of the positive among {positive} + negatives != positive."""
    total, count = 0.0, 0
    for i in range(len(y)):
        if y[i] < 0:
            continue
        negs = negatives if negatives.dim() == 1 else negatives[i]
        cands = [int(y[i])] + [int(j) for j in negs]
        keep = [0] + [c + 1 for c, j in enumerate(negs) if int(j) != int(y[i])]
        s = torch.stack([h[i] @ W[c] for c in cands]).double()
        if log_q is not None:
            lq = log_q[i] if log_q.dim() == 2 else log_q
            s = s - lq.double()
        s = s[keep]
        total += float((torch.logsumexp(s, 0) - s[0]).detach())
        count += 1
    return total / max(count, 1)


def test_sampled_softmax_uniform_matches_brute_force_and_masks_hits():
    h, W, y = _inputs(N=30, n_items=12, ignore_every=5)
    g = torch.Generator().manual_seed(1)
    negatives = torch.randint(0, 12, (30, 9), generator=g)
    negatives[:, 0] = y.clamp(min=0)  # an accidental hit in every row
    loss = sampled_softmax_loss(h, W, y, negatives)
    assert abs(loss.item() - _brute_sampled_softmax(h, W, y, negatives)) < 1e-5
    # without the masking the hit would count as a negative: a different value
    unmasked = F.cross_entropy(torch.cat([(h * W[y.clamp(min=0)]).sum(1, keepdim=True),
                                          torch.einsum("nd,nkd->nk", h, W[negatives])], 1)[y >= 0],
                               torch.zeros(int((y >= 0).sum()), dtype=torch.long))
    assert abs(loss.item() - unmasked.item()) > 1e-3


def test_sampled_softmax_popularity_log_q_matches_brute_force():
    h, W, y = _inputs(N=25, n_items=10)
    counts = torch.tensor([50, 1, 3, 9, 20, 2, 7, 1, 4, 30])
    pop = Popularity.from_counts(counts)
    torch.manual_seed(3)
    negatives = sample_popular(25, 6, pop.cdf)
    log_q = pop.log_q[torch.cat([y.unsqueeze(1), negatives], 1)]
    loss = sampled_softmax_loss(h, W, y, negatives, log_q)
    q = counts.double() / counts.sum()
    brute = _brute_sampled_softmax(h, W, y, negatives, torch.log(q)[torch.cat([y.unsqueeze(1), negatives], 1)])
    assert abs(loss.item() - brute) < 1e-5
    # compute_loss draws the same negatives from the same seed
    torch.manual_seed(3)
    via_dispatch = compute_loss("sampled_softmax", h, W, y, 6, 0.0, negative_sampling="popularity", popularity=pop)
    assert abs(via_dispatch.item() - loss.item()) < 1e-6


def test_uniform_sequence_shares_a_draw_per_sequence_and_matches_brute_force():
    """negative_sampling="uniform_sequence": K uniform negatives per sequence of the batch, the
    same for its positions (hits masked): the per-row loss with each row given its sequence's draw."""
    B, L = 5, 6
    h, W, y = _inputs(N=B * L, n_items=11, ignore_every=4)
    torch.manual_seed(4)
    loss = compute_loss("sampled_softmax", h, W, y, 7, 0.0, negative_sampling="uniform_sequence", n_sequences=B)
    torch.manual_seed(4)
    drawn = torch.randint(0, 11, (B, 7))  # the draw compute_loss made
    per_row = drawn.repeat_interleave(L, dim=0)  # (B * L, K)
    assert abs(loss.item() - _brute_sampled_softmax(h, W, y, per_row)) < 1e-5
    with pytest.raises(ValueError, match="n_sequences"):
        compute_loss("sampled_softmax", h, W, y, 7, 0.0, negative_sampling="uniform_sequence", n_sequences=7)


def test_popularity_sampling_follows_counts():
    counts = torch.tensor([0, 1, 2, 7, 0, 10])
    pop = Popularity.from_counts(counts)
    torch.manual_seed(0)
    draws = sample_popular(2000, 50, pop.cdf).flatten()
    freq = torch.bincount(draws, minlength=6).double() / len(draws)
    expected = counts.double() / counts.sum()
    assert freq[0] == 0 and freq[4] == 0  # never an item without interactions
    torch.testing.assert_close(freq, expected, atol=0.005, rtol=0)


def test_in_batch_negatives_and_log_q_match_brute_force():
    h, W, y = _inputs(N=20, n_items=6, ignore_every=4)  # few items: many repeats and hits
    torch.manual_seed(5)
    negatives, log_q = in_batch_negatives(y, 8, 6)
    valid_items = y[y >= 0].tolist()
    assert set(negatives.tolist()) <= set(valid_items)  # drawn from the batch's positives only
    freq = {i: valid_items.count(i) / len(valid_items) for i in set(valid_items)}
    for i in range(len(y)):
        cands = [int(y[i].clamp(min=0))] + negatives.tolist()
        for c, item in enumerate(cands):
            if y[i] >= 0 or c > 0:
                assert abs(log_q[i, c].item() - math.log(freq[item])) < 1e-5
    loss = sampled_softmax_loss(h, W, y, negatives, log_q)
    assert abs(loss.item() - _brute_sampled_softmax(h, W, y, negatives, log_q)) < 1e-5


@pytest.mark.parametrize("name,sampling", [("BCE", "uniform"), ("gBCE", "uniform"), ("softmax", "uniform"),
                                           ("sampled_softmax", "uniform"), ("sampled_softmax", "popularity"),
                                           ("sampled_softmax", "in_batch")])
def test_rows_without_target_change_nothing(name, sampling):
    """The sync-free step (every row, padding marked -1) gives the loss of the selected rows."""
    h, W, y = _inputs(N=12, n_items=9)
    pop = Popularity.from_counts(torch.arange(1, 10))
    h_pad = torch.cat([h, torch.randn(5, h.shape[1])])
    y_pad = torch.cat([y, torch.full((5,), -1)])
    torch.manual_seed(0)
    a = compute_loss(name, h, W, y, 4, 0.5, negative_sampling=sampling, popularity=pop)
    # same draws for the real rows: the negatives of the padding rows are drawn after them (row-major)
    torch.manual_seed(0)
    b = compute_loss(name, h_pad, W, y_pad, 4, 0.5, negative_sampling=sampling, popularity=pop)
    if sampling == "in_batch":
        assert torch.isfinite(b)  # its draws depend on the number of rows; checked by brute force above
    else:
        assert abs(a.item() - b.item()) < 1e-5


# ----------------------------------------------------------------- model options
def _data(n_users=30, n_items=25, per_user=8, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(u, int(i), t) for u in range(n_users) for t, i in enumerate(rng.integers(0, n_items, per_user))]
    return Dataset.construct(pd.DataFrame(rows, columns=["user_id", "item_id", "datetime"]))


@pytest.mark.parametrize("model_cls", [SASRecModel, BERT4RecModel])
@pytest.mark.parametrize("param,value,allowed", [("loss", "sampled", "sampled_softmax"),
                                                 ("negative_sampling", "pop", "in_batch"),
                                                 ("precision", "fp16", "bf16"),
                                                 ("softmax_chunk_size", 0, "positive integer"),
                                                 ("torch_compile", "yes", "True or False"),
                                                 ("train_windows", "every", "'all'"),
                                                 ("lr_schedule", "linear", "'cosine'")])
def test_new_options_are_validated(model_cls, param, value, allowed):
    with pytest.raises(ValueError, match=allowed):
        model_cls(**{param: value})


def test_new_parameters_come_last():
    for cls, before in [(SASRecModel, "random_state"), (BERT4RecModel, "mask_prob")]:
        names = cls._param_names()
        assert names[names.index(before) + 1:names.index("lr_schedule") + 1] == [
            "negative_sampling", "softmax_chunk_size", "precision", "torch_compile", "train_windows", "lr_schedule"]


@pytest.mark.parametrize("model_cls", [SASRecModel, BERT4RecModel])
def test_train_windows_all_trains_on_older_interactions(model_cls):
    """With session_max_len 3, "last" never shows the model the oldest items of 12-item
    histories; "all" cuts each history into windows, one sample per 3 targets."""
    import lightning as L

    from seqrec.nn.transformer import N_SPECIAL
    from seqrec.training import WindowDataset

    # item 0 only in the 4 oldest interactions of every user
    rows = [(u, (0 if t < 4 else 1 + (u + t) % 9), t) for u in range(20) for t in range(12)]
    data = Dataset.construct(pd.DataFrame(rows, columns=["user_id", "item_id", "datetime"]))
    token0 = int(data.item_id_map.to_internal(np.array([0]))[0]) + N_SPECIAL
    users = np.arange(data.n_users)
    width = model_cls(session_max_len=3)._train_window()
    last = WindowDataset(data.interactions, users, width)
    every = WindowDataset(data.interactions, users, width, stride=3)
    assert len(last) == 20 and len(every) == 20 * ((12 - 2) // 3 + 1)
    assert not (last.__getitems__(list(range(len(last)))) == token0).any()
    # each of the 4 oldest interactions is in some window (SASRec's windows overlap by one input item)
    assert (every.__getitems__(list(range(len(every)))) == token0).sum() >= 20 * 4
    steps = {}
    for mode in ("last", "all"):
        trainers = []

        def trainer_func():
            trainers.append(L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu"))
            return trainers[-1]

        model_cls(n_blocks=1, n_heads=1, n_factors=8, session_max_len=3, batch_size=16, random_state=0,
                  train_windows=mode, get_trainer_func=trainer_func,
                  item_net_block_types=SASRecModel().item_net_block_types[:1]).fit(data)
        steps[mode] = trainers[0].global_step
    assert steps == {"last": 2, "all": 5}  # ceil(20 / 16) and ceil(80 / 16) batches


def test_cosine_factor_runs_from_one_to_zero():
    from seqrec.training import cosine_factor

    total = 10
    factors = [cosine_factor(step, total) for step in range(total + 3)]
    assert factors[0] == 1.0 and factors[5] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(factors[:total], factors[1:total + 1]))
    assert factors[total:] == [0.0] * 3  # steps past the plan stay at 0


@pytest.mark.parametrize("model_cls", [SASRecModel, BERT4RecModel])
@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_lr_schedule_sets_the_rate_of_every_step(model_cls, schedule):
    import lightning as L

    seen = []

    class RecordLR(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    def trainer_func():
        return L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", callbacks=[RecordLR()])

    data = _data(n_users=40, n_items=15, per_user=8)
    model = _small(model_cls, lr=0.01, lr_schedule=schedule, get_trainer_func=trainer_func)
    model.fit(data)
    steps = 3 * -(-40 // 8)  # 3 epochs of 5 batches
    assert len(seen) == steps
    if schedule == "constant":
        assert seen == [0.01] * steps
    else:
        assert seen[0] == pytest.approx(0.01)
        assert all(a > b for a, b in zip(seen, seen[1:]))
        # the last step runs at the factor of step total - 1, one step before 0
        assert seen[-1] == pytest.approx(0.01 * 0.5 * (1 + np.cos(np.pi * (steps - 1) / steps)))


def test_cosine_schedule_without_a_planned_end_is_a_clear_error():
    import lightning as L

    def endless():
        return L.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")

    model = _small(SASRecModel, lr_schedule="cosine", get_trainer_func=endless)
    with pytest.raises(ValueError, match="finite max_epochs or max_steps"):
        model.fit(_data())


def _small(model_cls, **kw):
    return model_cls(n_blocks=1, n_heads=1, n_factors=8, session_max_len=6, epochs=1, batch_size=8,
                     random_state=0, item_net_block_types=SASRecModel().item_net_block_types[:1], **kw)


@pytest.mark.parametrize("model_cls", [SASRecModel, BERT4RecModel])
def test_forced_chunked_softmax_step_equals_plain_step(model_cls):
    """One training step with ``softmax_chunk_size`` gives the loss and gradients of the plain one."""
    from seqrec.training import SeqRecModule, WindowDataset
    ds = _data()
    results = []
    for chunk in (None, 4):
        model = _small(model_cls, softmax_chunk_size=chunk, dropout_rate=0.0)
        torch.manual_seed(0)
        net = model._build_net(ds)
        module = SeqRecModule(net, model._training_batch, "softmax", 1, 0.0, 1e-3, softmax_chunk_size=chunk)
        batch = WindowDataset(ds.interactions, np.arange(10), model._train_window()).__getitems__(list(range(10)))
        torch.manual_seed(1)  # BERT4Rec's masking draws
        with pytest.warns(Warning):  # self.log outside a Trainer
            loss = module.training_step(batch, 0)
        loss.backward()
        results.append((loss.item(), [p.grad.clone() for p in net.parameters()]))
    assert abs(results[0][0] - results[1][0]) < 1e-5
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("sampling", ["uniform", "uniform_sequence", "popularity", "in_batch"])
def test_sampled_softmax_models_fit_and_recommend(sampling):
    ds = _data()
    for model_cls in (SASRecModel, BERT4RecModel):
        model = _small(model_cls, loss="sampled_softmax", n_negatives=5, negative_sampling=sampling).fit(ds)
        reco = model.recommend(ds.user_id_map.external_ids[:3], ds, k=4, filter_viewed=True)
        assert len(reco) == 12
        assert all(torch.isfinite(p).all() for p in model.net_.parameters())


def test_popularity_sampling_uses_training_counts():
    from seqrec.training import SeqRecModule
    ds = _data()
    model = _small(SASRecModel, loss="sampled_softmax", negative_sampling="popularity")
    net = model._build_net(ds)
    counts = np.bincount(ds.interactions.items, minlength=ds.n_items)
    module = SeqRecModule(net, model._training_batch, "sampled_softmax", 3, 0.0, 1e-3,
                          negative_sampling="popularity", item_counts=counts)
    torch.testing.assert_close(module.pop_log_q.exp().double(), torch.as_tensor(counts / counts.sum()),
                               atol=1e-6, rtol=1e-5)


# ----------------------------------------------------------------- fused (row-blocked) softmax
@pytest.mark.parametrize("rows", [1, 7, 16, 40, 1000])
@pytest.mark.parametrize("ignore_every", [0, 3])
def test_fused_softmax_equals_cross_entropy(rows, ignore_every):
    h, W, y = _inputs(ignore_every=ignore_every)
    loss = 1.7 * losses.fused_softmax_loss(h, W, y, rows)  # upstream gradient 1.7
    gh, gW = torch.autograd.grad(loss, (h, W))
    ref = 1.7 * F.cross_entropy(h @ W.T, y, ignore_index=-1)
    rh, rW = torch.autograd.grad(ref, (h, W))
    assert abs(loss.item() - ref.item()) < 1e-5
    torch.testing.assert_close(gh, rh, atol=1e-5, rtol=0)
    torch.testing.assert_close(gW, rW, atol=1e-5, rtol=0)


def test_fused_softmax_large_logits_repeated_targets_and_no_targets():
    h, W, y = _inputs(N=12, n_items=9, d=4)
    y[:6] = 3  # several rows with the same target: dW accumulates over them
    with torch.no_grad():
        h.mul_(40.0)  # logits beyond exp's range
    loss = losses.fused_softmax_loss(h, W, y, 5)
    gh, gW = torch.autograd.grad(loss, (h, W))
    ref = F.cross_entropy(h @ W.T, y)
    rh, rW = torch.autograd.grad(ref, (h, W))
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, ref, atol=1e-4, rtol=1e-6)
    torch.testing.assert_close(gh, rh, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(gW, rW, atol=1e-5, rtol=1e-4)
    # no row with a target: zero loss and zero gradients, not NaN
    none = losses.fused_softmax_loss(h, W, torch.full_like(y, -1), 5)
    gh0, gW0 = torch.autograd.grad(none, (h, W))
    assert none.item() == 0.0 and not gh0.any() and not gW0.any()


def test_fused_softmax_with_bf16_products_is_close_to_float32():
    """bf16=True: the three products on bf16 operands, softmax and dW accumulation in float32; the
    loss and gradients stay within bf16 rounding of the float32 kernel's (logits of a few units)."""
    h, W, y = _inputs(N=300, n_items=500, d=32, ignore_every=7)
    ref = losses.fused_softmax_loss(h, W, y, 64)
    ref_gh, ref_gW = torch.autograd.grad(ref, (h, W))
    low = losses.fused_softmax_loss(h, W, y, 64, bf16=True)
    gh, gW = torch.autograd.grad(low, (h, W))
    assert gh.dtype == torch.float32 and gW.dtype == torch.float32
    assert abs(low.item() - ref.item()) < 0.02 * abs(ref.item())
    for got, want in ((gh, ref_gh), (gW, ref_gW)):
        assert (got - want).norm() < 0.03 * want.norm()


def test_fused_softmax_bf16_inputs_and_cpu_default_path():
    h, W, y = _inputs()
    hb, Wb = h.detach().bfloat16().requires_grad_(), W.detach().bfloat16().requires_grad_()
    loss = losses.fused_softmax_loss(hb, Wb, y, 8)
    gh, gW = torch.autograd.grad(loss, (hb, Wb))
    assert gh.dtype == torch.bfloat16 and gW.dtype == torch.bfloat16
    assert abs(loss.item() - F.cross_entropy(hb.float() @ Wb.float().T, y).item()) < 1e-5
    # softmax_loss on CPU takes the fused path while the logits fit
    calls = []
    original = losses.FusedSoftmaxCE.apply
    try:
        losses.FusedSoftmaxCE.apply = lambda *a: calls.append(a[3]) or original(*a)
        softmax_loss(h, W, y)
    finally:
        losses.FusedSoftmaxCE.apply = original
    assert calls == [losses.fused_rows(W.shape[0])]
    calls.clear()
    try:  # under bf16 autocast the products are bf16
        losses.FusedSoftmaxCE.apply = lambda *a: calls.append(a[4]) or original(*a)
        softmax_loss(h, W, y)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            softmax_loss(h, W, y)
    finally:
        losses.FusedSoftmaxCE.apply = original
    assert calls == [False, True]
    assert losses.fused_rows(10_000) == 104 and losses.fused_rows(10**7) == 16 and losses.fused_rows(10) == 1024


@pytest.mark.parametrize("n_rows", [1, 40])
@pytest.mark.parametrize("n_cand", [2, 12])
def test_sparse_candidate_logits_equal_gather_of_full_scores(n_rows, n_cand):
    h, W, _ = _inputs(N=n_rows, n_items=30, d=8)
    g = torch.Generator().manual_seed(3)
    cand = torch.randint(0, 30, (n_rows, n_cand), generator=g)
    cand[:, 1] = cand[:, 0]  # repeated candidates in a row: their gradients add up
    cand[0, 0] = 29  # the last item row is reached
    up = torch.randn(n_rows, n_cand, generator=g)
    out = losses.SparseCandidateLogits.apply(h, W, cand)
    gh, gW = torch.autograd.grad((out * up).sum(), (h, W))
    ref = torch.gather(h @ W.T, 1, cand)
    rh, rW = torch.autograd.grad((ref * up).sum(), (h, W))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(gh, rh, atol=1e-5, rtol=0)
    torch.testing.assert_close(gW, rW, atol=1e-5, rtol=0)


def test_sampled_logits_cpu_route_no_rows_and_bf16():
    """On CPU every per-row candidate set takes the sparse route; no rows and bf16 inputs work."""
    h, W, y = _inputs(N=10, n_items=30, d=8)
    neg = torch.randint(0, 30, (10, 3))
    ref = torch.gather(h @ W.T, 1, torch.cat([y.unsqueeze(1), neg], 1))
    torch.testing.assert_close(losses.sampled_logits(h, W, y, neg), ref, atol=1e-5, rtol=0)
    empty = losses.sampled_logits(h[:0], W, y[:0], neg[:0])
    assert empty.shape == (0, 4)
    (empty.sum() + 0 * h.sum()).backward()  # backward through zero rows
    hb, Wb = h.detach().bfloat16().requires_grad_(), W.detach().bfloat16().requires_grad_()
    out = losses.sampled_logits(hb, Wb, y, neg)
    gh, gW = torch.autograd.grad(out.sum(), (hb, Wb))
    assert gh.dtype == torch.bfloat16 and gW.dtype == torch.bfloat16
    many = torch.randint(0, 30, (10, 40))  # more candidates than items: the gather route
    torch.testing.assert_close(losses.sampled_logits(h, W, y, many),
                               torch.gather(h @ W.T, 1, torch.cat([y.unsqueeze(1), many], 1)), atol=1e-5, rtol=0)
