"""Transformer layer stacks: the seam between the embeddings and the scored sequence vectors.

A layer stack maps input vectors ``(B, L, d)`` (token + position, dropout, zero at padding) to
the sequence vectors ``(B, L, d)`` that are scored against the item table, final normalisation
included. Two stacks come with seqrec, under RecTools' names:

- :class:`PreLNTransformerLayers`: the standard pre-LayerNorm block (``x + attn(LN(x))``, then
  ``x + ff(LN(x))``, dropout on both residual branches) and a final LayerNorm.
- :class:`SASRecTransformerLayers`: the block of the original SASRec code (Kang & McAuley, 2018):
  the query comes from the LayerNorm of the input, keys and values from the raw input, the
  attention output is added to the normalised query; then a LayerNorm, and the point-wise
  feed-forward added to its own (normalised) input; a final LayerNorm.

Every stack is built from ``(n_blocks, n_factors, n_heads, dropout, ff_multiplier, activation)``
and implements ``forward(x, attn_mask, is_causal)``. ``forward_last(x, pos, attn_mask, is_causal,
keys)`` returns the output at one position per sequence; the base class computes it from the
full ``forward`` (correct for any stack), the two stacks here compute only that position in their
last block (the inference fast path of :meth:`TransformerNet.last_vectors`).
"""

from __future__ import annotations

import typing as tp

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


def _rows(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """``x[b, pos[b]]`` for every sequence: ``(B, L, D) -> (B, D)``."""
    return x[torch.arange(len(x), device=x.device), pos]


class SelfAttention(nn.Module):
    """Multi-head attention through ``F.scaled_dot_product_attention``; queries and keys/values may
    come from different inputs of the same positions (the SASRec block)."""

    def __init__(self, n_factors: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(n_factors, 3 * n_factors)
        self.out = nn.Linear(n_factors, n_factors)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        # (B, L, D) -> (B, H, L, D / H)
        B, L, D = t.shape
        return t.view(B, L, self.n_heads, D // self.n_heads).transpose(1, 2)

    def project(self, x: torch.Tensor, kv: tp.Optional[torch.Tensor] = None
                ) -> tp.Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries from ``x``, keys and values from ``kv`` (default ``x``), each ``(B, H, L, D / H)``."""
        D = x.shape[-1]
        if kv is None:
            q, k, v = self.qkv(x).split(D, dim=-1)  # 3 x (B, L, D)
        else:
            w, b = self.qkv.weight, self.qkv.bias
            q = F.linear(x, w[:D], b[:D])
            k, v = F.linear(kv, w[D:], b[D:]).split(D, dim=-1)
        return self._heads(q), self._heads(k), self._heads(v)

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool,
                kv: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.project(x, kv)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, L, D / H)
        return self.out(y.transpose(1, 2).reshape(B, L, D))

    def forward_one(self, q_in: torch.Tensor, kv: torch.Tensor, keys: tp.Optional[torch.Tensor]) -> torch.Tensor:
        """Attention output ``(B, D)`` of one query vector ``q_in`` ``(B, D)`` per sequence against
        the keys/values of ``kv`` ``(B, L, D)`` allowed by ``keys`` ``(B, 1, 1, L)`` (None: all)."""
        B, L, D = kv.shape
        H = self.n_heads
        w, b = self.qkv.weight, self.qkv.bias
        q = F.linear(q_in, w[:D], b[:D]).view(B, H, 1, D // H)
        k, v = (self._heads(t) for t in F.linear(kv, w[D:], b[D:]).split(D, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)  # (B, H, 1, D / H)
        return self.out(y.reshape(B, D))


def feed_forward(n_factors: int, ff_multiplier: int, activation: str, dropout: float) -> nn.Sequential:
    """Point-wise feed-forward ``d -> ff_multiplier * d -> d`` with dropout after the activation."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r}; allowed: {tuple(ACTIVATIONS)}")
    return nn.Sequential(
        nn.Linear(n_factors, ff_multiplier * n_factors),
        ACTIVATIONS[activation](),
        nn.Dropout(dropout),
        nn.Linear(ff_multiplier * n_factors, n_factors),
    )


class TransformerLayersBase(nn.Module):
    """A stack of transformer blocks with its final normalisation: ``(B, L, d) -> (B, L, d)``.

    Subclasses take ``(n_blocks, n_factors, n_heads, dropout, ff_multiplier, activation)`` and
    implement :meth:`forward`. :meth:`forward_last` may be overridden with a cheaper computation of
    one position per sequence; the default runs the full stack and picks the rows.
    """

    def __init__(self, n_blocks: int, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int = 1,
                 activation: str = "relu") -> None:
        super().__init__()
        self.n_blocks = n_blocks
        self.n_factors = n_factors

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool) -> torch.Tensor:
        """Sequence vectors ``(B, L, d)`` of the input vectors ``x`` ``(B, L, d)``; ``attn_mask``
        ``(B, 1, L, L)`` boolean (True = may attend) or None, ``is_causal`` for causal attention."""
        raise NotImplementedError

    def forward_last(self, x: torch.Tensor, pos: torch.Tensor, attn_mask: tp.Optional[torch.Tensor],
                     is_causal: bool, keys: tp.Optional[torch.Tensor]) -> torch.Tensor:
        """``forward(x, attn_mask, is_causal)[b, pos[b]]``, ``(B, d)``, in eval mode.

        ``keys`` ``(B, 1, 1, L)`` (or None) are the keys the query at ``pos`` may attend to, for
        stacks that compute only that query in their last block; this fallback ignores it.
        """
        return _rows(self.forward(x, attn_mask, is_causal), pos)


class _BlockStack(TransformerLayersBase):
    """Blocks with ``forward(x, attn_mask, is_causal)`` and ``forward_one(x, pos, keys)`` (the
    output at one position), then ``ln_out``."""

    blocks: nn.ModuleList
    ln_out: nn.LayerNorm

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, attn_mask, is_causal)
        return self.ln_out(x)

    def forward_last(self, x: torch.Tensor, pos: torch.Tensor, attn_mask: tp.Optional[torch.Tensor],
                     is_causal: bool, keys: tp.Optional[torch.Tensor]) -> torch.Tensor:
        if len(self.blocks) == 0:
            return self.ln_out(_rows(x, pos))
        for block in self.blocks[:-1]:
            x = block(x, attn_mask, is_causal)
        return self.ln_out(self.blocks[-1].forward_one(x, pos, keys))


