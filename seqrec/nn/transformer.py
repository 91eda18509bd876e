"""The transformer encoder shared by SASRec and BERT4Rec.

Sequences are token tensors ``(B, L)``, right-padded: real tokens first (oldest to newest),
then padding. Token ``PAD`` is padding, ``MASK`` is BERT4Rec's mask token and catalog item ``i``
is token ``i + N_SPECIAL``. Special tokens belong to the network: they never enter the user's id
map and are never scored. Positions are counted backwards from the last real token, so the
newest item always sits at position 0 whatever the padding.
"""

from __future__ import annotations

import math
import typing as tp

import torch
import torch.nn.functional as F
from torch import nn

from .item_net import SumItemNet

PAD = 0
MASK = 1
N_SPECIAL = 2

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


class SelfAttention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``."""

    def __init__(self, n_factors: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(n_factors, 3 * n_factors)
        self.out = nn.Linear(n_factors, n_factors)

    def project(self, x: torch.Tensor) -> tp.Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, L, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)  # 3 x (B, L, D)
        # (B, L, D) -> (B, H, L, D / H)
        return tuple(t.view(B, L, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.project(x)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, L, D / H)
        return self.out(y.transpose(1, 2).reshape(B, L, D))

    def forward_one(self, x: torch.Tensor, pos: torch.Tensor, keys: tp.Optional[torch.Tensor]) -> torch.Tensor:
        """Attention output ``(B, D)`` of the single query at position ``pos[b]`` of each sequence,
        against all keys of ``x`` ``(B, L, D)`` allowed by ``keys`` ``(B, 1, 1, L)`` (None: all)."""
        B, L, D = x.shape
        H = self.n_heads
        w, b = self.qkv.weight, self.qkv.bias
        q = F.linear(x[torch.arange(B, device=x.device), pos], w[:D], b[:D])  # (B, D)
        k, v = F.linear(x, w[D:], b[D:]).split(D, dim=-1)  # 2 x (B, L, D)
        q = q.view(B, H, 1, D // H)
        k, v = (t.view(B, L, H, D // H).transpose(1, 2) for t in (k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)  # (B, H, 1, D / H)
        return self.out(y.reshape(B, D))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: attention then point-wise feed-forward, both residual."""

    def __init__(self, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int, activation: str) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(n_factors)
        self.attn = SelfAttention(n_factors, n_heads, dropout)
        self.ln_ff = nn.LayerNorm(n_factors)
        self.ff = nn.Sequential(
            nn.Linear(n_factors, ff_multiplier * n_factors),
            ACTIVATIONS[activation](),
            nn.Dropout(dropout),
            nn.Linear(ff_multiplier * n_factors, n_factors),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_attn(x), attn_mask, is_causal))
        return x + self.drop(self.ff(self.ln_ff(x)))

    def forward_one(self, x: torch.Tensor, pos: torch.Tensor, keys: tp.Optional[torch.Tensor]) -> torch.Tensor:
        """Output ``(B, D)`` of the block at position ``pos[b]`` only (inference: no dropout)."""
        y = x[torch.arange(len(x), device=x.device), pos] + self.attn.forward_one(self.ln_attn(x), pos, keys)
        return y + self.ff(self.ln_ff(y))


