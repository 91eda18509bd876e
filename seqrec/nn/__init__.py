"""Neural building blocks: item tables, the transformer encoder and the losses."""

from .item_net import CatFeaturesItemNet, DenseFeaturesItemNet, IdEmbeddingsItemNet, ItemNetBase, SumItemNet
from .transformer import MASK, N_SPECIAL, PAD, TransformerNet

__all__ = ["CatFeaturesItemNet", "DenseFeaturesItemNet", "IdEmbeddingsItemNet", "ItemNetBase", "SumItemNet",
           "TransformerNet", "PAD", "MASK", "N_SPECIAL"]
