"""Transformer layer stacks: the seam between the embeddings and the scored sequence vectors.

One file per layer type, on the shared parts of :mod:`.base` (the base class and its options,
attention, feed-forward, the block stack with the last-position inference path):

- :class:`PreLNTransformerLayers` (:mod:`.preln`): standard pre-LayerNorm blocks and a final LayerNorm.
- :class:`SASRecTransformerLayers` (:mod:`.sasrec`): the block of the original SASRec code.
- :class:`LiGRLayers` (:mod:`.ligr`): pre-LayerNorm blocks with sigmoid-gated residuals and a
  SwiGLU feed-forward (eSASRec's layers).

A model builds its stack as ``transformer_layers_type(n_blocks, n_factors, n_heads, dropout,
ff_multiplier, activation, **options)``; ``transformer_layers_kwargs`` sets the options that the
type lists in :attr:`TransformerLayersBase.options`, checked by name.
"""

from __future__ import annotations

import typing as tp

from .base import (ACTIVATIONS, RECTOOLS_OPTION_NAMES, SelfAttention, TransformerLayersBase, _BlockStack, _rows,
                   check_layers_type, feed_forward)
from .ligr import LiGRBlock, LiGRLayers, SwiGLU
from .preln import PreLNBlock, PreLNTransformerLayers
from .sasrec import SASRecBlock, SASRecTransformerLayers

LAYER_TYPES: tp.Tuple[tp.Type[TransformerLayersBase], ...] = (PreLNTransformerLayers, SASRecTransformerLayers,
                                                              LiGRLayers)

__all__ = ["ACTIVATIONS", "LAYER_TYPES", "RECTOOLS_OPTION_NAMES", "LiGRBlock", "LiGRLayers", "PreLNBlock",
           "PreLNTransformerLayers", "SASRecBlock", "SASRecTransformerLayers", "SelfAttention", "SwiGLU",
           "TransformerLayersBase", "check_layers_type", "feed_forward", "_BlockStack", "_rows"]
