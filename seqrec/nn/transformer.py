"""The transformer encoder shared by SASRec and BERT4Rec.

Sequences are token tensors ``(B, L)``, right-padded: real tokens first (oldest to newest),
then padding. Token ``PAD`` is padding, ``MASK`` is BERT4Rec's mask token and catalog item ``i``
is token ``i + N_SPECIAL``. Special tokens belong to the network: they never enter the user's id
map and are never scored. Positions are counted backwards from the last real token, so the
newest item always sits at position 0 whatever the padding.

Padding keys. RecTools pads on the left to ``session_max_len`` and, with causal attention and no
key padding mask (its SASRec default, ``use_key_padding_mask=False``), every query also attends
to the ``session_max_len - length`` padding positions before the history: keys that carry no
item, only their positions (and, in RecTools' SASRec layers, the projections' biases), which the
model learns to use as a place to put attention that no item deserves. It is not neutral: at
RecTools' settings it decides a fifth of the NDCG@10 on Amazon Beauty with gBCE
(``docs/benchmarks.md``). ``TransformerNet`` reproduces it exactly in that setting: the layer
stack runs on the left-padded layout of width ``max_len`` (padding rows: their position vector
only, positions counted back from the newest item as for real rows), and the outputs are moved
back to the right-padded layout. With ``use_key_padding_mask=True`` (or bidirectional attention)
padding is never attended to and the stack runs on the right-padded tokens as they are.
"""

from __future__ import annotations

import inspect
import math
import typing as tp

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import Dropout
from .item_net import SumItemNet
from .layers import (ACTIVATIONS, PreLNBlock, PreLNTransformerLayers, SelfAttention,  # noqa: F401
                     TransformerLayersBase)

PAD = 0
MASK = 1
N_SPECIAL = 2

# the blocks live in layers.py; these names stay importable from here
Block = PreLNBlock


