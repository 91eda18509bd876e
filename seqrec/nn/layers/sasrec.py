"""The block of the original SASRec code (Kang & McAuley, 2018): the query comes from the
LayerNorm of the input, keys and values from the raw input, the attention output is added to the
normalised query; then a LayerNorm, and the point-wise feed-forward added to its own
(normalised) input; a final LayerNorm (RecTools' SASRec stack, and SASRecModel's default)."""

from __future__ import annotations

import typing as tp

import torch
from torch import nn

from .base import _BlockStack, _given, _rows
from .preln import PreLNBlock


class SASRecBlock(PreLNBlock):
    """The original SASRec block: ``q = LN(x)``, ``y = q + attn(q; keys and values from x)``,
    ``z = LN(y)``, output ``z + drop(ff(z))``. The same modules as the pre-LN block (so the same
    parameters), wired differently."""

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool,
                n_pad: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        q = self.ln_attn(x)
        # n_pad only when given: an attention module of a subclass may not take it
        z = self.ln_ff(q + self.attn(q, attn_mask, is_causal, kv=x, **_given(n_pad)))
        return z + self.drop(self.ff(z))

    def forward_one(self, x: torch.Tensor, pos: torch.Tensor, keys: tp.Optional[torch.Tensor],
                    n_pad: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        """Output ``(B, D)`` of the block at position ``pos[b]`` only (inference: no dropout);
        ``n_pad``: padding keys in front (``_BlockStack.forward_last``)."""
        q = self.ln_attn(_rows(x, pos))
        z = self.ln_ff(q + self.attn.forward_one(q, x, keys, **_given(n_pad)))
        return z + self.ff(z)


class SASRecTransformerLayers(_BlockStack):
    """Blocks of the original SASRec code and a final LayerNorm (SASRec's default in RecTools).
    With left padding the padding rows are zero at the input of every block, as in RecTools."""

    zero_padding_rows = True

    def __init__(self, n_blocks: int, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int = 1,
                 activation: str = "relu") -> None:
        super().__init__(n_blocks, n_factors, n_heads, dropout, ff_multiplier, activation)
        self.blocks = nn.ModuleList(SASRecBlock(n_factors, n_heads, dropout, ff_multiplier, activation)
                                    for _ in range(n_blocks))
        self.ln_out = nn.LayerNorm(n_factors, eps=1e-8)
