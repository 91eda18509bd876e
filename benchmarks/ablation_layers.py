"""Layer types for ablations only (not part of the package), plugged in through the public seam
``transformer_layers_type``, e.g. ``parity.py --seqrec-param
transformer_layers_type=ablation_layers:PaddingSinkSASRecLayers``.

``PaddingSinkSASRecLayers`` reproduces what RecTools' SASRec attention sees with its left padding
and no key padding mask (its default): every real query also attends to the ``L - length``
padding keys of its sequence, whose input is zero, so each of them has key ``b_k`` and value
``b_v`` (the key and value projections' biases). With seqrec's right padding a causal query never
sees padding; this stack adds those keys back as one extra key ``b_k`` with value ``b_v`` and the
additive logit ``log(L - length)`` (``L - length`` equal keys weigh as one key with that bias),
and none where the sequence is full. Otherwise it is :class:`seqrec.SASRecTransformerLayers`.

Since seqrec itself runs causal models without a key padding mask on RecTools' left layout (with
its padding keys, ``seqrec.nn.transformer``), ``PaddingSinkSASRecLayers`` and
``LeftPaddedSASRecLayers`` reproduce the old right-padded path plus their own padding keys only
with ``--seqrec-param use_key_padding_mask=true``; without it they would add a second set.
"""

from __future__ import annotations

import math
import typing as tp

import torch
import torch.nn.functional as F

from seqrec import LiGRLayers, SASRecTransformerLayers
from seqrec.nn.layers.base import SelfAttention, TransformerLayersBase


def _zero_attention_biases(attn: SelfAttention) -> None:
    """Torch's ``MultiheadAttention`` (RecTools) starts its projection biases at zero."""
    torch.nn.init.zeros_(attn.qkv.bias)
    torch.nn.init.zeros_(attn.out.bias)


def _real_rows(x: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` mask of the real positions: the stack's input is exactly zero at padding."""
    return x.abs().sum(dim=-1) != 0


class _SinkAttention(SelfAttention):
    """Self-attention with the padding keys of a left-padded sequence as one weighted extra key."""

    n_pad: torch.Tensor  # (B,) padding count of each sequence, set by the stack before each forward

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool,
                kv: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        B, L, D = x.shape
        H = self.n_heads
        q, k, v = self.project(x, kv)  # 3 x (B, H, L, D / H)
        b = self.qkv.bias
        k_sink = b[D:2 * D].view(1, H, 1, D // H).expand(B, -1, -1, -1)  # (B, H, 1, D / H)
        v_sink = b[2 * D:].view(1, H, 1, D // H).expand(B, -1, -1, -1)
        k = torch.cat([k_sink, k], dim=2)  # (B, H, 1 + L, D / H)
        v = torch.cat([v_sink, v], dim=2)
        sink = torch.where(self.n_pad > 0, self.n_pad.clamp(min=1).float().log(),
                           torch.full_like(self.n_pad, -math.inf, dtype=torch.float))  # (B,)
        bias = torch.zeros(B, 1, L, 1 + L, device=x.device)
        bias[..., 0] = sink.view(B, 1, 1)
        if is_causal:
            future = torch.ones(L, L, dtype=torch.bool, device=x.device).triu(1)
            bias[..., 1:] = bias[..., 1:].masked_fill(future, -math.inf)
        if attn_mask is not None:
            bias[..., 1:] = bias[..., 1:].masked_fill(~attn_mask, -math.inf)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, H, L, D / H)
        return self.out(y.transpose(1, 2).reshape(B, L, D))


class PaddingSinkSASRecLayers(SASRecTransformerLayers):
    """:class:`seqrec.SASRecTransformerLayers` whose attention sees RecTools' padding keys."""

    def __init__(self, n_blocks: int, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int = 1,
                 activation: str = "relu") -> None:
        super().__init__(n_blocks, n_factors, n_heads, dropout, ff_multiplier, activation)
        for block in self.blocks:
            attn = _SinkAttention(n_factors, n_heads, dropout)
            _zero_attention_biases(attn)
            block.attn = attn

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool) -> torch.Tensor:
        # the input is exactly zero at padding (right padding: the rows after the last real token)
        n_pad = (~_real_rows(x)).sum(dim=1)  # (B,)
        for block in self.blocks:
            block.attn.n_pad = n_pad
        return super().forward(x, attn_mask, is_causal)

    # the one-position fast path of the built-in stacks does not know the sink: full forward instead
    forward_last = TransformerLayersBase.forward_last


def _rectools_init(stack: TransformerLayersBase) -> None:
    """RecTools' initialisation of a layer stack: Xavier-normal on every matrix, the biases as
    PyTorch leaves them (``nn.Linear``: uniform in +-1/sqrt(fan_in); the attention projections'
    biases zero, as ``nn.MultiheadAttention`` starts them)."""
    for module in stack.modules():
        if isinstance(module, torch.nn.Linear):
            module.reset_parameters()  # PyTorch's default bias
            torch.nn.init.xavier_normal_(module.weight)
        elif isinstance(module, torch.nn.LayerNorm):
            module.reset_parameters()
    for module in stack.modules():
        if isinstance(module, SelfAttention):
            _zero_attention_biases(module)


class RecToolsInitLiGRLayers(LiGRLayers):
    """:class:`seqrec.LiGRLayers` initialised as RecTools initialises its own (the network's
    Xavier init zeroes every bias; RecTools keeps PyTorch's default biases of the feed-forward and
    gating layers)."""

    initialises_itself = True

    def reset_parameters(self) -> None:
        _rectools_init(self)


class RecToolsInitSASRecLayers(SASRecTransformerLayers):
    """:class:`seqrec.SASRecTransformerLayers` with RecTools' initialisation (see above)."""

    initialises_itself = True

    def reset_parameters(self) -> None:
        _rectools_init(self)


class LeftPaddedSASRecLayers(SASRecTransformerLayers):
    """RecTools' SASRec stack literally: the sequences are moved to the left-padded layout, the
    padding rows zeroed before every block and after the last, and every block attends causally
    without a key padding mask (so each real query sees all ``L - length`` padding keys, each
    dropped out on its own by the attention dropout); the outputs are moved back to seqrec's right
    padding. With dropout off it equals :class:`PaddingSinkSASRecLayers`."""

    def __init__(self, n_blocks: int, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int = 1,
                 activation: str = "relu") -> None:
        super().__init__(n_blocks, n_factors, n_heads, dropout, ff_multiplier, activation)
        for block in self.blocks:
            _zero_attention_biases(block.attn)

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool) -> torch.Tensor:
        B, L, D = x.shape
        real = _real_rows(x)  # (B, L): right padding, the rows after the last token
        shift = L - real.sum(dim=1, keepdim=True)  # (B, 1) padding rows of each sequence
        cols = torch.arange(L, device=x.device)
        to_left = ((cols - shift) % L).unsqueeze(-1).expand(-1, -1, D)  # (B, L, D): row j of the left layout
        h = x.gather(1, to_left)
        keep = real.gather(1, (cols - shift) % L).unsqueeze(-1).to(x.dtype)  # (B, L, 1)
        for block in self.blocks:
            h = block(h * keep, None, True)
        h = self.ln_out(h * keep)
        return h.gather(1, ((cols + shift) % L).unsqueeze(-1).expand(-1, -1, D))  # back to right padding

    forward_last = TransformerLayersBase.forward_last  # the fast path knows no padding keys: full forward