class TransformerNet(nn.Module):
    """Item table + positional embeddings + a transformer layer stack; maps tokens to sequence vectors.

    ``layers_type`` is the stack (:mod:`seqrec.nn.layers`), built as ``layers_type(n_blocks,
    n_factors, n_heads, dropout, ff_multiplier, activation, **other_options)``; ``layers_options``
    (a model's ``transformer_layers_kwargs``) sets the type's options, the others keep its defaults
    (``ff_multiplier`` and ``activation`` default to the arguments of the same names unless the
    type has its own). It can be built, run and tested without any trainer:
    ``net.encode(tokens, net.item_table())``.
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
        layers_type: tp.Type[TransformerLayersBase] = PreLNTransformerLayers,
        layers_options: tp.Optional[tp.Mapping[str, tp.Any]] = None,
    ) -> None:
        super().__init__()
        self.item_net = item_net
        self.n_items = item_net.n_items
        self.n_factors = n_factors
        self.use_causal_attn = use_causal_attn
        self.use_key_padding_mask = use_key_padding_mask
        self.max_len = max_len
        # RecTools' causal layout without a key mask: padding keys before the history (module docstring)
        self.padding_keys = use_causal_attn and not use_key_padding_mask
        # learned vectors of the special tokens; PAD is overwritten with zeros when used
        self.special = nn.Parameter(torch.zeros(N_SPECIAL, n_factors))
        self.pos_emb = nn.Embedding(max_len, n_factors) if use_pos_emb else None
        self.emb_drop = Dropout(dropout)
        options = layers_type.layer_arguments(layers_options, ff_multiplier, activation)
        ff_multiplier, activation = options.pop("ff_multiplier"), options.pop("activation")
        self.layers = layers_type(n_blocks, n_factors, n_heads, dropout, ff_multiplier, activation, **options)
        # stacks written before the left layout take no ``valid`` argument
        self._layers_take_valid = _accepts([self.layers.forward], "valid")
        self._last_takes_valid = _accepts([self.layers.forward, self.layers.forward_last], "valid")
        # inference shortcut for stacks whose padding rows are zero rows (their padding keys are all
        # equal): the real rows alone, the padding keys as one counted key (``_BlockStack.forward_last``)
        self._padding_count = self.padding_keys and self.layers.zero_padding_rows and _accepts(
            [self.layers.forward_last] + [f for b in self.blocks for m in (b, getattr(b, "attn", b))
                                          for f in (m.forward, m.forward_one)], "n_pad")
        # inference shortcut for the other stacks with padding keys: the padding rows' states are
        # those of an all-padding sequence, computed once; only the real rows run
        # (``_PrefixBlockStack.forward_last_prefix``)
        self._padding_prefix = (self.padding_keys and not self.layers.zero_padding_rows
                                and hasattr(self.layers, "forward_last_prefix")
                                and _accepts([f for b in self.blocks for f in (b.forward, b.forward_one)], "prefix"))
        self.reset_parameters()

    @property
    def blocks(self) -> tp.Sequence[nn.Module]:
        """The blocks of the layer stack (empty when it has none)."""
        return getattr(self.layers, "blocks", ())

    def reset_parameters(self) -> None:
        """Xavier-normal on every matrix (embeddings included), as in the SASRec reference code;
        LayerNorms stay at identity and biases at zero.

        Two kinds of tensors are left alone: frozen parameters (``requires_grad=False``: fixed
        data such as pretrained vectors) and those of a submodule whose ``initialises_itself`` is
        True, whose own ``reset_parameters()`` is called instead. Buffers are never touched.
        """
        own = [(prefix, m) for prefix, m in self.named_modules()
               if prefix and getattr(m, "initialises_itself", False)]
        skip = tuple(prefix + "." for prefix, _ in own)
        for name, p in self.named_parameters():
            if not p.requires_grad or name.startswith(skip):
                continue
            if p.dim() > 1:
                nn.init.xavier_normal_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        for _, module in own:
            module.reset_parameters()

    def item_table(self) -> torch.Tensor:
        """Embeddings of all catalog items, ``(n_items, d)``."""
        return self.item_net()

    def encode(self, tokens: torch.Tensor, item_table: torch.Tensor) -> torch.Tensor:
        """Sequence vectors ``(B, L, d)`` for right-padded ``tokens`` ``(B, L)``.

        Vector ``t`` of a sequence summarises its tokens ``0..t`` (causal attention) or all of its
        real tokens (bidirectional attention); padding never influences real positions.
        """
        if self.padding_keys:
            x, valid, shift = self._embed_left(tokens, item_table)
            h = self._stack(x, valid)  # (B, max_len, d), left-padded
            return self._to_right(h, shift, tokens.shape[1]) * (tokens != PAD).unsqueeze(-1).to(h.dtype)
        x, valid = self._embed(tokens, item_table)
        attn_mask, is_causal = self.attention_mask(valid)
        return self.layers(x, attn_mask, is_causal)

    def _stack(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The layer stack on left-padded input ``(B, max_len, d)``: causal, padding keys visible."""
        if self._layers_take_valid:
            return self.layers(x, None, True, valid=valid)
        return self.layers(x, None, True)

    def _embed_left(self, tokens: torch.Tensor, item_table: torch.Tensor, width: tp.Optional[int] = None
                    ) -> tp.Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """RecTools' left layout of right-padded ``tokens`` ``(B, W)``: input vectors ``(B, max_len, d)``
        (item + position at real rows, the position alone at padding rows, dropout), the real rows
        ``(B, max_len)`` and each sequence's shift ``(B, 1)`` (left column = right column + shift).
        ``width`` (at least the longest history): the last ``width`` columns of that layout only."""
        B, W = tokens.shape
        self._check_width(W, self.max_len)
        L = self.max_len if width is None else width
        shift = (L - (tokens != PAD).sum(dim=1, keepdim=True))  # (B, 1)
        cols = torch.arange(L, device=tokens.device)  # (L,)
        valid = cols >= shift  # (B, L)
        src = (cols - shift).clamp(min=0, max=max(W - 1, 0))  # right column read by each left column
        left = torch.where(valid, tokens.gather(1, src), PAD) if W else torch.full((B, L), PAD, device=tokens.device)
        vocab = torch.cat([self.special, item_table], dim=0)  # (N_SPECIAL + n_items, d)
        x = F.embedding(left, vocab) * valid.unsqueeze(-1).to(vocab.dtype)  # (B, L, d), PAD rows zero
        if self.pos_emb is not None:
            x = x + self.pos_emb(L - 1 - cols).unsqueeze(0)  # the newest item (last column) at position 0
        return self.emb_drop(x), valid, shift

    @staticmethod
    def _check_width(width: int, max_len: int) -> None:
        if width > max_len:
            raise ValueError(f"sequences of {width} tokens are longer than the network's max_len "
                             f"({max_len}, the model's session_max_len)")

    @staticmethod
    def _to_right(h: torch.Tensor, shift: torch.Tensor, width: int) -> torch.Tensor:
        """Left-padded ``(B, L, d)`` back to the right-padded layout ``(B, width, d)`` (padding rows arbitrary)."""
        cols = torch.arange(width, device=h.device)
        src = (cols + shift).clamp(max=h.shape[1] - 1)  # (B, width)
        return h.gather(1, src.unsqueeze(-1).expand(-1, -1, h.shape[-1]))

    def _embed(self, tokens: torch.Tensor, item_table: torch.Tensor) -> tp.Tuple[torch.Tensor, torch.Tensor]:
        """Input vectors ``(B, L, d)`` (token + position, dropout, zero at padding) and the real-token mask."""
        B, L = tokens.shape
        if self.pos_emb is not None:
            self._check_width(L, self.pos_emb.num_embeddings)
        valid = tokens != PAD  # (B, L)
        # (N_SPECIAL + n_items, d): special tokens first, then the catalog
        vocab = torch.cat([self.special, item_table], dim=0)
        x = F.embedding(tokens, vocab)  # (B, L, d); its backward is cheaper than indexing's on CPU
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
        sequence uses are cut (when padding cannot influence real positions: with a key padding
        mask; with padding keys, when the stack's padding rows are zero rows, as in
        ``SASRecTransformerLayers``, whose equal padding keys then enter as one key counted
        ``max_len - length`` times; in the pre-LN and LiGR stacks, whose padding rows carry their
        positions, the padding rows' states come from one all-padding sequence and only the real rows
        run behind them, ``_last_behind_padding``; other stacks run on the left layout of width
        ``max_len``), and the layer stack's ``forward_last`` computes only the one query position per
        sequence in its last block (every stack of :mod:`seqrec.nn.layers`; a stack without that shortcut falls
        back to its full forward).
        """
        if self.training:
            h = self.encode(tokens, item_table)  # (B, L, d)
            last = ((tokens != PAD).sum(dim=1) - 1).clamp(min=0)  # (B,)
            return h[torch.arange(len(tokens), device=tokens.device), last]
        if self._padding_prefix:
            lengths = (tokens != PAD).sum(dim=1)  # (B,)
            longest = max(1, int(lengths.max())) if len(tokens) else 1
            if longest < self.max_len:
                return self._last_behind_padding(tokens, item_table, lengths, longest)
        if self.padding_keys and not self._padding_count:
            # left layout: the newest item is the last column, whose causal query sees every key
            x, valid, _ = self._embed_left(tokens, item_table)
            last = torch.full((len(tokens),), self.max_len - 1, dtype=torch.long, device=tokens.device)
            if self._last_takes_valid:
                return self.layers.forward_last(x, last, None, True, None, valid=valid)
            return self.layers.forward_last(x, last, None, True, None)
        lengths = (tokens != PAD).sum(dim=1)  # (B,)
        extra = {"n_pad": self.max_len - lengths} if self._padding_count else {}
        if self.use_causal_attn or self.use_key_padding_mask:
            longest = max(1, int(lengths.max())) if len(tokens) else 1
            tokens = tokens[:, :longest]  # right padding: the cut columns are padding only
        last = (lengths - 1).clamp(min=0)  # (B,)
        x, valid = self._embed(tokens, item_table)
        attn_mask, is_causal = self.attention_mask(valid)
        if is_causal:
            # the query at position p attends to keys 0..p
            keys = (torch.arange(tokens.shape[1], device=tokens.device) <= last.unsqueeze(1))[:, None, None, :]
        else:
            keys = attn_mask  # (B, 1, 1, L) key mask or None
        return self.layers.forward_last(x, last, attn_mask, is_causal, keys, **extra)

    def _last_behind_padding(self, tokens: torch.Tensor, item_table: torch.Tensor, lengths: torch.Tensor,
                             width: int) -> torch.Tensor:
        """``last_vectors`` in eval mode with padding keys, computing the real rows only: the left
        layout's last ``width`` columns ``(B, width, d)`` (each history right-aligned) behind the
        ``max_len`` rows of an all-padding sequence, whose states at every block are those of every
        sequence's padding rows (causal: a padding row sees only padding rows). Sequence ``b`` attends
        to the first ``max_len - lengths[b]`` of those and to its own real rows up to the query."""
        L, B, dev = self.max_len, len(tokens), tokens.device
        x, valid, _ = self._embed_left(tokens, item_table, width)  # (B, width, d), (B, width)
        cols = torch.arange(L, device=dev)
        pad = (self.pos_emb(L - 1 - cols) if self.pos_emb is not None
               else torch.zeros(L, self.n_factors, device=dev)).unsqueeze(0).to(x.dtype)  # (1, L, d)
        own = valid.unsqueeze(1) & torch.ones(width, width, dtype=torch.bool, device=dev).tril()  # (B, width, width)
        before = (cols < (L - lengths).unsqueeze(1)).unsqueeze(1).expand(-1, width, -1)  # (B, width, L)
        allowed = torch.cat([before, own], dim=-1).unsqueeze(1)  # (B, 1, width, L + width)
        last = torch.full((B,), width - 1, dtype=torch.long, device=dev)
        return self.layers.forward_last_prefix(x, last, allowed, allowed[:, :, -1:], pad)

def _accepts(functions: tp.Sequence[tp.Callable[..., tp.Any]], name: str) -> bool:
    """Whether every function has a parameter ``name``."""
    return all(name in inspect.signature(f).parameters for f in functions)


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
