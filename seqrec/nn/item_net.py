"""Item tables: each block turns the catalog into one embedding per item, ``(n_items, d)``.

The table is computed once per step and used both to embed input sequences and to score
candidates (tied input/output embeddings). Blocks: learned id embeddings, categorical features
(one embedding per (feature, value) pair) and dense numeric features (a learned projection of
fixed vectors, e.g. pretrained text embeddings); a model sums the tables of its blocks.
"""

from __future__ import annotations

import typing as tp
import warnings

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..batching import take_rows
from ..dataset import Dataset, DenseFeatures, SparseFeatures


class ItemNetBase(nn.Module):
    """A block that produces the whole item table ``(n_items, n_factors)``.

    A block is built from a dataset at fit time (:meth:`from_dataset`) and rebuilt without data
    when a model is loaded (:meth:`from_spec`, then the state dict fills its tensors); its spec is
    JSON-able. :meth:`cold_vectors` embeds items outside the catalog when the block can (from
    features); blocks that only know ids return None.

    The network initialises every parameter matrix Xavier-normal; a block whose
    ``initialises_itself`` is True is skipped and its ``reset_parameters()`` called instead, and
    frozen parameters and buffers (fixed data) are never touched.
    """

    #: what the dataset must hold for :meth:`from_dataset` (named when it is missing)
    needs: tp.ClassVar[str] = "data this block needs"
    #: True: the network calls this block's ``reset_parameters()`` instead of its Xavier init
    initialises_itself: tp.ClassVar[bool] = False

    @classmethod
    def from_dataset(cls, dataset: Dataset, n_factors: int) -> tp.Optional["ItemNetBase"]:
        """Build the block for ``dataset``'s catalog, or return None when the data lacks what it needs."""
        raise NotImplementedError

    def get_spec(self) -> tp.Dict[str, tp.Any]:
        """JSON-able sizes and names that rebuild this block (with :meth:`from_spec`) before its
        weights are loaded."""
        raise NotImplementedError

    @classmethod
    def from_spec(cls, spec: tp.Dict[str, tp.Any], n_factors: int) -> "ItemNetBase":
        raise NotImplementedError

    def cold_vectors(self, dataset: Dataset, items: np.ndarray
                     ) -> tp.Optional[tp.Tuple[torch.Tensor, np.ndarray]]:
        """Vectors ``(len(items), d)`` of ``dataset`` items outside the catalog and a boolean mask of
        those it could embed, or None when this block cannot embed unknown items."""
        return None

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

    def get_spec(self) -> tp.Dict[str, tp.Any]:
        return {"n_items": self.n_items}

    @classmethod
    def from_spec(cls, spec: tp.Dict[str, tp.Any], n_factors: int) -> "IdEmbeddingsItemNet":
        return cls(int(spec["n_items"]), n_factors)

    def forward(self) -> torch.Tensor:
        return self.embedding.weight  # (n_items, d)


def _json_value(value: tp.Any) -> tp.Any:
    """A feature value as a JSON scalar (numpy scalars become Python ones)."""
    return value.item() if isinstance(value, np.generic) else value


class CatFeaturesItemNet(ItemNetBase):
    """One learned embedding per (feature, value) pair, summed over the pairs of each item.

    An item without categorical features gets a zero vector from this block. Items outside the
    catalog (cold items of a later dataset) are embedded from their pairs that the block knows.
    """

    needs = "categorical item features: pass item_features_df and cat_item_features to Dataset.construct"

    def __init__(self, n_items: int, n_factors: int, feature_indices: np.ndarray, feature_offsets: np.ndarray,
                 n_pairs: int, pair_names: tp.Sequence[tp.Tuple[str, tp.Any]] = ()) -> None:
        super().__init__()
        self.n_items = n_items
        self.pair_names = [(str(f), _json_value(v)) for f, v in pair_names]  # (n_pairs,) when known
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
        return cls(dataset.n_items, n_factors, cats.indices, cats.indptr[:-1], cats.n_columns, cats.names)

    def get_spec(self) -> tp.Dict[str, tp.Any]:
        return {"n_items": self.n_items, "n_pairs": self.embedding_bag.num_embeddings,
                "nnz": int(self.feature_indices.numel()), "pair_names": [list(p) for p in self.pair_names]}

    @classmethod
    def from_spec(cls, spec: tp.Dict[str, tp.Any], n_factors: int) -> "CatFeaturesItemNet":
        n_items, nnz = int(spec["n_items"]), int(spec["nnz"])
        return cls(n_items, n_factors, np.zeros(nnz, np.int64), np.zeros(n_items, np.int64), int(spec["n_pairs"]),
                   [tuple(p) for p in spec.get("pair_names", ())])

    def cold_vectors(self, dataset: Dataset, items: np.ndarray
                     ) -> tp.Optional[tp.Tuple[torch.Tensor, np.ndarray]]:
        feats = dataset.item_features
        device = self.feature_indices.device
        d = self.embedding_bag.embedding_dim
        if not isinstance(feats, SparseFeatures) or not self.pair_names or not feats.cat_columns.any():
            return torch.zeros(len(items), d, device=device), np.zeros(len(items), dtype=bool)
        cats = feats.categorical()
        known = pd.MultiIndex.from_tuples(self.pair_names)
        theirs = pd.MultiIndex.from_tuples([(str(f), _json_value(v)) for f, v in cats.names])
        pair_of = known.get_indexer(theirs).astype(np.int64)  # their column -> our pair (-1: unknown)
        indptr, pairs = take_rows(cats.indptr, cats.indices, items, pair_of)
        vectors = self.embedding_bag(torch.as_tensor(pairs, device=device),
                                     torch.as_tensor(indptr[:-1], device=device))  # (len(items), d)
        return vectors, np.diff(indptr) > 0

    def forward(self) -> torch.Tensor:
        return self.embedding_bag(self.feature_indices, self.feature_offsets)  # (n_items, d)


