"""HSTU (Zhai et al., 2024, "Actions Speak Louder than Words"): the STU layer stack and its network.

One STU block, for input vectors ``x`` ``(B, L, d)``::

    U, V, Q, K = split(SiLU(f1(LN(x))))                       # pointwise projection
    A          = SiLU(Q K^T + rab^p + rab^t) / N  (causal)     # pointwise aggregation, no softmax
    y          = x + f2(dropout(LN(A V) * U))                  # gating, norm, output projection, residual

``N`` is ``session_max_len`` (a constant, so a history gets the same vectors whatever the padding).
``rab^p`` is a learned bias per relative position ``j - i``; ``rab^t`` a learned bias per bucket of
the time gap between the query and the key, ``floor(ln(max(1, |t_q - t_k|)) / 0.301)`` clamped to
``[0, 128]`` (times in seconds), as in the paper's code and RecTools.

Times: a sequence of ``L`` tokens comes with ``L + 1`` times ``(B, L + 1)``: the time of each token
and, after the last real one, the time of the interaction the last position predicts (in training
the target's time, at inference the request time). Query ``i`` is at the time of token ``i + 1``
and key ``j`` at the time of token ``j``, so every position is conditioned on the time of the
interaction it predicts.
"""

from __future__ import annotations

import math
import typing as tp

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import Dropout
from .item_net import SumItemNet
from .layers import TransformerLayersBase
from .transformer import N_SPECIAL, PAD

N_TIME_BUCKETS = 128
_BUCKET_DIVISOR = 0.301  # the paper's code: a bucket per factor e^0.301 (about 1.35) of the gap in seconds


def time_buckets(times: torch.Tensor, n_buckets: int = N_TIME_BUCKETS) -> torch.Tensor:
    """Bucket of the time gap between every query and key, ``(B, L + 1) -> (B, L, L)`` uint8.

    ``times`` are int64 seconds; query ``i`` is at ``times[:, i + 1]``, key ``j`` at ``times[:, j]``.
    """
    with torch.no_grad():
        gap = (times[:, 1:].unsqueeze(2) - times[:, :-1].unsqueeze(1)).abs_().clamp_(min=1)  # (B, L, L) int64
        buckets = torch.log(gap.to(torch.float32)).div_(_BUCKET_DIVISOR).floor_().clamp_(0, n_buckets)
        return buckets.to(torch.uint8)  # (B, L, L): one byte per pair, the smallest form of the time bias


def _work_dtype(q: torch.Tensor) -> torch.dtype:
    # scores and weights in float32 at least (bf16 inputs under autocast), float64 kept
    return torch.promote_types(q.dtype, torch.float32)


def _bias(pos_bias: tp.Optional[torch.Tensor], time_weights: tp.Optional[torch.Tensor],
          buckets: tp.Optional[torch.Tensor], dtype: torch.dtype) -> tp.Optional[torch.Tensor]:
    """The attention bias ``(B or 1, L, L)`` (None without relative attention)."""
    bias = None
    if time_weights is not None:
        bias = time_weights.to(dtype)[buckets.long()]  # (B, L, L)
    if pos_bias is not None:
        pos = pos_bias.to(dtype).unsqueeze(0)  # (1, L, L)
        bias = pos if bias is None else bias + pos
    return bias


def _allowed(keys_ok: torch.Tensor, causal: bool) -> torch.Tensor:
    """Which keys each query may read, ``(B, L, L)`` bool: real keys, and only earlier ones if causal."""
    L = keys_ok.shape[1]
    allowed = keys_ok.unsqueeze(1).expand(-1, L, -1)  # (B, L, L)
    if causal:
        allowed = allowed & torch.ones(L, L, dtype=torch.bool, device=keys_ok.device).tril()
    return allowed


