"""GPU tests: bf16 autocast, torch.compile, a training step without host synchronisation, recommend
on CUDA. Skipped without a CUDA device (run by ``benchmarks/gpu.sh`` on a GPU machine)."""

import numpy as np
import pandas as pd
import pytest
import torch

from seqrec import BERT4RecModel, Columns, IdEmbeddingsItemNet, SASRecModel
from seqrec.nn.transformer import N_SPECIAL, PAD

from conftest import expected_next

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

MODELS = [SASRecModel, BERT4RecModel]


def small_model(model_cls, **overrides):
    params = dict(n_factors=32, n_heads=2, n_blocks=1, session_max_len=16, epochs=15, lr=0.01, batch_size=32,
                  dropout_rate=0.0, loss="softmax", deterministic=True, random_state=0,
                  item_net_block_types=(IdEmbeddingsItemNet,))
    if model_cls is BERT4RecModel:
        params.update(mask_prob=0.3, epochs=30)
    params.update(overrides)
    return model_cls(**params)


def top1_accuracy(model, df, dataset):
    expected = expected_next(df)
    reco = model.recommend(expected.index, dataset, k=1, filter_viewed=False)
    top1 = reco.set_index(Columns.User)[Columns.Item].reindex(expected.index)
    return float((top1 == expected).mean())


@pytest.mark.parametrize("model_cls", MODELS)
@pytest.mark.parametrize("loss", ["softmax", "gBCE", "sampled_softmax"])
def test_bf16_training_on_cuda_learns_the_cycle(model_cls, loss, cycle_df, cycle_dataset):
    model = small_model(model_cls, precision="bf16", loss=loss, n_negatives=4,
                        recommend_torch_device="cuda").fit(cycle_dataset)
    assert next(model.lightning_model.parameters()).device.type in ("cuda", "cpu")
    assert top1_accuracy(model, cycle_df, cycle_dataset) >= (0.95 if model_cls is SASRecModel else 0.85)


@pytest.mark.parametrize("model_cls", MODELS)
def test_torch_compile_on_cuda(model_cls, cycle_df, cycle_dataset):
    compiled = small_model(model_cls, torch_compile=True, precision="bf16").fit(cycle_dataset)
    assert top1_accuracy(compiled, cycle_df, cycle_dataset) >= (0.95 if model_cls is SASRecModel else 0.85)


@pytest.mark.parametrize("model_cls", MODELS)
@pytest.mark.parametrize("loss", ["softmax", "BCE", "gBCE", "sampled_softmax"])
def test_training_step_does_not_synchronise_with_the_host(model_cls, loss, cycle_dataset):
    model = small_model(model_cls, epochs=1, loss=loss, n_negatives=4, precision="bf16").fit(cycle_dataset)
    module = model.lightning_model.to("cuda")
    module.log = lambda *args, **kwargs: None  # logging belongs to Lightning, outside the step's math
    n_items = model.net_.n_items
    gen = torch.Generator().manual_seed(0)
    window = torch.randint(N_SPECIAL, N_SPECIAL + n_items, (32, model._train_window()), generator=gen)
    lengths = torch.randint(2, window.shape[1] + 1, (32,), generator=gen)
    window[torch.arange(window.shape[1]) >= lengths[:, None]] = PAD  # right padding
    window = window.to("cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss_value = module.training_step(window, 0)
        loss_value.backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.isfinite(loss_value).item()


@pytest.mark.parametrize("model_cls", MODELS)
def test_recommend_on_cuda_equals_cpu(model_cls, cycle_dataset):
    model = small_model(model_cls, epochs=2, precision="fp32").fit(cycle_dataset)
    users = cycle_dataset.user_id_map.external_ids[:50]
    cpu = model.set_params(recommend_torch_device="cpu").recommend(users, cycle_dataset, k=5, filter_viewed=True)
    gpu = model.set_params(recommend_torch_device="cuda").recommend(users, cycle_dataset, k=5, filter_viewed=True)
    pd.testing.assert_frame_equal(cpu[[Columns.User, Columns.Rank]], gpu[[Columns.User, Columns.Rank]])
    np.testing.assert_allclose(cpu[Columns.Score], gpu[Columns.Score], rtol=1e-3, atol=1e-3)
    # the item lists agree except where two scores tie within float noise
    same = (cpu[Columns.Item].to_numpy() == gpu[Columns.Item].to_numpy()).mean()
    assert same >= 0.98
    i2i = model.recommend_to_items(cycle_dataset.item_id_map.external_ids[:5], k=3)
    assert len(i2i) == 15
