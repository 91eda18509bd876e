"""Every training loss of seqrec, in one place, in the papers' notation.

All losses take the sequence vectors at the positions that have a target, ``h`` ``(N, d)``, the
item table ``W`` ``(n_items, d)`` and the targets ``y`` ``(N,)`` (internal item ids); the score of
item ``i`` is ``s_i = h . W_i``. Padding positions never reach a loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("softmax", "BCE", "gBCE")


def softmax_loss(h: torch.Tensor, W: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the softmax over the full catalog."""
    logits = h @ W.T  # (N, n_items)
    return F.cross_entropy(logits, y)


def sample_negatives(n: int, n_negatives: int, n_items: int, device: torch.device) -> torch.Tensor:
    """Item ids ``(n, n_negatives)`` drawn uniformly from the catalog, on ``device``."""
    return torch.randint(0, n_items, (n, n_negatives), device=device)


def sampled_logits(h: torch.Tensor, W: torch.Tensor, y: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Scores ``(N, 1 + K)`` of the positive (column 0) and the ``K`` negatives of each row."""
    candidates = torch.cat([y.unsqueeze(1), negatives], dim=1)  # (N, 1 + K)
    N, C = candidates.shape
    n_items, d = W.shape
    if n_items <= C * d:
        # small catalog: one matmul and a gather beat gathering N * (1 + K) embeddings
        return torch.gather(h @ W.T, 1, candidates)  # (N, n_items) -> (N, 1 + K)
    return torch.einsum("nd,nkd->nk", h, W[candidates])  # (N, 1 + K, d) -> (N, 1 + K)


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
    logits = sampled_logits(h, W, y, negatives)  # (N, 1 + K)
    s_pos, s_neg = logits[:, :1], logits[:, 1:]
    if gbce_t != 0.0:
        s_pos = gbce_positive_logits(s_pos, gbce_beta(negatives.shape[1], n_items, gbce_t))
    # -log sigmoid(s+) for positives, -log(1 - sigmoid(s-)) = softplus(s-) for negatives
    terms = torch.cat([F.softplus(-s_pos), F.softplus(s_neg)], dim=1)  # (N, 1 + K)
    return terms.mean()


def compute_loss(loss: str, h: torch.Tensor, W: torch.Tensor, y: torch.Tensor, n_negatives: int,
                 gbce_t: float) -> torch.Tensor:
    """Dispatch on the loss name (one of :data:`LOSSES`)."""
    if loss == "softmax":
        return softmax_loss(h, W, y)
    if loss == "BCE":
        return bce_loss(h, W, y, n_negatives)
    if loss == "gBCE":
        return bce_loss(h, W, y, n_negatives, gbce_t)
    raise ValueError(f"Unknown loss {loss!r}; allowed: {LOSSES}")