class _PointwiseAttention(torch.autograd.Function):
    """``SiLU(Q K^T + bias) * scale`` (zero where not allowed) times ``V``, one head at a time.

    Softmax-free attention cannot use ``F.scaled_dot_product_attention`` (its kernels are built
    around the softmax), and written plainly it would keep several ``(B, H, L, L)`` tensors for the
    backward pass. Here the forward computes one head's ``(B, L, L)`` weights at a time and keeps
    only the inputs (the time bias as one-byte buckets); the backward recomputes the weights head
    by head. The largest tensors alive are a few ``(B, L, L)`` ones, whatever the number of heads.
    """

    @staticmethod
    def forward(ctx: tp.Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                pos_bias: tp.Optional[torch.Tensor], time_weights: tp.Optional[torch.Tensor],
                buckets: tp.Optional[torch.Tensor], keys_ok: torch.Tensor, causal: bool,
                scale: float) -> torch.Tensor:
        # q, k (B, H, L, a); v (B, H, L, h); pos_bias (L, L); time_weights (n_buckets + 1,);
        # buckets (B, L, L) uint8; keys_ok (B, L) bool
        dtype = _work_dtype(q)
        bias = _bias(pos_bias, time_weights, buckets, dtype)
        allowed = _allowed(keys_ok, causal)
        heads = []
        for h in range(q.shape[1]):
            s = torch.matmul(q[:, h], k[:, h].transpose(1, 2)).to(dtype)  # (B, L, L)
            if bias is not None:
                s = s + bias
            w = torch.where(allowed, F.silu(s) * scale, 0.0)
            heads.append(torch.matmul(w.to(v.dtype), v[:, h]))  # (B, L, h)
        ctx.save_for_backward(q, k, v, pos_bias, time_weights, buckets, keys_ok)
        ctx.causal, ctx.scale = causal, scale
        return torch.stack(heads, dim=1)  # (B, H, L, h)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: tp.Any, grad: torch.Tensor) -> tp.Tuple[tp.Optional[torch.Tensor], ...]:
        q, k, v, pos_bias, time_weights, buckets, keys_ok = ctx.saved_tensors
        dtype = _work_dtype(q)
        bias = _bias(pos_bias, time_weights, buckets, dtype)
        allowed = _allowed(keys_ok, ctx.causal)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        need_bias = bias is not None and (ctx.needs_input_grad[3] or ctx.needs_input_grad[4])
        dbias = torch.zeros(bias.shape if need_bias else (0,), dtype=dtype, device=q.device)
        for h in range(q.shape[1]):
            s = torch.matmul(q[:, h], k[:, h].transpose(1, 2)).to(dtype)  # (B, L, L)
            if bias is not None:
                s = s + bias
            sig = torch.sigmoid(s)
            w = torch.where(allowed, s * sig * ctx.scale, 0.0)
            g = grad[:, h]  # (B, L, h)
            dv[:, h] = torch.matmul(w.to(g.dtype).transpose(1, 2), g)
            dw = torch.matmul(g, v[:, h].transpose(1, 2)).to(dtype)  # (B, L, L)
            # d SiLU(s) / ds = sig (1 + s (1 - sig))
            ds = torch.where(allowed, dw * (sig * (1 + s * (1 - sig))) * ctx.scale, 0.0)
            dq[:, h] = torch.matmul(ds.to(q.dtype), k[:, h])
            dk[:, h] = torch.matmul(ds.to(k.dtype).transpose(1, 2), q[:, h])
            if need_bias:
                dbias += ds if dbias.shape[0] == ds.shape[0] else ds.sum(dim=0, keepdim=True)  # pos only: (1, L, L)
        d_pos = d_time = None
        if need_bias and pos_bias is not None and ctx.needs_input_grad[3]:
            d_pos = dbias.sum(dim=0).to(pos_bias.dtype)  # (L, L)
        if need_bias and time_weights is not None and ctx.needs_input_grad[4]:
            d_time = torch.zeros(time_weights.shape, dtype=dtype, device=q.device)
            d_time.index_add_(0, buckets.reshape(-1).long(), dbias.reshape(-1))
            d_time = d_time.to(time_weights.dtype)
        return dq, dk, dv, d_pos, d_time, None, None, None, None


def pointwise_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pos_bias: tp.Optional[torch.Tensor],
                        time_weights: tp.Optional[torch.Tensor], buckets: tp.Optional[torch.Tensor],
                        keys_ok: torch.Tensor, causal: bool, scale: float) -> torch.Tensor:
    """HSTU's attention ``(SiLU(Q K^T + rab) * scale, masked) V``: ``(B, H, L, h)``.

    ``q``, ``k`` ``(B, H, L, a)``, ``v`` ``(B, H, L, h)``; ``pos_bias`` ``(L, L)`` or None;
    ``time_weights`` ``(n_buckets + 1,)`` indexed by ``buckets`` ``(B, L, L)`` (both or neither);
    ``keys_ok`` ``(B, L)`` marks the real tokens. Memory: see :class:`_PointwiseAttention`.
    """
    return _PointwiseAttention.apply(q, k, v, pos_bias, time_weights, buckets, keys_ok, causal, scale)


