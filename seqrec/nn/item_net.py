"""Item tables: each block turns the catalog into one embedding per item, ``(n_items, d)``.

The table is computed once per step and used both to embed input sequences and to score
candidates (tied input/output embeddings).
"""

from __future__ import annotations

import typing as tp
import warnings

import numpy as np
import torch
from torch import nn

from ..dataset import Dataset, SparseFeatures


class ItemNetBase(nn.Module):
    """A block that produces the whole item table ``(n_items, n_factors)``."""

    @classmethod
    def from_dataset(cls, dataset: Dataset, n_factors: int) -> tp.Optional["ItemNetBase"]:
        """Build the block for ``dataset``'s catalog, or return None when the data lacks what it needs."""
        raise NotImplementedError

    def forward(self) -> torch.Tensor:  # (n_items, d)
        raise NotImplementedError


class IdEmbeddingsItemNet(ItemNetBase):
    """One learned embedding per item id."""

    def __init__(self, n_items: int, n_factors: int) -> None:
        super().__init__()
        self.n_items = n_items
        self.embedding = nn.Embedding(n_items, n_factors)

    @classmethod
    def from_dataset(cls, dataset: Dataset, n_factors: int) -> "IdEmbeddingsItemNet":
        return cls(dataset.n_items, n_factors)

    def forward(self) -> torch.Tensor:
        return self.embedding.weight  # (n_items, d)


class CatFeaturesItemNet(ItemNetBase):
    """One learned embedding per (feature, value) pair, summed over the pairs of each item.

    An item without categorical features gets a zero vector from this block.
    """

    def __init__(self, n_items: int, n_factors: int, feature_indices: np.ndarray, feature_offsets: np.ndarray,
                 n_pairs: int) -> None:
        super().__init__()
        self.n_items = n_items
        self.embedding_bag = nn.EmbeddingBag(n_pairs, n_factors, mode="sum")
        # CSR of the item -> (feature, value) pairs, kept with the module so that it moves with it
        self.register_buffer("feature_indices", torch.as_tensor(np.asarray(feature_indices), dtype=torch.long))
        self.register_buffer("feature_offsets", torch.as_tensor(np.asarray(feature_offsets), dtype=torch.long))

    @classmethod
    def from_dataset(cls, dataset: Dataset, n_factors: int) -> tp.Optional["CatFeaturesItemNet"]:
        feats = dataset.item_features
        if not isinstance(feats, SparseFeatures) or not feats.cat_columns.any():
            return None
        cats = feats.categorical()
        return cls(dataset.n_items, n_factors, cats.indices, cats.indptr[:-1], cats.n_columns)

    def forward(self) -> torch.Tensor:
        return self.embedding_bag(self.feature_indices, self.feature_offsets)  # (n_items, d)


class SumItemNet(nn.Module):
    """Sum of the tables of several item blocks."""

    def __init__(self, blocks: tp.Sequence[ItemNetBase]) -> None:
        super().__init__()
        if not blocks:
            raise ValueError("SumItemNet needs at least one block")
        self.blocks = nn.ModuleList(blocks)
        self.n_items = blocks[0].n_items

    @classmethod
    def from_dataset(cls, dataset: Dataset, n_factors: int, block_types: tp.Sequence[tp.Type[ItemNetBase]]) -> "SumItemNet":
        blocks = []
        for block_type in block_types:
            block = block_type.from_dataset(dataset, n_factors)
            if block is None:
                if len(block_types) == 1:
                    raise ValueError(
                        f"{block_type.__name__} is the only item block but the dataset has no categorical item "
                        "features: pass item_features_df and cat_item_features to Dataset.construct"
                    )
                warnings.warn(f"Ignoring {block_type.__name__}: the dataset has no categorical item features",
                              stacklevel=3)
                continue
            blocks.append(block)
        return cls(blocks)

    def forward(self) -> torch.Tensor:
        table = self.blocks[0]()
        for block in self.blocks[1:]:
            table = table + block()
        return table  # (n_items, d)
