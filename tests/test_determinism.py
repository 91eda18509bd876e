"""Reproducible training: a seed and ``deterministic=True`` give the same model on every fit, with
or without DataLoader worker processes; the epoch sampler shards without losing or doubling a
sample under a distributed world size."""

import numpy as np
import pandas as pd
import pytest
import torch

from seqrec import BERT4RecModel, IdEmbeddingsItemNet, SASRecModel
from seqrec.training import EpochSampler, ValidationSamples, WindowDataset, epoch_seed, make_dataloader


def _model(cls, **kw):
    params = dict(n_factors=16, n_heads=2, n_blocks=1, session_max_len=8, epochs=2, lr=0.01, batch_size=32,
                  deterministic=True, random_state=7, recommend_torch_device="cpu",
                  item_net_block_types=(IdEmbeddingsItemNet,))
    params.update(kw)
    return cls(**params)


def _reco(model, dataset):
    users = dataset.user_id_map.external_ids[:30]
    return model.recommend(users, dataset, k=5, filter_viewed=False)


@pytest.mark.parametrize("cls, loss", [(SASRecModel, "softmax"), (BERT4RecModel, "BCE")])
def test_repeated_fits_are_identical_with_and_without_workers(cls, loss, cycle_dataset):
    # BERT4Rec with BCE draws masks and negatives every step; dropout is on in both
    first = _reco(_model(cls, loss=loss).fit(cycle_dataset), cycle_dataset)
    again = _reco(_model(cls, loss=loss).fit(cycle_dataset), cycle_dataset)
    workers = _reco(_model(cls, loss=loss, dataloader_num_workers=2).fit(cycle_dataset), cycle_dataset)
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first, workers)  # worker processes draw nothing: the same model
    other_seed = _reco(_model(cls, loss=loss, random_state=8).fit(cycle_dataset), cycle_dataset)
    assert not np.array_equal(first["score"].to_numpy(), other_seed["score"].to_numpy())


def test_deterministic_without_a_seed_uses_seed_zero(cycle_dataset):
    a = _model(SASRecModel, random_state=None).fit(cycle_dataset)
    b = _model(SASRecModel, random_state=0).fit(cycle_dataset)
    assert a.train_seed_ == 0
    pd.testing.assert_frame_equal(_reco(a, cycle_dataset), _reco(b, cycle_dataset))


def test_the_worker_loader_gives_the_batches_of_the_main_process(cycle_dataset):
    inter = cycle_dataset.interactions
    samples = WindowDataset(inter, np.arange(inter.n_users), 6)
    batches = [[b.tolist() for b in make_dataloader(samples, 16, True, seed=3, num_workers=w)] for w in (0, 2)]
    assert batches[0] == batches[1]


@pytest.mark.parametrize("n, world", [(10, 1), (10, 3), (9, 3), (7, 4), (2, 4)])
def test_sampler_shards_cover_every_sample_once_plus_marked_padding(n, world):
    shards = [list(EpochSampler(n, seed=1, offset=2, num_replicas=world, rank=r)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # equal batch counts on every rank (DDP needs them)
    assert all(len(s) == len(EpochSampler(n, 1, num_replicas=world, rank=r)) for r, s in enumerate(shards))
    flat = [i for s in shards for i in s]
    real = sorted(i for i in flat if i < n)
    assert real == list(range(n))  # every sample exactly once
    padding = [i for i in flat if i >= n]
    assert len(padding) == -(-n // world) * world - n and all(i - n < n for i in padding)
    # rank-wise shards of the permutation of one process, in its order
    whole = list(EpochSampler(n, seed=1, offset=2))
    assert [i for i in shards[0] if i < n] == [i for i in whole[0::world]]


def test_sampler_epochs_depend_on_seed_and_epoch_only():
    a, b = EpochSampler(50, seed=4, offset=1), EpochSampler(50, seed=4)
    b.set_epoch(1)  # epoch 1 of a run, whether it is a's first epoch after an offset or b's second
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    assert list(EpochSampler(5, 0, shuffle=False)) == [0, 1, 2, 3, 4]
    assert epoch_seed(3, 2) == epoch_seed(3, 2, rank=0) != epoch_seed(3, 2, rank=1)


def test_validation_padding_copies_weigh_nothing():
    tokens = np.arange(12).reshape(3, 4)
    val = ValidationSamples(tokens, np.array([5, 6, 7]), np.array([0, 1, 1, 3]), np.array([2, 3, 4]))
    batch = val.__getitems__([2, 3, 0])  # 3 = a padding copy of sample 0
    assert batch["weight"].tolist() == [1.0, 0.0, 1.0]
    assert batch["target"].tolist() == [7, 5, 5]
    assert torch.equal(batch["tokens"][1], batch["tokens"][2])