class RelativeAttentionBias(nn.Module):
    """Learned relative biases of one STU block: per relative position ``j - i`` (``2 N - 1``
    weights) and per time-gap bucket (``n_buckets + 1`` weights), as in RecTools."""

    def __init__(self, max_len: int, relative_time_attention: bool, relative_pos_attention: bool,
                 n_buckets: int = N_TIME_BUCKETS) -> None:
        super().__init__()
        self.max_len = max_len
        self.time_weights = nn.Parameter(torch.empty(n_buckets + 1).normal_(0, 0.02)) if relative_time_attention \
            else None
        self.pos_weights = nn.Parameter(torch.empty(2 * max_len - 1).normal_(0, 0.02)) if relative_pos_attention \
            else None

    def position_bias(self, L: int) -> tp.Optional[torch.Tensor]:
        """``(L, L)``: entry ``(i, j)`` is the weight of offset ``j - i``; None without positions."""
        if self.pos_weights is None:
            return None
        offsets = torch.arange(L, device=self.pos_weights.device)
        return self.pos_weights[self.max_len - 1 + offsets.unsqueeze(0) - offsets.unsqueeze(1)]

    def position_row(self, pos: torch.Tensor, L: int) -> tp.Optional[torch.Tensor]:
        """Row ``pos[b]`` of :meth:`position_bias` for every sequence, ``(B, L)``."""
        if self.pos_weights is None:
            return None
        offsets = torch.arange(L, device=pos.device)
        return self.pos_weights[self.max_len - 1 + offsets.unsqueeze(0) - pos.unsqueeze(1)]


