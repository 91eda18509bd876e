"""LiGR blocks (Borisyuk et al., "From Features to Transformers: Redefining Ranking for Scalable
Impact", 2025), the layers of eSASRec (Tikhonovich et al., RecSys 2025) and of RecTools'
``LiGRLayers``.

Each block is pre-LayerNorm with sigmoid-gated residual connections, the gate computed from the
block's input (the residual stream):

    x = x + sigmoid(G_a x) * drop(attn(LN_a(x)))
    x = x + sigmoid(G_f x) * drop(ff(LN_f(x)))

The feed-forward is SwiGLU without bias by default, ``W_2 drop(SiLU(W_1 h) * W_3 h)``, of width
``ff_multiplier * d`` (4 by default, whatever the model's own feed-forward). As in RecTools, the
stack has no final normalisation: the last block's residual stream is the sequence vector.
"""

from __future__ import annotations

import typing as tp

import torch
import torch.nn.functional as F
from torch import nn

from ..dropout import Dropout
from .base import SelfAttention, _normed_prefix, _PrefixBlockStack, _rows, feed_forward


class SwiGLU(nn.Module):
    """``W_2 drop(SiLU(W_1 h) * W_3 h)``: ``d -> hidden -> d``."""

    def __init__(self, n_factors: int, hidden: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.w1 = nn.Linear(n_factors, hidden, bias=bias)
        self.w3 = nn.Linear(n_factors, hidden, bias=bias)
        self.w2 = nn.Linear(hidden, n_factors, bias=bias)
        self.drop = Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.w2(self.drop(F.silu(self.w1(h)) * self.w3(h)))  # (..., d)


class LiGRBlock(nn.Module):
    """One LiGR block: gated pre-LN attention, then gated pre-LN feed-forward."""

    def __init__(self, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int, activation: str,
                 bias_in_ff: bool, gating: bool) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(n_factors)
        self.attn = SelfAttention(n_factors, n_heads, dropout)
        self.ln_ff = nn.LayerNorm(n_factors)
        if activation == "swiglu":
            self.ff: nn.Module = SwiGLU(n_factors, ff_multiplier * n_factors, dropout, bias_in_ff)
        else:
            self.ff = feed_forward(n_factors, ff_multiplier, activation, dropout, bias=bias_in_ff)
        self.gate_attn = nn.Linear(n_factors, n_factors) if gating else None
        self.gate_ff = nn.Linear(n_factors, n_factors) if gating else None
        self.drop = Dropout(dropout)

    @staticmethod
    def _gated(x: torch.Tensor, branch: torch.Tensor, gate: tp.Optional[nn.Linear]) -> torch.Tensor:
        # the gate reads the residual stream x, not its normalisation
        return x + (branch if gate is None else torch.sigmoid(gate(x)) * branch)

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool,
                prefix: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        """``prefix`` ``(1, P, d)``: block inputs of key rows in front of every sequence's (inference)."""
        shared = _normed_prefix(self.ln_attn, prefix)
        # (B, L, d)
        x = self._gated(x, self.drop(self.attn(self.ln_attn(x), attn_mask, is_causal, **shared)), self.gate_attn)
        return self._gated(x, self.drop(self.ff(self.ln_ff(x))), self.gate_ff)

    def forward_one(self, x: torch.Tensor, pos: torch.Tensor, keys: tp.Optional[torch.Tensor],
                    prefix: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        """Output ``(B, D)`` of the block at position ``pos[b]`` only (inference: no dropout)."""
        h = self.ln_attn(x)  # (B, L, D): every position is a key
        shared = _normed_prefix(self.ln_attn, prefix)
        # (B, D)
        y = self._gated(_rows(x, pos), self.attn.forward_one(_rows(h, pos), h, keys, **shared), self.gate_attn)
        return self._gated(y, self.ff(self.ln_ff(y)), self.gate_ff)


class LiGRLayers(_PrefixBlockStack):
    """LiGR blocks (eSASRec's layers; RecTools' ``LiGRLayers``), no final normalisation.

    Options (a model's ``transformer_layers_kwargs``): ``ff_multiplier`` (4; RecTools:
    ``ff_factors_multiplier``), ``activation`` ("swiglu", "relu" or "gelu"; RecTools:
    ``ff_activation``), ``bias_in_ff`` (False) and ``gating`` (True; False gives plain residual
    connections, an ablation).
    """

    options = {"ff_multiplier": 4, "activation": "swiglu", "bias_in_ff": False, "gating": True}
    activations = ("swiglu", "relu", "gelu")

    def __init__(self, n_blocks: int, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int = 4,
                 activation: str = "swiglu", bias_in_ff: bool = False, gating: bool = True) -> None:
        super().__init__(n_blocks, n_factors, n_heads, dropout, ff_multiplier, activation)
        if activation not in self.activations:
            raise ValueError(f"Unknown activation {activation!r} for LiGRLayers; allowed: {self.activations}")
        self.blocks = nn.ModuleList(
            LiGRBlock(n_factors, n_heads, dropout, ff_multiplier, activation, bias_in_ff, gating)
            for _ in range(n_blocks)
        )
        self.ln_out = nn.Identity()
