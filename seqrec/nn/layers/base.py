"""What every transformer layer type shares: the base class and its options, multi-head
self-attention, the point-wise feed-forward and the block stack with the inference fast path.

A layer stack maps input vectors ``(B, L, d)`` (token + position, dropout, zero at padding) to
the sequence vectors ``(B, L, d)`` that are scored against the item table, final normalisation
included. Every stack is built as ``layers_type(n_blocks, n_factors, n_heads, dropout,
ff_multiplier, activation, **other_options)`` and implements ``forward(x, attn_mask, is_causal)``.
``forward_last(x, pos, attn_mask, is_causal, keys)`` returns the output at one position per
sequence; the base class computes it from the full ``forward`` (correct for any stack), the
built-in stacks compute only that position in their last block (the inference fast path of
:meth:`TransformerNet.last_vectors`).
"""

from __future__ import annotations

import math
import typing as tp

import torch
import torch.nn.functional as F
from torch import nn

from ..dropout import Dropout

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}

# RecTools' names of the shared options (its ``transformer_layers_kwargs`` keys) -> seqrec's
RECTOOLS_OPTION_NAMES = {"ff_factors_multiplier": "ff_multiplier", "ff_activation": "activation"}


def _given(n_pad: tp.Optional[torch.Tensor]) -> tp.Dict[str, torch.Tensor]:
    """``{"n_pad": n_pad}``, or nothing when it is None (callees that do not know it stay callable)."""
    return {} if n_pad is None else {"n_pad": n_pad}