class PreLNBlock(nn.Module):
    """Pre-LayerNorm block: ``x + drop(attn(LN(x)))``, then ``x + drop(ff(LN(x)))``."""

    def __init__(self, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int, activation: str) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(n_factors)
        self.attn = SelfAttention(n_factors, n_heads, dropout)
        self.ln_ff = nn.LayerNorm(n_factors)
        self.ff = feed_forward(n_factors, ff_multiplier, activation, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_attn(x), attn_mask, is_causal))
        return x + self.drop(self.ff(self.ln_ff(x)))

    def forward_one(self, x: torch.Tensor, pos: torch.Tensor, keys: tp.Optional[torch.Tensor]) -> torch.Tensor:
        """Output ``(B, D)`` of the block at position ``pos[b]`` only (inference: no dropout)."""
        h = self.ln_attn(x)
        y = _rows(x, pos) + self.attn.forward_one(_rows(h, pos), h, keys)
        return y + self.ff(self.ln_ff(y))


class PreLNTransformerLayers(_BlockStack):
    """Standard pre-LayerNorm blocks and a final LayerNorm (BERT4Rec's default in seqrec and RecTools)."""

    def __init__(self, n_blocks: int, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int = 1,
                 activation: str = "relu") -> None:
        super().__init__(n_blocks, n_factors, n_heads, dropout, ff_multiplier, activation)
        self.blocks = nn.ModuleList(PreLNBlock(n_factors, n_heads, dropout, ff_multiplier, activation)
                                    for _ in range(n_blocks))
        self.ln_out = nn.LayerNorm(n_factors)


class SASRecBlock(nn.Module):
    """The original SASRec block: ``q = LN(x)``, ``y = q + attn(q; keys and values from x)``,
    ``z = LN(y)``, output ``z + drop(ff(z))``."""

    def __init__(self, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int, activation: str) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(n_factors)
        self.attn = SelfAttention(n_factors, n_heads, dropout)
        self.ln_ff = nn.LayerNorm(n_factors)
        self.ff = feed_forward(n_factors, ff_multiplier, activation, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool) -> torch.Tensor:
        q = self.ln_attn(x)
        z = self.ln_ff(q + self.attn(q, attn_mask, is_causal, kv=x))
        return z + self.drop(self.ff(z))

    def forward_one(self, x: torch.Tensor, pos: torch.Tensor, keys: tp.Optional[torch.Tensor]) -> torch.Tensor:
        """Output ``(B, D)`` of the block at position ``pos[b]`` only (inference: no dropout)."""
        q = self.ln_attn(_rows(x, pos))
        z = self.ln_ff(q + self.attn.forward_one(q, x, keys))
        return z + self.ff(z)


class SASRecTransformerLayers(_BlockStack):
    """Blocks of the original SASRec code and a final LayerNorm (SASRec's default in RecTools)."""

    def __init__(self, n_blocks: int, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int = 1,
                 activation: str = "relu") -> None:
        super().__init__(n_blocks, n_factors, n_heads, dropout, ff_multiplier, activation)
        self.blocks = nn.ModuleList(SASRecBlock(n_factors, n_heads, dropout, ff_multiplier, activation)
                                    for _ in range(n_blocks))
        self.ln_out = nn.LayerNorm(n_factors, eps=1e-8)


LAYER_TYPES: tp.Tuple[tp.Type[TransformerLayersBase], ...] = (PreLNTransformerLayers, SASRecTransformerLayers)


def check_layers_type(value: tp.Any, name: str = "transformer_layers_type") -> None:
    """ValueError unless ``value`` is a subclass of :class:`TransformerLayersBase`."""
    if not (isinstance(value, type) and issubclass(value, TransformerLayersBase)):
        allowed = ", ".join(t.__name__ for t in LAYER_TYPES)
        raise ValueError(f"{name} must be a TransformerLayersBase subclass ({allowed} or your own), got {value!r}")
