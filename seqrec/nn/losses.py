"""Every training loss of seqrec, in one place, in the papers' notation.

All losses take the sequence vectors ``h`` ``(N, d)``, the item table ``W`` ``(n_items, d)`` and
the targets ``y`` ``(N,)`` (internal item ids); the score of item ``i`` is ``s_i = h . W_i``. A
target ``-1`` marks a row without target (a padding position): it adds nothing and the mean is
taken over the other rows. This lets a GPU step pass every position without the host
synchronisation that selecting the rows with a target (``h[y >= 0]``) costs.
"""

from __future__ import annotations

import functools
import math
import typing as tp
import warnings

import numpy as np
import scipy.sparse
import torch
import torch.nn.functional as F

LOSSES = ("softmax", "BCE", "gBCE", "sampled_softmax")
NEGATIVE_SAMPLING = ("uniform", "uniform_sequence", "popularity", "in_batch")
# the samplings whose negatives belong to a sequence: the loss gets every position, (B * L) rows
PER_SEQUENCE_SAMPLING = ("uniform_sequence",)

# Bytes one (row, item) logit costs in the softmax: the float32 logits, their exponentials and the
# gradient block, all alive at once.
_BYTES_PER_LOGIT = 12
_CPU_PLAIN_CAP = 4 << 30  # CPU: full logits up to 4 GiB stay on the plain path
_CPU_CHUNK_CAP = 512 << 20  # CPU: at most 512 MiB of logits per chunk