class DenseFeaturesItemNet(ItemNetBase):
    """Dense numeric item features projected to the embedding size by a learned linear map.

    The features are those of ``Dataset.construct(..., item_features_df=<"id" + numeric columns>,
    make_dense_item_features=True)``: any numeric attributes, or pretrained vectors (text or image
    embeddings, one column per dimension). They are kept as a buffer, fixed data that training
    and initialisation never change; only the projection ``(n_features -> d)``, without bias, is
    learned (an item without features gets a zero vector from this block). Items outside the
    catalog whose features the dataset holds (cold items) are embedded by the same projection,
    so an item with the same features as a catalog item gets the same vector from this block.
    """

    needs = ("dense item features: pass item_features_df (an 'id' column and one numeric column per feature) "
             "with make_dense_item_features=True to Dataset.construct")

    def __init__(self, n_items: int, n_factors: int, feature_names: tp.Sequence[str],
                 values: tp.Optional[np.ndarray] = None) -> None:
        super().__init__()
        self.n_items = n_items
        self.feature_names = [str(n) for n in feature_names]  # (n_features,)
        n_features = len(self.feature_names)
        if n_features == 0:
            raise ValueError("DenseFeaturesItemNet needs at least one feature column")
        self.proj = nn.Linear(n_features, n_factors, bias=False)
        # a copy: the dataset's arrays are read-only, and the block owns its data
        table = torch.zeros(n_items, n_features) if values is None else torch.from_numpy(
            np.array(values, dtype=np.float32, copy=True))
        if table.shape != (n_items, n_features):
            raise ValueError(f"DenseFeaturesItemNet: values of shape {tuple(table.shape)}, expected "
                             f"({n_items}, {n_features})")
        self.register_buffer("features", table)  # (n_items, n_features), fixed

    @classmethod
    def from_dataset(cls, dataset: Dataset, n_factors: int) -> tp.Optional["DenseFeaturesItemNet"]:
        feats = dataset.item_features
        if not isinstance(feats, DenseFeatures) or not feats.names:
            return None
        return cls(dataset.n_items, n_factors, feats.names, feats.values)

    def get_spec(self) -> tp.Dict[str, tp.Any]:
        return {"n_items": self.n_items, "feature_names": list(self.feature_names)}

    @classmethod
    def from_spec(cls, spec: tp.Dict[str, tp.Any], n_factors: int) -> "DenseFeaturesItemNet":
        return cls(int(spec["n_items"]), n_factors, spec["feature_names"])

    def cold_vectors(self, dataset: Dataset, items: np.ndarray
                     ) -> tp.Optional[tp.Tuple[torch.Tensor, np.ndarray]]:
        feats = dataset.item_features
        device = self.features.device
        d = self.proj.out_features
        if not isinstance(feats, DenseFeatures):
            return torch.zeros(len(items), d, device=device), np.zeros(len(items), dtype=bool)
        missing = sorted(set(self.feature_names) - set(map(str, feats.names)))
        if missing:
            raise ValueError(f"DenseFeaturesItemNet: the dataset's dense item features lack the column(s) "
                             f"{missing} the model was trained with (it has {list(feats.names)})")
        columns = pd.Index([str(n) for n in feats.names]).get_indexer(self.feature_names)
        values = np.asarray(feats.values)[np.asarray(items, dtype=np.int64)][:, columns]  # (len(items), n_features)
        vectors = self.proj(torch.as_tensor(values, dtype=self.features.dtype, device=device))  # (len(items), d)
        # Dataset.construct gives the items absent from the table a row of zeros: not embedded
        return vectors, (values != 0).any(axis=1)

    def forward(self) -> torch.Tensor:
        return self.proj(self.features)  # (n_items, d)


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
                    raise ValueError(f"{block_type.__name__} is the only item block but the dataset lacks its "
                                     f"{block_type.needs}")
                warnings.warn(f"Ignoring {block_type.__name__}: the dataset lacks its {block_type.needs}",
                              stacklevel=5)
                continue
            blocks.append(block)
        return cls(blocks)

    def cold_vectors(self, dataset: Dataset, items: np.ndarray
                     ) -> tp.Optional[tp.Tuple[torch.Tensor, np.ndarray]]:
        """Vectors ``(len(items), d)`` of ``dataset`` items outside the catalog: the sum of what the
        blocks that embed features give, and the mask of items at least one such block embedded;
        None when no block can embed unknown items."""
        total: tp.Optional[torch.Tensor] = None
        ok = np.zeros(len(items), dtype=bool)
        for block in self.blocks:
            cold = block.cold_vectors(dataset, items)
            if cold is not None:
                total = cold[0] if total is None else total + cold[0]
                ok |= cold[1]
        return None if total is None else (total, ok)

    def forward(self) -> torch.Tensor:
        table = self.blocks[0]()
        for block in self.blocks[1:]:
            table = table + block()
        return table  # (n_items, d)