def _normed_prefix(norm: nn.Module, prefix: tp.Optional[torch.Tensor]) -> tp.Dict[str, torch.Tensor]:
    """``{"prefix": norm(prefix)}`` for a block's attention (shared key rows ``(1, P, d)``, normalised
    as the block's own keys are), or nothing when there is no prefix."""
    return {} if prefix is None else {"prefix": norm(prefix)}


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

    def _prefix_kv(self, prefix: torch.Tensor) -> tp.Tuple[torch.Tensor, torch.Tensor]:
        """Keys and values ``(1, H, P, D / H)`` of ``prefix`` ``(1, P, D)``: key/value inputs shared by
        every sequence of a batch (inference: the padding rows of the left layout)."""
        D = prefix.shape[-1]
        w, b = self.qkv.weight, self.qkv.bias
        k, v = F.linear(prefix, w[D:], b[D:]).split(D, dim=-1)
        return self._heads(k), self._heads(v)

    def _prepend(self, k: torch.Tensor, v: torch.Tensor, prefix: torch.Tensor) -> tp.Tuple[torch.Tensor, torch.Tensor]:
        # (B, H, L, D / H) -> (B, H, P + L, D / H): the shared prefix keys first
        pk, pv = self._prefix_kv(prefix)
        B = k.shape[0]
        return torch.cat([pk.expand(B, -1, -1, -1), k], dim=2), torch.cat([pv.expand(B, -1, -1, -1), v], dim=2)

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool,
                kv: tp.Optional[torch.Tensor] = None, n_pad: tp.Optional[torch.Tensor] = None,
                prefix: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        """``n_pad`` ``(B,)``: see :meth:`_padding_key` (inference only). ``prefix`` ``(1, P, D)``:
        key/value inputs in front of every sequence's own (inference only); ``attn_mask`` then
        covers the ``P + L`` keys and ``is_causal`` must be False."""
        B, L, D = x.shape
        q, k, v = self.project(x, kv)
        if prefix is not None:
            k, v = self._prepend(k, v, prefix)
        if n_pad is not None:
            allowed = torch.ones(L, L, dtype=torch.bool, device=x.device)
            allowed = allowed.tril() if is_causal else allowed
            k, v, attn_mask = self._padding_key(k, v, allowed if attn_mask is None else allowed & attn_mask, n_pad)
            is_causal = False
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, L, D / H)
        return self.out(y.transpose(1, 2).reshape(B, L, D))

    def forward_one(self, q_in: torch.Tensor, kv: torch.Tensor, keys: tp.Optional[torch.Tensor],
                    n_pad: tp.Optional[torch.Tensor] = None, prefix: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attention output ``(B, D)`` of one query vector ``q_in`` ``(B, D)`` per sequence against
        the keys/values of ``kv`` ``(B, L, D)`` allowed by ``keys`` ``(B, 1, 1, L)`` (None: all);
        ``n_pad`` as in :meth:`_padding_key`; ``prefix`` as in :meth:`forward` (``keys`` then covers
        ``P + L`` keys)."""
        B, L, D = kv.shape
        H = self.n_heads
        w, b = self.qkv.weight, self.qkv.bias
        q = F.linear(q_in, w[:D], b[:D]).view(B, H, 1, D // H)
        k, v = (self._heads(t) for t in F.linear(kv, w[D:], b[D:]).split(D, dim=-1))
        if prefix is not None:
            k, v = self._prepend(k, v, prefix)
        if n_pad is not None:
            allowed = torch.ones(1, L, dtype=torch.bool, device=kv.device) if keys is None else keys
            k, v, keys = self._padding_key(k, v, allowed, n_pad)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)  # (B, H, 1, D / H)
        return self.out(y.reshape(B, D))

    def _padding_key(self, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor, n_pad: torch.Tensor
                     ) -> tp.Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keys and values ``(B, H, 1 + L, D / H)`` and a float mask ``(B, 1, Lq, 1 + L)`` with one key in
        front standing for ``n_pad`` ``(B,)`` padding keys whose input row is zero (key and value: the
        projections' biases): ``n_pad`` equal keys weigh as one with the logit ``+ log(n_pad)``. With no
        dropout (inference) this equals attending to the ``n_pad`` zero rows themselves. ``allowed``
        ``(B or 1, 1, Lq, L)`` or ``(Lq, L)`` boolean: the other keys each query may attend to."""
        B, H, _, dh = k.shape
        D = H * dh
        b = self.qkv.bias
        k = torch.cat([b[D:2 * D].view(1, H, 1, dh).expand(B, -1, -1, -1).to(k.dtype), k], dim=2)
        v = torch.cat([b[2 * D:].view(1, H, 1, dh).expand(B, -1, -1, -1).to(v.dtype), v], dim=2)
        n = n_pad.to(k.dtype)
        sink = torch.where(n > 0, n.clamp(min=1).log(), torch.full_like(n, -math.inf))  # (B,)
        rest = torch.zeros(allowed.shape, dtype=k.dtype, device=k.device).masked_fill(~allowed, -math.inf)
        rest = rest.expand(B, 1, *rest.shape[-2:])  # (B, 1, Lq, L)
        mask = torch.cat([sink.view(B, 1, 1, 1).expand(-1, -1, rest.shape[2], -1), rest], dim=-1)
        return k, v, mask


def feed_forward(n_factors: int, ff_multiplier: int, activation: str, dropout: float,
                 bias: bool = True) -> nn.Sequential:
    """Point-wise feed-forward ``d -> ff_multiplier * d -> d`` with dropout after the activation."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r}; allowed: {tuple(ACTIVATIONS)}")
    return nn.Sequential(
        nn.Linear(n_factors, ff_multiplier * n_factors, bias=bias),
        ACTIVATIONS[activation](),
        Dropout(dropout),
        nn.Linear(ff_multiplier * n_factors, n_factors, bias=bias),
    )


def _check_option(name: str, value: tp.Any, default: tp.Any, activations: tp.Sequence[str]) -> None:
    if name == "ff_multiplier":
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        if not ok:
            raise ValueError(f"transformer_layers_kwargs: ff_multiplier must be a positive integer, got {value!r}")
    elif name == "activation":
        if value not in activations:
            raise ValueError(f"transformer_layers_kwargs: unknown activation {value!r}; allowed: {tuple(activations)}")
    elif isinstance(default, bool) and not isinstance(value, bool):
        raise ValueError(f"transformer_layers_kwargs: {name} must be True or False, got {value!r}")


class TransformerLayersBase(nn.Module):
    """A stack of transformer blocks with its final normalisation: ``(B, L, d) -> (B, L, d)``.

    Subclasses take ``(n_blocks, n_factors, n_heads, dropout, ff_multiplier, activation)`` and
    their other :attr:`options` as keyword arguments, and implement :meth:`forward`.
    :meth:`forward_last` may be overridden with a cheaper computation of one position per
    sequence; the default runs the full stack and picks the rows.
    """

    #: The options a model's ``transformer_layers_kwargs`` may set, with their defaults. None
    #: stands for the model's own feed-forward (SASRec: 1 and "relu", BERT4Rec: 4 and "gelu").
    #: A subclass with more options lists them here and takes them as keyword arguments.
    options: tp.ClassVar[tp.Dict[str, tp.Any]] = {"ff_multiplier": None, "activation": None}
    #: The feed-forward activations the ``activation`` option accepts.
    activations: tp.ClassVar[tp.Tuple[str, ...]] = tuple(ACTIVATIONS)

    def __init__(self, n_blocks: int, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int = 1,
                 activation: str = "relu") -> None:
        super().__init__()
        self.n_blocks = n_blocks
        self.n_factors = n_factors

    @classmethod
    def check_options(cls, options: tp.Optional[tp.Mapping[str, tp.Any]]) -> tp.Dict[str, tp.Any]:
        """The options given in ``options`` (a model's ``transformer_layers_kwargs``) under seqrec's
        names (RecTools' ``ff_factors_multiplier`` and ``ff_activation`` translated); ValueError
        naming an unknown key or a bad value."""
        if options is None:
            return {}
        if not isinstance(options, tp.Mapping):
            raise ValueError(f"transformer_layers_kwargs must be a dict of {cls.__name__}'s options or None, "
                             f"got {options!r}")
        allowed = list(cls.options) + [k for k, v in RECTOOLS_OPTION_NAMES.items() if v in cls.options]
        out: tp.Dict[str, tp.Any] = {}
        for key, value in options.items():
            if key not in allowed:
                raise ValueError(f"transformer_layers_kwargs: unknown option {key!r} for {cls.__name__}; "
                                 f"allowed: {allowed}")
            name = RECTOOLS_OPTION_NAMES.get(key, key)
            if name in out:
                raise ValueError(f"transformer_layers_kwargs: {key!r} and {name!r} name the same option; give one")
            _check_option(name, value, cls.options[name], cls.activations)
            out[name] = value
        return out

    @classmethod
    def layer_arguments(cls, options: tp.Optional[tp.Mapping[str, tp.Any]], ff_multiplier: int,
                        activation: str) -> tp.Dict[str, tp.Any]:
        """Every option's value: the given ones, else the type's defaults, else (None defaults) the
        model's ``ff_multiplier`` and ``activation``."""
        model_values = {"ff_multiplier": ff_multiplier, "activation": activation}
        values = {k: (model_values.get(k) if v is None else v) for k, v in cls.options.items()}
        values.update(cls.check_options(options))
        return values

    #: With left padding (RecTools' causal layout, see :class:`~seqrec.nn.transformer.TransformerNet`),
    #: True: the padding rows are set to zero before every block and before the final
    #: normalisation, as RecTools' SASRec layers do (their padding keys are then the key and value
    #: projections of a zero row); False: the padding rows flow through the blocks like the others.
    zero_padding_rows: tp.ClassVar[bool] = False

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool,
                valid: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        """Sequence vectors ``(B, L, d)`` of the input vectors ``x`` ``(B, L, d)``; ``attn_mask``
        ``(B, 1, L, L)`` boolean (True = may attend) or None, ``is_causal`` for causal attention;
        ``valid`` ``(B, L)``, the real positions, is given only with left padding (where padding
        rows are keys). A stack whose ``forward`` has no ``valid`` argument is called without it."""
        raise NotImplementedError

    def forward_last(self, x: torch.Tensor, pos: torch.Tensor, attn_mask: tp.Optional[torch.Tensor],
                     is_causal: bool, keys: tp.Optional[torch.Tensor],
                     valid: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        """``forward(x, attn_mask, is_causal)[b, pos[b]]``, ``(B, d)``, in eval mode.

        ``keys`` ``(B, 1, 1, L)`` (or None) are the keys the query at ``pos`` may attend to, for
        stacks that compute only that query in their last block; this fallback ignores it.
        ``valid`` as in :meth:`forward`.
        """
        out = self.forward(x, attn_mask, is_causal) if valid is None else self.forward(x, attn_mask, is_causal, valid=valid)
        return _rows(out, pos)


class _BlockStack(TransformerLayersBase):
    """Blocks with ``forward(x, attn_mask, is_causal)`` and ``forward_one(x, pos, keys)`` (the
    output at one position), then ``ln_out``."""

    blocks: nn.ModuleList
    ln_out: nn.Module

    def _zero(self, x: torch.Tensor, valid: tp.Optional[torch.Tensor]) -> torch.Tensor:
        # (B, L, d): padding rows to zero, where this stack does so (see zero_padding_rows)
        return x if valid is None or not self.zero_padding_rows else x * valid.unsqueeze(-1).to(x.dtype)

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool,
                valid: tp.Optional[torch.Tensor] = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(self._zero(x, valid), attn_mask, is_causal)
        return self.ln_out(self._zero(x, valid))

    def forward_last(self, x: torch.Tensor, pos: torch.Tensor, attn_mask: tp.Optional[torch.Tensor],
                     is_causal: bool, keys: tp.Optional[torch.Tensor],
                     valid: tp.Optional[torch.Tensor] = None, n_pad: tp.Optional[torch.Tensor] = None
                     ) -> torch.Tensor:
        """``n_pad`` ``(B,)`` (stacks with ``zero_padding_rows`` only): the right-padded input of the
        real rows, and the number of zero padding rows each sequence has before them in the left
        layout, which every block attends to as one key (``SelfAttention._padding_key``)."""
        if len(self.blocks) == 0:
            return self.ln_out(_rows(x, pos))
        extra = _given(n_pad)
        for block in self.blocks[:-1]:
            x = block(self._zero(x, valid), attn_mask, is_causal, **extra)
        # the query position is a real one: no zeroing after the last block
        return self.ln_out(self.blocks[-1].forward_one(self._zero(x, valid), pos, keys, **extra))


class _PrefixBlockStack(_BlockStack):
    """Blocks whose ``forward`` and ``forward_one`` also take ``prefix``: the inputs of key/value
    rows shared by every sequence, in front of its own. With padding keys (RecTools' left layout)
    every padding row of a causal stack sees only the padding rows before it, so its states are
    those of an all-padding sequence whatever the history: inference computes them once and runs
    only the real rows (:meth:`forward_last_prefix`)."""

    def forward_last_prefix(self, x: torch.Tensor, pos: torch.Tensor, attn_mask: torch.Tensor,
                            keys: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """Output ``(B, d)`` at ``pos`` of the real rows ``x`` ``(B, W, d)`` (left-padded to the batch's
        longest history) behind the padding rows whose inputs are ``pad`` ``(1, P, d)`` (an
        all-padding sequence of the left layout, causal); ``attn_mask`` ``(B, 1, W, P + W)`` and
        ``keys`` ``(B, 1, 1, P + W)`` the keys each query may attend to, the ``P`` padding keys first.
        Eval mode."""
        if len(self.blocks) == 0:
            return self.ln_out(_rows(x, pos))
        for block in self.blocks[:-1]:
            x = block(x, attn_mask, False, prefix=pad)
            pad = block(pad, None, True)  # the padding rows' states at the next block
        return self.ln_out(self.blocks[-1].forward_one(x, pos, keys, prefix=pad))


def check_layers_type(value: tp.Any, name: str = "transformer_layers_type") -> None:
    """ValueError unless ``value`` is a subclass of :class:`TransformerLayersBase`."""
    if not (isinstance(value, type) and issubclass(value, TransformerLayersBase)):
        from . import LAYER_TYPES
        allowed = ", ".join(t.__name__ for t in LAYER_TYPES)
        raise ValueError(f"{name} must be a TransformerLayersBase subclass ({allowed} or your own), got {value!r}")
