"""The standard pre-LayerNorm block: ``x + attn(LN(x))``, then ``x + ff(LN(x))``, dropout on both
residual branches; a final LayerNorm (BERT4Rec's stack in RecTools, BERT4Rec's default in seqrec and the SASRec presets' block)."""

from __future__ import annotations

import typing as tp

import torch
from torch import nn

from ..dropout import Dropout
from .base import SelfAttention, _BlockStack, _rows, feed_forward


class PreLNBlock(nn.Module):
    """Pre-LayerNorm block: ``x + drop(attn(LN(x)))``, then ``x + drop(ff(LN(x)))``."""

    def __init__(self, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int, activation: str) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(n_factors)
        self.attn = SelfAttention(n_factors, n_heads, dropout)
        self.ln_ff = nn.LayerNorm(n_factors)
        self.ff = feed_forward(n_factors, ff_multiplier, activation, dropout)
        self.drop = Dropout(dropout)

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
