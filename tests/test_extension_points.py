"""seqrec's own extension points, as the README shows them: a custom item block, a custom
transformer layer type and a custom training objective, trained, saved and loaded (after
registering them)."""

import typing as tp

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import seqrec
from seqrec import Columns, Dataset, IdEmbeddingsItemNet, ItemNetBase, SASRecModel, TransformerLayersBase
from seqrec.dataset import DenseFeatures


class DenseFeaturesItemNet(ItemNetBase):
    """Item vectors from dense numeric features through a linear layer (an item without
    features gets the bias)."""

    def __init__(self, n_items: int, n_factors: int, n_features: int) -> None:
        super().__init__()
        self.n_items = n_items
        self.proj = nn.Linear(n_features, n_factors)
        self.register_buffer("features", torch.zeros(n_items, n_features))

    @classmethod
    def from_dataset(cls, dataset: Dataset, n_factors: int) -> tp.Optional["DenseFeaturesItemNet"]:
        feats = dataset.item_features
        if not isinstance(feats, DenseFeatures):
            return None  # seqrec then warns and uses the other blocks
        block = cls(dataset.n_items, n_factors, feats.values.shape[1])
        block.features.copy_(torch.as_tensor(feats.values))
        return block

    def get_spec(self) -> tp.Dict[str, tp.Any]:
        return {"n_items": self.n_items, "n_features": self.proj.in_features}

    @classmethod
    def from_spec(cls, spec: tp.Dict[str, tp.Any], n_factors: int) -> "DenseFeaturesItemNet":
        return cls(spec["n_items"], n_factors, spec["n_features"])

    def forward(self) -> torch.Tensor:
        return self.proj(self.features)  # (n_items, d)


class MLPLayers(TransformerLayersBase):
    """A stack without attention: a residual MLP per position over a causal running mean of the
    inputs (the base class's forward_last serves inference)."""

    def __init__(self, n_blocks: int, n_factors: int, n_heads: int, dropout: float, ff_multiplier: int = 1,
                 activation: str = "relu") -> None:
        super().__init__(n_blocks, n_factors, n_heads, dropout, ff_multiplier, activation)
        self.mlps = nn.ModuleList(nn.Sequential(nn.LayerNorm(n_factors), nn.Linear(n_factors, n_factors), nn.ReLU())
                                  for _ in range(n_blocks))
        self.ln = nn.LayerNorm(n_factors)

    def forward(self, x: torch.Tensor, attn_mask: tp.Optional[torch.Tensor], is_causal: bool) -> torch.Tensor:
        counts = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype).view(1, -1, 1)
        h = x.cumsum(dim=1) / counts  # (B, L, d): mean of positions 0..t
        for mlp in self.mlps:
            h = h + mlp(h)
        return self.ln(h)


@pytest.fixture(scope="module")
def dense_dataset(cycle_df):
    items = pd.unique(cycle_df[Columns.Item])
    feats = pd.DataFrame({Columns.Id: items, "x": np.arange(len(items), dtype=float) / len(items),
                          "y": (np.arange(len(items)) % 3).astype(float)})
    return Dataset.construct(cycle_df, item_features_df=feats, make_dense_item_features=True)


def _model(**kw):
    return SASRecModel(n_factors=16, n_heads=2, n_blocks=1, session_max_len=10, epochs=2, lr=0.01, batch_size=32,
                       random_state=0, recommend_torch_device="cpu", **kw)


def test_custom_item_block_trains_saves_and_loads(dense_dataset, tmp_path):
    model = _model(item_net_block_types=(IdEmbeddingsItemNet, DenseFeaturesItemNet))
    with pytest.warns(UserWarning, match="Numeric item features"):  # the built-in blocks do not use them
        model.fit(dense_dataset)
    assert any(isinstance(b, DenseFeaturesItemNet) for b in model.net_.item_net.blocks)
    model.save(tmp_path / "m")
    seqrec.register(DenseFeaturesItemNet)
    loaded = seqrec.load_model(tmp_path / "m")
    users = dense_dataset.user_id_map.external_ids[:10]
    pd.testing.assert_frame_equal(model.recommend(users, dense_dataset, k=3, filter_viewed=False),
                                  loaded.recommend(users, dense_dataset, k=3, filter_viewed=False))


def test_custom_layer_type_trains_saves_and_loads(cycle_dataset, tmp_path):
    model = _model(item_net_block_types=(IdEmbeddingsItemNet,), transformer_layers_type=MLPLayers)
    model.fit(cycle_dataset)
    assert isinstance(model.net_.layers, MLPLayers) or any(isinstance(m, MLPLayers) for m in model.net_.modules())
    seqrec.register(MLPLayers)
    model.save(tmp_path / "m")
    loaded = seqrec.load_model(tmp_path / "m")
    assert loaded.transformer_layers_type is MLPLayers
    users = cycle_dataset.user_id_map.external_ids[:10]
    pd.testing.assert_frame_equal(model.recommend(users, cycle_dataset, k=3, filter_viewed=False),
                                  loaded.recommend(users, cycle_dataset, k=3, filter_viewed=False))


class LastItemSASRec(SASRecModel):
    """A custom training objective: SASRec trained on the last position of each window only (the
    next-item target of the whole history), instead of every position."""

    def _training_batch(self, window: torch.Tensor, n_items: int) -> tp.Tuple[torch.Tensor, torch.Tensor]:
        tokens, targets = super()._training_batch(window, n_items)  # (B, L), (B, L); -1 = no target
        last = (targets >= 0).sum(dim=1, keepdim=True) - 1  # (B, 1) the last position with a target
        keep = torch.arange(targets.shape[1], device=targets.device).unsqueeze(0) == last
        return tokens, torch.where(keep, targets, -1)


def test_custom_training_objective_trains_saves_and_loads(cycle_df, cycle_dataset, tmp_path):
    from conftest import expected_next
    model = LastItemSASRec(n_factors=16, n_heads=2, n_blocks=1, session_max_len=10, epochs=40, lr=0.02,
                           batch_size=32, dropout_rate=0.0, random_state=0, recommend_torch_device="cpu",
                           item_net_block_types=(IdEmbeddingsItemNet,))
    window = torch.tensor([[5, 6, 7, 0, 0]])
    _, targets = model._training_batch(window, 10)
    assert targets.tolist() == [[-1, 7 - 2, -1, -1]]  # one target: the last item (token 7, catalog id 5)
    model.fit(cycle_dataset)
    expected = expected_next(cycle_df)
    top1 = model.recommend(expected.index, cycle_dataset, k=1, filter_viewed=False).set_index(Columns.User)
    assert (top1[Columns.Item].reindex(expected.index) == expected).mean() > 0.8
    seqrec.register(LastItemSASRec)
    model.save(tmp_path / "m")
    loaded = seqrec.load_model(tmp_path / "m")
    assert type(loaded) is LastItemSASRec