def _valid_mean(terms: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean of the per-row ``terms`` ``(N,)`` over the rows with a target (``y >= 0``), sync-free."""
    valid = (y >= 0).to(terms.dtype)
    return (terms * valid).sum() / valid.sum().clamp(min=1.0)


def _available_memory(device: torch.device) -> int:
    """Free bytes: CUDA's free memory; on CPU psutil's available memory if installed, else
    /proc/meminfo's MemAvailable, else a fixed 4 GiB."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        import psutil  # optional
        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def softmax_chunk_size(n_rows: int, n_items: int, device: torch.device, chunk_size: tp.Optional[int] = None) -> int:
    """Catalog items per chunk of the full softmax; ``n_items`` means one block (the plain path).

    The plain path is kept while the ``(n_rows, n_items)`` logits take at most a quarter of the free
    memory (4 GiB at most on CPU), so that small catalogs run exactly as before. Otherwise a chunk
    takes a sixteenth of the free memory (512 MiB at most on CPU). ``chunk_size`` forces a size
    (clipped to ``[1, n_items]``).
    """
    if chunk_size is not None:
        return max(1, min(int(chunk_size), n_items))
    free = _available_memory(device)
    cpu = device.type != "cuda"
    row_bytes = max(1, n_rows) * _BYTES_PER_LOGIT
    plain_budget = min(free // 4, _CPU_PLAIN_CAP) if cpu else free // 4
    if row_bytes * n_items <= plain_budget:
        return n_items
    chunk_budget = min(free // 16, _CPU_CHUNK_CAP) if cpu else free // 16
    return int(min(n_items, max(256, chunk_budget // row_bytes)))


def _outside_autocast(forward: tp.Callable[..., torch.Tensor]) -> tp.Callable[..., torch.Tensor]:
    """Run an autograd Function's ``forward`` with autocast off: the blocked kernels below compute
    in float32 and write into float32 buffers, and under ``precision="bf16"`` autocast would turn
    their matmuls into bf16 and mix the dtypes (``scatter``/``gather`` with ``out=`` refuse that)."""

    @functools.wraps(forward)
    def wrapped(ctx: tp.Any, h: torch.Tensor, *args: tp.Any) -> torch.Tensor:
        with torch.autocast(device_type=h.device.type, enabled=False):
            return forward(ctx, h, *args)

    return wrapped


class SoftmaxPlan(tp.NamedTuple):
    """The full-softmax path of one fit: ``"fused"`` (CPU, row-blocked), ``"plain"`` (``F.cross_entropy``
    of the whole logits) or ``"chunked"``, and the ``chunk`` of catalog items per block that selects
    it (``chunk == n_items``: one block). Passing ``chunk`` as the ``chunk_size`` of every step
    keeps that path whatever the free memory does during the run."""

    path: str
    chunk: int


def plan_softmax(max_rows: int, n_items: int, device: torch.device,
                 chunk_size: tp.Optional[int] = None) -> SoftmaxPlan:
    """The softmax path for steps of at most ``max_rows`` rows over ``n_items`` items, chosen once
    (from the free memory now, unless ``chunk_size`` forces it): a run that re-chose it at every
    step could switch paths, whose float results differ in the last bits, with the free memory."""
    chunk = softmax_chunk_size(max_rows, n_items, device, chunk_size)
    if chunk < n_items:
        return SoftmaxPlan("chunked", chunk)
    return SoftmaxPlan("fused" if device.type == "cpu" else "plain", n_items)


class ChunkedSoftmaxCE(torch.autograd.Function):
    """Mean cross-entropy of ``softmax(h @ W.T)`` over the rows with a target, never holding more
    than ``(N, chunk)`` logits.

    Forward streams over catalog chunks with an online logsumexp. Backward recomputes each chunk's
    logits, turns them into ``softmax`` probabilities (the ``- onehot`` term is added once at the
    end from the target rows of ``W``), accumulates ``dh`` and writes ``dW`` chunk by chunk. All
    accumulation is in float32 whatever the input dtype (bf16 under autocast).
    """

    @staticmethod
    def forward(ctx: tp.Any, h: torch.Tensor, W: torch.Tensor, y: torch.Tensor, chunk: int) -> torch.Tensor:
        N, n_items = h.shape[0], W.shape[0]
        valid = y >= 0
        y0 = y.clamp(min=0)
        m = torch.full((N,), -math.inf, device=h.device, dtype=torch.float32)  # running max
        s = torch.zeros(N, device=h.device, dtype=torch.float32)  # running sum of exp(logit - m)
        for start in range(0, n_items, chunk):
            logits = (h @ W[start:start + chunk].T).float()  # (N, C)
            m_new = torch.maximum(m, logits.amax(dim=1))
            s = s * torch.exp(m - m_new) + torch.exp(logits - m_new.unsqueeze(1)).sum(dim=1)
            m = m_new
        lse = m + torch.log(s)  # (N,)
        target_logit = (h.float() * W[y0].float()).sum(dim=1)  # (N,)
        n_valid = valid.sum().clamp(min=1).float()
        loss = ((lse - target_logit) * valid).sum() / n_valid
        ctx.save_for_backward(h, W, y0, valid, lse, n_valid)
        ctx.chunk = chunk
        return loss

    @staticmethod
    def backward(ctx: tp.Any, grad: torch.Tensor) -> tp.Tuple[tp.Optional[torch.Tensor], ...]:
        h, W, y0, valid, lse, n_valid = ctx.saved_tensors
        chunk = ctx.chunk
        # d loss / d logit_ij = scale_i * (softmax_ij - onehot_ij), scale_i = grad * valid_i / n_valid
        scale = (grad.float() * valid.float() / n_valid).unsqueeze(1)  # (N, 1)
        hf = h.float()
        dh = torch.zeros_like(hf)  # (N, d)
        dW = torch.zeros(W.shape, device=W.device, dtype=torch.float32)  # (n_items, d)
        for start in range(0, W.shape[0], chunk):
            Wc = W[start:start + chunk]
            p = torch.exp((h @ Wc.T).float() - lse.unsqueeze(1)) * scale  # (N, C)
            dh.addmm_(p, Wc.float())
            dW[start:start + chunk] = p.T @ hf
        W_y = W[y0].float()  # (N, d)
        dh.sub_(scale * W_y)
        dW.index_add_(0, y0, -scale * hf)
        return dh.to(h.dtype), dW.to(W.dtype), None, None


class FusedSoftmaxCE(torch.autograd.Function):
    """Mean cross-entropy of ``softmax(h @ W.T)`` over the rows with a target, with its gradients
    computed in the forward pass, ``rows`` rows of ``h`` at a time.

    For each row block the ``(rows, n_items)`` logits are computed, turned in place into
    ``softmax - onehot`` (the gradient of the mean loss with respect to them is that times
    ``valid / n_valid`` per row, a scale applied to the small ``(rows, d)`` operands) and
    immediately used for ``dh`` of the block and ``dW += G^T h``; so the ``(N, n_items)``
    logits never exist and each block is read while still in cache. Backward only scales the
    stored gradients by the upstream gradient. Float32 arithmetic whatever the input dtype, except
    that with ``bf16`` the three products take bfloat16 operands (as under autocast; 2-4 times
    faster on CPUs with bf16 instructions): the softmax, the loss and the accumulation of ``dW``
    stay in float32.
    """

    @staticmethod
    @_outside_autocast
    def forward(ctx: tp.Any, h: torch.Tensor, W: torch.Tensor, y: torch.Tensor, rows: int,
                bf16: bool = False) -> torch.Tensor:
        N = h.shape[0]
        hf, Wf = h.float(), W.float()
        hm, Wm = (h.bfloat16(), W.bfloat16()) if bf16 else (hf, Wf)  # operands of the products
        valid = y >= 0
        n_valid = valid.sum().clamp(min=1).float()
        scale = valid.float() / n_valid  # (N,) d loss / d row-loss
        y0 = y.clamp(min=0)
        dh = torch.empty_like(hf)  # (N, d)
        dW = torch.zeros_like(Wf)  # (n_items, d)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        # one logits block reused by every row block: a fresh (rows, n_items) tensor per block
        # costs a large allocation each time (on CPU half the forward product's time)
        buf = torch.empty(min(rows, N), Wf.shape[0], dtype=torch.float32, device=h.device)
        bbuf = torch.empty_like(buf, dtype=torch.bfloat16) if bf16 else None
        minus_one = torch.full((buf.shape[0], 1), -1.0, device=h.device)
        for start in range(0, N, rows):
            stop = min(start + rows, N)
            hc, yc, sc = hm[start:stop], y0[start:stop], scale[start:stop]
            g = buf[:stop - start]  # (R, n_items) logits
            if bf16:
                g.copy_(torch.mm(hc, Wm.T, out=bbuf[:stop - start]))
            else:
                torch.mm(hc, Wm.T, out=g)
            target = g.gather(1, yc.unsqueeze(1)).squeeze(1)  # (R,)
            m = g.amax(dim=1)  # (R,)
            # softmax in place by ATen's row kernel (one row in cache at a time: 30% less time than
            # amax, sub_, exp_, sum and mul_ over the block); the loss needs log-sum-exp, which is
            # m - log(max softmax) since the largest probability belongs to the largest logit (and
            # is at least 1 / n_items, so its log is finite)
            torch.ops.aten._softmax.out(g, 1, False, out=g)
            total += ((m - torch.log(g.amax(dim=1)) - target) * sc).sum()
            g.scatter_add_(1, yc.unsqueeze(1), minus_one[:stop - start])  # g <- softmax - onehot
            # the row scale is applied to the (R, d) operands, not to the (R, n_items) block
            sh = sc.unsqueeze(1)  # (R, 1)
            if bf16:
                gm = g.bfloat16()
                dh[start:stop] = (gm @ Wm).float() * sh
                dW.add_((gm.T @ (hf[start:stop] * sh).bfloat16()).float())
            else:
                torch.mm(g, Wf, out=dh[start:stop])
                dh[start:stop] *= sh
                dW.addmm_(g.T, hf[start:stop] * sh)
        ctx.save_for_backward(dh, dW)
        ctx.dtypes = (h.dtype, W.dtype)
        return total

    @staticmethod
    def backward(ctx: tp.Any, grad: torch.Tensor) -> tp.Tuple[tp.Optional[torch.Tensor], ...]:
        dh, dW = ctx.saved_tensors
        h_dtype, W_dtype = ctx.dtypes
        grad = grad.float()
        return (dh * grad).to(h_dtype), (dW * grad).to(W_dtype), None, None, None


def fused_rows(n_items: int) -> int:
    """Rows per block of :class:`FusedSoftmaxCE`: about 4 MiB of float32 logits per block (104 rows
    for 10,000 items, 306 for 3,416), between 16 and 1024."""
    return int(max(16, min(1024, (1 << 20) // max(1, n_items))))


def fused_softmax_loss(h: torch.Tensor, W: torch.Tensor, y: torch.Tensor, rows: int = 512,
                       bf16: bool = False) -> torch.Tensor:
    """Full-catalog softmax cross-entropy with fused gradients, ``rows`` rows at a time, products in
    bfloat16 with ``bf16`` (see :class:`FusedSoftmaxCE`)."""
    return FusedSoftmaxCE.apply(h, W, y, int(rows), bool(bf16))


def chunked_softmax_loss(h: torch.Tensor, W: torch.Tensor, y: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Full-catalog softmax cross-entropy computed ``chunk_size`` items at a time (see :class:`ChunkedSoftmaxCE`)."""
    return ChunkedSoftmaxCE.apply(h, W, y, int(chunk_size))


def softmax_loss(h: torch.Tensor, W: torch.Tensor, y: torch.Tensor,
                 chunk_size: tp.Optional[int] = None) -> torch.Tensor:
    """Cross-entropy of the softmax over the full catalog.

    While the ``(N, n_items)`` logits would fit comfortably in memory, the whole-catalog path: on CPU
    the row-blocked fused loss (:class:`FusedSoftmaxCE`), elsewhere ``F.cross_entropy`` of
    ``h @ W.T``. Beyond that (or with ``chunk_size`` given) the catalog-chunked path. All give the
    same loss and gradients (up to float rounding). A training run passes the ``chunk`` of its
    :func:`plan_softmax` so that every step takes the same path.
    """
    chunk = softmax_chunk_size(h.shape[0], W.shape[0], h.device, chunk_size)
    if chunk >= W.shape[0]:
        if h.device.type == "cpu":
            # measured 2-2.5x faster than the plain path on CPU (ML-1M and synthetic shapes); under
            # bf16 autocast (precision="bf16") its products are bf16 too, as autocast's would be
            bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
            return fused_softmax_loss(h, W, y, fused_rows(W.shape[0]), bf16)
        logits = h @ W.T  # (N, n_items)
        return F.cross_entropy(logits.float(), y, ignore_index=-1)
    return chunked_softmax_loss(h, W, y, chunk)


def sample_negatives(n: int, n_negatives: int, n_items: int, device: torch.device) -> torch.Tensor:
    """Item ids ``(n, n_negatives)`` drawn uniformly from the catalog, on ``device``."""
    return torch.randint(0, n_items, (n, n_negatives), device=device)


class Popularity(tp.NamedTuple):
    """Popularity sampling distribution: ``cdf`` ``(n_items,)`` float64 and ``log_q`` ``(n_items,)``,
    ``Q(i) = count_i / sum(count)``."""

    cdf: torch.Tensor
    log_q: torch.Tensor

    @classmethod
    def from_counts(cls, item_counts: torch.Tensor) -> "Popularity":
        counts = torch.as_tensor(item_counts).double().clamp(min=0)
        q = counts / counts.sum()
        return cls(cdf=torch.cumsum(q, 0), log_q=torch.log(q).float())


def sample_popular(n: int, n_negatives: int, cdf: torch.Tensor) -> torch.Tensor:
    """Item ids ``(n, n_negatives)`` drawn with probability ``Q(i)`` given by ``cdf``, on its device
    (inverse-CDF sampling: one uniform draw and a binary search, no host synchronisation)."""
    u = torch.rand(n, n_negatives, device=cdf.device, dtype=cdf.dtype) * cdf[-1]
    return torch.searchsorted(cdf, u, right=True).clamp(max=len(cdf) - 1)


def sampled_logits(h: torch.Tensor, W: torch.Tensor, y: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Scores ``(N, 1 + K)`` of the positive (column 0) and the ``K`` negatives of each row."""
    candidates = torch.cat([y.unsqueeze(1), negatives], dim=1)  # (N, 1 + K)
    N, C = candidates.shape
    n_items, d = W.shape
    if h.device.type == "cpu" and C <= n_items:
        # one dot product per candidate, nothing gathered: 1.5-6x faster than the routes below
        # at every catalog size measured (2 to 257 candidates, 3,416 to 10^6 items); with more
        # candidates than items (toy catalogs) torch's sampled product refuses the pattern
        return SparseCandidateLogits.apply(h, W, candidates)
    if n_items <= C * d:
        # small catalog: one matmul and a gather beat gathering N * (1 + K) embeddings
        return torch.gather(h @ W.T, 1, candidates)  # (N, n_items) -> (N, 1 + K)
    return torch.einsum("nd,nkd->nk", h, W[candidates])  # (N, 1 + K, d) -> (N, 1 + K)


def _csr_rows(candidates: torch.Tensor, values: torch.Tensor, n_items: int) -> torch.Tensor:
    """The ``(N, n_items)`` sparse CSR matrix holding ``values[n, k]`` at column ``candidates[n, k]``
    (a row's repeated candidates stay separate entries: products sum them)."""
    N, C = candidates.shape
    crow = torch.arange(0, N * C + 1, C, device=candidates.device)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the ops used here are tested
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, candidates.reshape(-1), values.reshape(-1), size=(N, n_items))


class SparseCandidateLogits(torch.autograd.Function):
    """``gather(h @ W.T, 1, candidates)`` as sparse products, float32 (CPU).

    The candidates are the pattern of a sparse ``(N, n_items)`` matrix ``S``: forward is a sampled
    dense product (``torch.sparse.sampled_addmm``: one dot product per candidate, nothing
    gathered); backward is ``dh = S @ W``, a weighted ``embedding_bag`` (each row the sum of its
    candidates' item vectors times their gradients), and ``dW = S.T @ h``, the same arrays read as
    a compressed-column matrix by scipy (a loop over the candidates adding ``grad * h[row]`` to
    its item's row, nothing materialised). Each costs ``N * C * d`` multiply-adds on
    cache-resident operands, where the full-catalog route costs ``N * n_items * d`` three times
    and gathering ``W[candidates]`` moves ``N * C * d`` floats through memory twice. With
    ``N = 5,500``, ``C = 257``, ``d = 64`` and 10,000 items, one thread: backward 27 ms, where a
    CSR product and ``index_add_`` of the ``(rows, C, d)`` shares took 58 ms.
    """

    @staticmethod
    @_outside_autocast
    def forward(ctx: tp.Any, h: torch.Tensor, W: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        hf, Wf = h.float(), W.float()
        N, C = candidates.shape
        pattern = _csr_rows(candidates, hf.new_zeros(N * C), W.shape[0])
        out = torch.sparse.sampled_addmm(pattern, hf, Wf.T, beta=0.0).values().view(N, C)  # (N, C)
        ctx.save_for_backward(h, W, candidates)
        return out

    @staticmethod
    def backward(ctx: tp.Any, grad: torch.Tensor) -> tp.Tuple[tp.Optional[torch.Tensor], ...]:
        h, W, candidates = ctx.saved_tensors
        hf, Wf, grad = h.detach().float(), W.detach().float(), grad.detach().float().contiguous()
        N, C = candidates.shape
        dh = F.embedding_bag(candidates, Wf, per_sample_weights=grad, mode="sum")  # (N, d)
        # S.T as an (n_items, N) compressed-column matrix: column n holds row n's candidates
        index = np.int32 if N * C < 2**31 and W.shape[0] < 2**31 else np.int64
        S_T = scipy.sparse.csc_matrix(
            (grad.numpy().reshape(-1), candidates.numpy().astype(index, copy=False).reshape(-1),
             np.arange(0, N * C + 1, C, dtype=index)),
            shape=(W.shape[0], N), copy=False,
        )
        dW = torch.from_numpy(np.ascontiguousarray(S_T @ hf.contiguous().numpy()))  # (n_items, d)
        return dh.to(h.dtype), dW.to(W.dtype), None


def gbce_beta(n_negatives: int, n_items: int, t: float) -> float:
    """beta = alpha * (t * (1 - 1/alpha) + 1/alpha), alpha = K / (n_items - 1) (gSASRec, eq. 9)."""
    alpha = n_negatives / (n_items - 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def gbce_positive_logits(s: torch.Tensor, beta: float) -> torch.Tensor:
    """The positive logit ``s`` of gBCE: ``log(1 / (sigmoid(s)^(-beta) - 1))``.

    With ``x = beta * softplus(-s) = -beta * log sigmoid(s)`` this is ``-log(expm1(x))``, computed
    in float64 with the large-``x`` branch ``x + log(-expm1(-x))`` so that no logit gives NaN or
    inf. For ``beta = 1`` (``t = 0``) it returns ``s`` itself: gBCE becomes BCE.
    """
    s64 = s.double()
    x = (beta * F.softplus(-s64)).clamp(min=1e-300)
    small = torch.log(torch.expm1(x.clamp(max=30.0)))
    large = x + torch.log(-torch.expm1(-x.clamp(min=30.0)))
    return (-torch.where(x < 30.0, small, large)).to(s.dtype)


def bce_loss(h: torch.Tensor, W: torch.Tensor, y: torch.Tensor, n_negatives: int, gbce_t: float = 0.0,
             negatives: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy of each positive against ``n_negatives`` uniform negatives.

    With ``gbce_t > 0`` the positive logit is replaced as in gBCE (Petrov & Macdonald, 2023);
    ``gbce_t = 0`` is plain BCE. The mean is taken over all ``N * (1 + K)`` terms.
    """
    n_items = W.shape[0]
    if negatives is None:
        negatives = sample_negatives(len(y), n_negatives, n_items, h.device)
    logits = sampled_logits(h, W, y.clamp(min=0), negatives).float()  # (N, 1 + K)
    s_pos, s_neg = logits[:, :1], logits[:, 1:]
    if gbce_t != 0.0:
        s_pos = gbce_positive_logits(s_pos, gbce_beta(negatives.shape[1], n_items, gbce_t))
    # -log sigmoid(s+) for positives, -log(1 - sigmoid(s-)) = softplus(s-) for negatives
    terms = torch.cat([F.softplus(-s_pos), F.softplus(s_neg)], dim=1)  # (N, 1 + K)
    return _valid_mean(terms.mean(dim=1), y)


def sampled_softmax_loss(h: torch.Tensor, W: torch.Tensor, y: torch.Tensor, negatives: torch.Tensor,
                         log_q: tp.Optional[torch.Tensor] = None, per_sequence: bool = False) -> torch.Tensor:
    """Cross-entropy of the softmax over the positive and its ``K`` sampled negatives.

    ``negatives`` is ``(N, K)`` (own negatives per row), ``(K,)`` (shared by all rows) or, with
    ``per_sequence``, ``(B, K)``: the rows are ``B`` sequences of ``N / B`` positions each, and a
    sequence's negatives serve all of its positions (one ``(L, d) @ (d, K)`` product per sequence). A negative
    equal to the row's positive (an accidental hit) is masked out. ``log_q`` holds ``log Q`` of the
    candidates, ``(N, 1 + K)`` or ``(1 + K,)`` broadcastable, positive first: the logQ correction
    ``s - log Q`` is applied to every candidate, the positive included (as in TensorFlow's
    ``sampled_softmax_loss`` and Yi et al., 2019), so that sampling by popularity estimates the full
    softmax. Rows with ``y = -1`` are ignored.
    """
    y0 = y.clamp(min=0)
    if per_sequence or negatives.dim() == 1:
        # negatives shared by a sequence's positions or by all rows: products with the K negative
        # vectors instead of gathering N * K of them
        s_pos = (h * W[y0]).sum(dim=1, keepdim=True)  # (N, 1)
        if per_sequence:
            # negatives (B, K) of sequence b serve its L positions, rows b * L .. b * L + L - 1
            B, K = negatives.shape
            s_neg = torch.bmm(h.view(B, -1, h.shape[1]), W[negatives].transpose(1, 2)).reshape(len(y), K)  # (N, K)
            hits = (negatives.unsqueeze(1) == y0.view(B, -1, 1)).reshape(len(y), K)  # (N, K)
        else:
            s_neg = h @ W[negatives].T  # (N, K)
            hits = negatives.unsqueeze(0) == y0.unsqueeze(1)  # (N, K)
        logits = torch.cat([s_pos, s_neg], dim=1).float()  # (N, 1 + K)
    else:
        logits = sampled_logits(h, W, y0, negatives).float()  # (N, 1 + K)
        hits = negatives == y0.unsqueeze(1)  # (N, K)
    if log_q is not None:
        logits = logits - log_q
    logits = torch.cat([logits[:, :1], logits[:, 1:].masked_fill(hits, -math.inf)], dim=1)
    terms = torch.logsumexp(logits, dim=1) - logits[:, 0]  # (N,)
    return _valid_mean(terms, y)


def in_batch_negatives(y: torch.Tensor, n_negatives: int, n_items: int) -> tp.Tuple[torch.Tensor, torch.Tensor]:
    """``K`` negatives ``(K,)`` drawn (with replacement) from the positives of the batch, shared by all
    rows, and ``log Q`` of each candidate's item by its frequency among the batch's positives:
    ``(N, 1 + K)``, positive column first. Rows with ``y = -1`` are neither drawn nor counted."""
    valid = (y >= 0).float()
    n_valid = valid.sum()
    # a batch without targets draws from all rows (its loss is zero anyway)
    weights = valid + (n_valid == 0).float()
    idx = torch.multinomial(weights, n_negatives, replacement=True)
    y0 = y.clamp(min=0)
    negatives = y0[idx]  # (K,)
    # item counts among the batch's positives; index_add_ keeps it on the device (a bincount would
    # read its output size on the host)
    counts = torch.zeros(n_items, device=y.device).index_add_(0, y0, valid)
    log_freq = torch.log((counts / n_valid.clamp(min=1.0)).clamp(min=1e-12))  # (n_items,)
    log_q = torch.cat([log_freq[y0].unsqueeze(1), log_freq[negatives].expand(len(y), -1)], dim=1)  # (N, 1 + K)
    return negatives, log_q


def compute_loss(loss: str, h: torch.Tensor, W: torch.Tensor, y: torch.Tensor, n_negatives: int,
                 gbce_t: float, negative_sampling: str = "uniform",
                 popularity: tp.Optional[Popularity] = None,
                 softmax_chunk_size: tp.Optional[int] = None, n_sequences: tp.Optional[int] = None) -> torch.Tensor:
    """Dispatch on the loss name (one of :data:`LOSSES`).

    ``popularity`` is needed for ``negative_sampling="popularity"``; ``softmax_chunk_size`` forces the chunk of the full softmax.
    ``n_sequences`` (``B``) is needed for the samplings of :data:`PER_SEQUENCE_SAMPLING`, whose rows
    are all ``B * L`` positions of the batch in order (padding marked by ``y = -1``).
    """
    if loss == "softmax":
        return softmax_loss(h, W, y, softmax_chunk_size)
    if loss == "BCE":
        return bce_loss(h, W, y, n_negatives)
    if loss == "gBCE":
        return bce_loss(h, W, y, n_negatives, gbce_t)
    if loss == "sampled_softmax":
        if negative_sampling == "uniform":
            return sampled_softmax_loss(h, W, y, sample_negatives(len(y), n_negatives, W.shape[0], h.device))
        if negative_sampling == "uniform_sequence":
            # K uniform negatives per sequence, shared by its positions: (B, L, d) @ (B, d, K)
            if n_sequences is None or len(y) % n_sequences:
                raise ValueError(f"negative_sampling='uniform_sequence' needs the batch's {len(y)} rows as "
                                 f"n_sequences ({n_sequences}) sequences of equal length")
            negatives = sample_negatives(n_sequences, n_negatives, W.shape[0], h.device)
            return sampled_softmax_loss(h, W, y, negatives, per_sequence=True)
        if negative_sampling == "popularity":
            if popularity is None:
                raise ValueError("negative_sampling='popularity' needs the item popularity (Popularity)")
            negatives = sample_popular(len(y), n_negatives, popularity.cdf)
            log_q = popularity.log_q[torch.cat([y.clamp(min=0).unsqueeze(1), negatives], dim=1)]  # (N, 1 + K)
            return sampled_softmax_loss(h, W, y, negatives, log_q)
        if negative_sampling == "in_batch":
            negatives, log_q = in_batch_negatives(y, n_negatives, W.shape[0])
            return sampled_softmax_loss(h, W, y, negatives, log_q)
        raise ValueError(f"Unknown negative_sampling {negative_sampling!r}; allowed: {NEGATIVE_SAMPLING}")
    raise ValueError(f"Unknown loss {loss!r}; allowed: {LOSSES}")