class STUBlock(nn.Module):
    """One STU block (see the module docstring), with its relative attention bias."""

    def __init__(self, n_factors: int, n_heads: int, linear_hidden_dim: int, attention_dim: int, max_len: int,
                 relative_time_attention: bool, relative_pos_attention: bool, dropout: float,
                 attn_dropout: float, epsilon: float) -> None:
        super().__init__()
        self.n_heads, self.hidden, self.att = n_heads, linear_hidden_dim, attention_dim
        self.scale = 1.0 / max_len
        self.norm_in = nn.LayerNorm(n_factors, eps=epsilon)
        self.uvqk = nn.Linear(n_factors, n_heads * (2 * linear_hidden_dim + 2 * attention_dim), bias=False)
        self.norm_attn = nn.LayerNorm(n_heads * linear_hidden_dim, eps=epsilon)
        self.out = nn.Linear(n_heads * linear_hidden_dim, n_factors)
        self.drop_attn = Dropout(attn_dropout)
        self.drop = Dropout(dropout)
        self.rab = RelativeAttentionBias(max_len, relative_time_attention, relative_pos_attention)

    def _project(self, x: torch.Tensor, valid: torch.Tensor) -> tp.Tuple[torch.Tensor, ...]:
        # (B, L, d) -> U, V (B, L, H * h), Q, K (B, L, H * a)
        uvqk = F.silu(self.uvqk(self.norm_in(x) * valid.unsqueeze(-1)))
        Hh, Ha = self.n_heads * self.hidden, self.n_heads * self.att
        return uvqk.split([Hh, Hh, Ha, Ha], dim=-1)

    def _heads(self, t: torch.Tensor, size: int) -> torch.Tensor:
        B, L, _ = t.shape
        return t.view(B, L, self.n_heads, size).transpose(1, 2)  # (B, H, L, size)

    def _finish(self, x: torch.Tensor, u: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        # attn (..., H * h) -> x + f2(dropout(LN(attn) * U))
        return x + self.out(self.drop(self.norm_attn(self.drop_attn(attn)) * u))

    def forward(self, x: torch.Tensor, valid: torch.Tensor, is_causal: bool,
                buckets: tp.Optional[torch.Tensor]) -> torch.Tensor:
        B, L, _ = x.shape
        u, v, q, k = self._project(x, valid)
        time_weights = self.rab.time_weights if buckets is not None else None
        attn = pointwise_attention(self._heads(q, self.att), self._heads(k, self.att), self._heads(v, self.hidden),
                                   self.rab.position_bias(L), time_weights, buckets if time_weights is not None
                                   else None, valid, is_causal, self.scale)  # (B, H, L, h)
        y = self._finish(x, u, attn.transpose(1, 2).reshape(B, L, -1))
        return y * valid.unsqueeze(-1)

    def forward_one(self, x: torch.Tensor, valid: torch.Tensor, pos: torch.Tensor, is_causal: bool,
                    buckets: tp.Optional[torch.Tensor]) -> torch.Tensor:
        """Output ``(B, d)`` of the block at position ``pos[b]`` only (inference: no dropout)."""
        B, L, _ = x.shape
        rows = torch.arange(B, device=x.device)
        u, v, q, k = self._project(x, valid)
        q1 = q[rows, pos].view(B, self.n_heads, 1, self.att)  # (B, H, 1, a)
        dtype = _work_dtype(q)
        s = torch.matmul(q1, self._heads(k, self.att).transpose(2, 3)).squeeze(2).to(dtype)  # (B, H, L)
        pos_row = self.rab.position_row(pos, L)  # (B, L)
        if pos_row is not None:
            s = s + pos_row.to(dtype).unsqueeze(1)
        if buckets is not None and self.rab.time_weights is not None:
            s = s + self.rab.time_weights.to(dtype)[buckets[rows, pos].long()].unsqueeze(1)
        allowed = valid.clone()
        if is_causal:
            allowed &= torch.arange(L, device=x.device).unsqueeze(0) <= pos.unsqueeze(1)
        w = torch.where(allowed.unsqueeze(1), F.silu(s) * self.scale, 0.0)  # (B, H, L)
        attn = torch.matmul(w.unsqueeze(2).to(v.dtype), self._heads(v, self.hidden)).reshape(B, -1)  # (B, H * h)
        return self._finish(x[rows, pos], u[rows, pos], attn)


class STULayers(TransformerLayersBase):
    """HSTU's layer stack: ``n_blocks`` STU blocks (RecTools' name; no final normalisation, as there).

    Not interchangeable with the SASRec/BERT4Rec stacks: it needs the padding mask, the time-gap
    buckets and its own sizes (``session_max_len``, the relative-attention switches), so it is built
    and called by :class:`HSTUNet` only. ``linear_hidden_dim`` (U, V) and ``attention_dim`` (Q, K)
    default to ``n_factors // n_heads``, as in RecTools.
    """

    #: the options of HSTUModel's ``transformer_layers_kwargs`` (ranges checked by the model)
    options: tp.ClassVar[tp.Dict[str, tp.Any]] = {"attn_dropout_rate": 0.0, "epsilon": 1e-6}

    def __init__(self, n_blocks: int, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int = 1,
                 activation: str = "silu", *, session_max_len: int, relative_time_attention: bool,
                 relative_pos_attention: bool, attn_dropout_rate: float = 0.0, epsilon: float = 1e-6,
                 linear_hidden_dim: tp.Optional[int] = None, attention_dim: tp.Optional[int] = None) -> None:
        super().__init__(n_blocks, n_factors, n_heads, dropout, ff_multiplier, activation)
        head = n_factors // n_heads
        self.blocks = nn.ModuleList(
            STUBlock(n_factors, n_heads, linear_hidden_dim or head, attention_dim or head, session_max_len,
                     relative_time_attention, relative_pos_attention, dropout, attn_dropout_rate, epsilon)
            for _ in range(n_blocks))

    def forward(self, x: torch.Tensor, valid: torch.Tensor, is_causal: bool,  # type: ignore[override]
                buckets: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(B, L, d) -> (B, L, d)``; ``valid`` ``(B, L)`` real tokens, ``buckets`` ``(B, L, L)`` or None."""
        for block in self.blocks:
            x = block(x, valid, is_causal, buckets)
        return x

    def forward_last(self, x: torch.Tensor, valid: torch.Tensor, pos: torch.Tensor,  # type: ignore[override]
                     is_causal: bool, buckets: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        """``forward(x, valid, is_causal, buckets)[b, pos[b]]``, ``(B, d)``: the last block computes
        only that query."""
        if len(self.blocks) == 0:
            return x[torch.arange(len(x), device=x.device), pos]
        for block in self.blocks[:-1]:
            x = block(x, valid, is_causal, buckets)
        return self.blocks[-1].forward_one(x, valid, pos, is_causal, buckets)


class HSTUNet(nn.Module):
    """Item table + positional embeddings + the STU stack: tokens (and times) to sequence vectors.

    The same interface as :class:`~seqrec.nn.transformer.TransformerNet` (right-padded tokens,
    special tokens, positions counted back from the newest item), with ``times`` ``(B, L + 1)``
    int64 seconds (see the module docstring) after the item table in :meth:`encode` and
    :meth:`last_vectors`; they are required with ``relative_time_attention`` and unused otherwise.
    Item vectors are scaled by ``sqrt(d)`` before the positions are added (``use_scale_factor``,
    RecTools' HSTU default).
    """

    def __init__(self, item_net: SumItemNet, n_factors: int, n_blocks: int, n_heads: int, dropout: float,
                 max_len: int, use_pos_emb: bool = True, use_causal_attn: bool = True,
                 relative_time_attention: bool = True, relative_pos_attention: bool = True,
                 use_scale_factor: bool = True, attn_dropout_rate: float = 0.0, epsilon: float = 1e-6,
                 layers_type: tp.Type[STULayers] = STULayers) -> None:
        super().__init__()
        self.item_net = item_net
        self.n_items = item_net.n_items
        self.n_factors = n_factors
        self.max_len = max_len
        self.use_causal_attn = use_causal_attn
        self.relative_time_attention = relative_time_attention
        self.input_scale = math.sqrt(n_factors) if use_scale_factor else 1.0
        self.special = nn.Parameter(torch.zeros(N_SPECIAL, n_factors))
        self.pos_emb = nn.Embedding(max_len, n_factors) if use_pos_emb else None
        self.emb_drop = Dropout(dropout)
        self.layers = layers_type(n_blocks, n_factors, n_heads, dropout, session_max_len=max_len,
                                  relative_time_attention=relative_time_attention,
                                  relative_pos_attention=relative_pos_attention,
                                  attn_dropout_rate=attn_dropout_rate, epsilon=epsilon)
        self.reset_parameters()

    @property
    def blocks(self) -> tp.Sequence[nn.Module]:
        return self.layers.blocks

    def reset_parameters(self) -> None:
        # Xavier-normal on every matrix, as the other seqrec networks (and RecTools' HSTU); the
        # relative-bias vectors keep their N(0, 0.02) start, LayerNorms identity, biases zero
        for name, p in self.named_parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def item_table(self) -> torch.Tensor:
        """Embeddings of all catalog items, ``(n_items, d)``."""
        return self.item_net()

    def _inputs(self, tokens: torch.Tensor, item_table: torch.Tensor, times: tp.Optional[torch.Tensor]
                ) -> tp.Tuple[torch.Tensor, torch.Tensor, tp.Optional[torch.Tensor]]:
        """Input vectors ``(B, L, d)``, the real-token mask ``(B, L)`` and the time buckets (or None)."""
        B, L = tokens.shape
        if L > self.max_len:
            raise ValueError(f"sequences of {L} tokens are longer than the network's max_len {self.max_len}")
        buckets = None
        if self.relative_time_attention:
            if times is None or times.shape != (B, L + 1):
                raise ValueError(f"relative_time_attention needs times of shape {(B, L + 1)} (the time of each "
                                 f"token, then the time it predicts), got "
                                 f"{None if times is None else tuple(times.shape)}")
            buckets = time_buckets(times)  # (B, L, L), shared by the blocks
        valid = tokens != PAD  # (B, L)
        vocab = torch.cat([self.special, item_table], dim=0)  # (N_SPECIAL + n_items, d)
        x = F.embedding(tokens, vocab) * self.input_scale  # (B, L, d)
        if self.pos_emb is not None:
            lengths = valid.sum(dim=1, keepdim=True)  # (B, 1)
            positions = (lengths - 1 - torch.arange(L, device=tokens.device)).clamp(min=0)  # (B, L)
            x = x + self.pos_emb(positions)
        return self.emb_drop(x) * valid.unsqueeze(-1), valid, buckets

    def encode(self, tokens: torch.Tensor, item_table: torch.Tensor,
               times: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        """Sequence vectors ``(B, L, d)`` of right-padded ``tokens`` ``(B, L)`` (and ``times`` ``(B, L + 1)``).

        With causal attention, vector ``t`` depends only on tokens ``0..t`` and times ``0..t + 1``.
        """
        x, valid, buckets = self._inputs(tokens, item_table, times)
        return self.layers(x, valid, self.use_causal_attn, buckets)

    def last_vectors(self, tokens: torch.Tensor, item_table: torch.Tensor,
                     times: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        """Vector at the last real token of each sequence, ``(B, d)``: ``encode(...)[b, last_b]``.

        In eval mode the trailing padding columns no sequence uses are cut, and the last block
        computes only the one query per sequence.
        """
        lengths = (tokens != PAD).sum(dim=1)  # (B,)
        last = (lengths - 1).clamp(min=0)  # (B,)
        rows = torch.arange(len(tokens), device=tokens.device)
        if self.training:
            return self.encode(tokens, item_table, times)[rows, last]
        longest = max(1, int(lengths.max())) if len(tokens) else 1
        tokens = tokens[:, :longest]  # right padding: the cut columns are padding only
        if times is not None:
            times = times[:, :longest + 1]
        x, valid, buckets = self._inputs(tokens, item_table, times)
        return self.layers.forward_last(x, valid, last, self.use_causal_attn, buckets)
