"""Pre-LayerNorm blocks: ``x + attn(LN(x))``, then ``x + ff(LN(x))``, dropout on both residual
branches. As RecTools' ``PreLNTransformerLayers`` (BERT4Rec's stack there and here) by default:
dropout on each block's output too and no final LayerNorm. Options: ``final_norm=True`` adds a
final LayerNorm and ``output_dropout=False`` drops the output dropout, which together give the
standard pre-LN stack of the presets (every preset figure was measured with it).

Measured at RecTools' settings (BERT4Rec, 10 epochs, the embedded MovieLens, ``docs/benchmarks.md``):
with the final LayerNorm, BERT4Rec with 256 BCE or gBCE negatives barely learned (test NDCG@10
0.0044 and 0.0018, three seeds, against RecTools' 0.0087 and 0.0194, six seeds); with RecTools'
stack, 0.0095 and 0.0191 (eight seeds). With weights copied from RecTools' BERT4Rec backbone the
default stack gives its sequence vectors to 2e-7.
"""

from __future__ import annotations

import typing as tp

import torch
from torch import nn

from ..dropout import Dropout
from .base import SelfAttention, _normed_prefix, _PrefixBlockStack, _rows, feed_forward


class PreLNBlock(nn.Module):
    """Pre-LayerNorm block: ``x + drop(attn(LN(x)))``, then ``x + drop(ff(LN(x)))``, then (with
    ``output_dropout``) dropout of the result."""

    def __init__(self, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int, activation: str,
                 output_dropout: bool = False) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(n_factors)
        self.attn = SelfAttention(n_factors, n_heads, dropout)
        self.ln_ff = nn.LayerNorm(n_factors)
        self.ff = feed_forward(n_factors, ff_multiplier, activation, dropout)
        self.drop = Dropout(dropout)
        self.drop_out = Dropout(dropout) if output_dropout else None

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool,
                prefix: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        """``prefix`` ``(1, P, d)``: block inputs of key rows in front of every sequence's (inference)."""
        x = x + self.drop(self.attn(self.ln_attn(x), attn_mask, is_causal, **_normed_prefix(self.ln_attn, prefix)))
        x = x + self.drop(self.ff(self.ln_ff(x)))  # (B, L, d)
        return x if self.drop_out is None else self.drop_out(x)

    def forward_one(self, x: torch.Tensor, pos: torch.Tensor, keys: tp.Optional[torch.Tensor],
                    prefix: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        """Output ``(B, D)`` of the block at position ``pos[b]`` only (inference: no dropout, so
        ``output_dropout`` changes nothing here)."""
        h = self.ln_attn(x)
        y = _rows(x, pos) + self.attn.forward_one(_rows(h, pos), h, keys, **_normed_prefix(self.ln_attn, prefix))
        return y + self.ff(self.ln_ff(y))


class PreLNTransformerLayers(_PrefixBlockStack):
    """Pre-LayerNorm blocks (BERT4Rec's default in seqrec and RecTools); RecTools' stack by default.

    Options (a model's ``transformer_layers_kwargs``): ``final_norm`` (False; True: a LayerNorm
    after the last block) and ``output_dropout`` (True: dropout on every block's output, RecTools'
    ``dropout_3``), besides ``ff_multiplier`` and ``activation`` (the model's by default).
    """

    options = {"ff_multiplier": None, "activation": None, "final_norm": False, "output_dropout": True}

    def __init__(self, n_blocks: int, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int = 1,
                 activation: str = "relu", final_norm: bool = False, output_dropout: bool = True) -> None:
        super().__init__(n_blocks, n_factors, n_heads, dropout, ff_multiplier, activation)
        self.blocks = nn.ModuleList(PreLNBlock(n_factors, n_heads, dropout, ff_multiplier, activation, output_dropout)
                                    for _ in range(n_blocks))
        self.ln_out = nn.LayerNorm(n_factors) if final_norm else nn.Identity()