class TransformerNet(nn.Module):
    """Item table + positional embeddings + transformer blocks; maps tokens to sequence vectors.

    It can be built, run and tested without any trainer: ``net.encode(tokens, net.item_table())``.
    """

    def __init__(
        self,
        item_net: SumItemNet,
        n_factors: int,
        n_blocks: int,
        n_heads: int,
        dropout: float,
        max_len: int,
        use_pos_emb: bool = True,
        use_causal_attn: bool = True,
        use_key_padding_mask: bool = True,
        ff_multiplier: int = 1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.item_net = item_net
        self.n_items = item_net.n_items
        self.n_factors = n_factors
        self.use_causal_attn = use_causal_attn
        self.use_key_padding_mask = use_key_padding_mask
        # learned vectors of the special tokens; PAD is overwritten with zeros when used
        self.special = nn.Parameter(torch.zeros(N_SPECIAL, n_factors))
        self.pos_emb = nn.Embedding(max_len, n_factors) if use_pos_emb else None
        self.emb_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(n_factors, n_heads, dropout, ff_multiplier, activation) for _ in range(n_blocks)
        )
        self.ln_out = nn.LayerNorm(n_factors)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Xavier-normal on every matrix (embeddings included), as in the SASRec reference code;
        # LayerNorms stay at identity and biases at zero.
        for name, p in self.named_parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def item_table(self) -> torch.Tensor:
        """Embeddings of all catalog items, ``(n_items, d)``."""
        return self.item_net()

    def encode(self, tokens: torch.Tensor, item_table: torch.Tensor) -> torch.Tensor:
        """Sequence vectors ``(B, L, d)`` for right-padded ``tokens`` ``(B, L)``.

        Vector ``t`` of a sequence summarises its tokens ``0..t`` (causal attention) or all of its
        real tokens (bidirectional attention); padding never influences real positions.
        """
        x, valid = self._embed(tokens, item_table)
        attn_mask, is_causal = self.attention_mask(valid)
        for block in self.blocks:
            x = block(x, attn_mask, is_causal)
        return self.ln_out(x)

    def _embed(self, tokens: torch.Tensor, item_table: torch.Tensor) -> tp.Tuple[torch.Tensor, torch.Tensor]:
        """Input vectors ``(B, L, d)`` (token + position, dropout, zero at padding) and the real-token mask."""
        B, L = tokens.shape
        valid = tokens != PAD  # (B, L)
        # (N_SPECIAL + n_items, d): special tokens first, then the catalog
        vocab = torch.cat([self.special, item_table], dim=0)
        x = vocab[tokens]  # (B, L, d)
        if self.pos_emb is not None:
            lengths = valid.sum(dim=1, keepdim=True)  # (B, 1)
            positions = (lengths - 1 - torch.arange(L, device=tokens.device)).clamp(min=0)  # (B, L)
            x = x + self.pos_emb(positions)
        return self.emb_drop(x) * valid.unsqueeze(-1), valid

    def attention_mask(self, valid: torch.Tensor) -> tp.Tuple[tp.Optional[torch.Tensor], bool]:
        """Boolean mask ``(B, 1, L, L)`` (True = may attend) or None, and whether attention is causal."""
        if self.use_causal_attn:
            # with right padding, a causal query never sees padding: no key mask needed
            return None, True
        if not self.use_key_padding_mask:
            return None, False
        # every query attends to the real keys of its sequence; an empty sequence sees all keys
        keys = valid | ~valid.any(dim=1, keepdim=True)  # (B, L)
        return keys[:, None, None, :], False

    def last_vectors(self, tokens: torch.Tensor, item_table: torch.Tensor) -> torch.Tensor:
        """Vector at the last real token of each sequence, ``(B, d)``: ``encode(tokens)[b, last_b]``.

        In eval mode it computes less for the same result: the trailing padding columns that no
        sequence uses are cut (when padding cannot influence real positions: causal attention or
        a key padding mask), and the last block runs only the one query position per sequence.
        """
        if self.training or not self.blocks:
            h = self.encode(tokens, item_table)  # (B, L, d)
            last = ((tokens != PAD).sum(dim=1) - 1).clamp(min=0)  # (B,)
            return h[torch.arange(len(tokens), device=tokens.device), last]
        lengths = (tokens != PAD).sum(dim=1)  # (B,)
        if self.use_causal_attn or self.use_key_padding_mask:
            longest = max(1, int(lengths.max())) if len(tokens) else 1
            tokens = tokens[:, :longest]  # right padding: the cut columns are padding only
        last = (lengths - 1).clamp(min=0)  # (B,)
        x, valid = self._embed(tokens, item_table)
        attn_mask, is_causal = self.attention_mask(valid)
        for block in self.blocks[:-1]:
            x = block(x, attn_mask, is_causal)
        if is_causal:
            # the query at position p attends to keys 0..p
            keys = (torch.arange(tokens.shape[1], device=tokens.device) <= last.unsqueeze(1))[:, None, None, :]
        else:
            keys = attn_mask  # (B, 1, 1, L) key mask or None
        return self.ln_out(self.blocks[-1].forward_one(x, last, keys))


def eager_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: tp.Optional[torch.Tensor],
                    is_causal: bool) -> torch.Tensor:
    """Plain softmax(QK^T / sqrt(d)) V, the reference for the fused attention path (tests)."""
    L = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, L, L)
    allowed = torch.ones(L, L, dtype=torch.bool, device=q.device)
    if is_causal:
        allowed = torch.tril(allowed)
    if attn_mask is not None:
        allowed = allowed & attn_mask
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v
