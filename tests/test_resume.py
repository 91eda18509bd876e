"""Training that survives interruption: a checkpoint after every epoch, written atomically; a
resumed run equals an uninterrupted one; a NaN loss stops training with the epoch and step named
and leaves the last good checkpoint whole; Lightning's ModelCheckpoint (RecTools' way) resumes too."""

import os

import lightning.pytorch as L
import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from seqrec import IdEmbeddingsItemNet, SASRecModel, leave_one_out_mask
from seqrec import training
from seqrec.training import NonFiniteLossError, SeqRecModule

EPOCHS = 4


def _model(**kw):
    params = dict(n_factors=16, n_heads=2, n_blocks=1, session_max_len=8, epochs=EPOCHS, lr=0.01, batch_size=32,
                  deterministic=True, random_state=5, recommend_torch_device="cpu",
                  item_net_block_types=(IdEmbeddingsItemNet,))
    params.update(kw)
    return SASRecModel(**params)


def _reco(model, dataset):
    return model.recommend(dataset.user_id_map.external_ids[:40], dataset, k=5, filter_viewed=False)


@pytest.fixture(scope="module")
def uninterrupted(cycle_dataset):
    return _model().fit(cycle_dataset)


class Preempted(RuntimeError):
    """Stands for a killed job (Lightning turns a KeyboardInterrupt into an exit)."""


def _crash_at_epoch(monkeypatch, epoch):
    """Make training die at the start of (0-based) ``epoch``, as a preempted job would."""
    original = SeqRecModule.on_train_epoch_start

    def crash(self):
        if self.epoch_offset + self.current_epoch == epoch:
            raise Preempted("preempted")
        original(self)

    monkeypatch.setattr(SeqRecModule, "on_train_epoch_start", crash)


def test_resume_after_a_crash_equals_the_uninterrupted_run(cycle_dataset, uninterrupted, tmp_path, monkeypatch):
    folder = tmp_path / "ckpt"
    with monkeypatch.context() as m:
        _crash_at_epoch(m, 2)
        with pytest.raises(Preempted):
            _model().fit(cycle_dataset, checkpoint_dir=folder)
    assert os.listdir(folder) == ["last.ckpt"]  # no temporary file left behind
    half = SASRecModel.load_from_checkpoint(folder / "last.ckpt")
    assert half.epochs_done_ == 2 and list(half.history_["epoch"]) == [1, 2]

    # the same command with resume=True trains the 2 epochs left
    resumed = _model().fit(cycle_dataset, checkpoint_dir=folder, resume=True)
    assert resumed.epochs_done_ == EPOCHS
    pd.testing.assert_frame_equal(_reco(resumed, cycle_dataset), _reco(uninterrupted, cycle_dataset))
    pd.testing.assert_frame_equal(resumed.history_, uninterrupted.history_)
    for k, v in uninterrupted.net_.state_dict().items():
        assert torch.equal(resumed.net_.state_dict()[k], v), k

    # the checkpoint now holds the finished run: resuming again trains nothing
    again = _model().fit(cycle_dataset, checkpoint_dir=folder, resume=True)
    assert again.epochs_done_ == EPOCHS
    pd.testing.assert_frame_equal(_reco(again, cycle_dataset), _reco(uninterrupted, cycle_dataset))

    # the other way: load the checkpoint, then fit_partial for the epochs left
    loaded = SASRecModel.load_from_checkpoint(folder / "last.ckpt")
    assert loaded.epochs_done_ == EPOCHS


def test_load_from_checkpoint_then_fit_partial_equals_one_fit(cycle_dataset, uninterrupted, tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        _crash_at_epoch(m, 3)
        with pytest.raises(Preempted):
            _model().fit(cycle_dataset, checkpoint_dir=tmp_path)
    model = SASRecModel.load_from_checkpoint(tmp_path / "last.ckpt")
    assert model.epochs_done_ == 3
    model.fit_partial(cycle_dataset, max_epochs=1)
    pd.testing.assert_frame_equal(_reco(model, cycle_dataset), _reco(uninterrupted, cycle_dataset))


def test_without_resume_fit_starts_afresh_and_overwrites(cycle_dataset, uninterrupted, tmp_path):
    _model(epochs=1, random_state=9).fit(cycle_dataset, checkpoint_dir=tmp_path)
    model = _model().fit(cycle_dataset, checkpoint_dir=tmp_path)  # another seed before: not resumed
    pd.testing.assert_frame_equal(_reco(model, cycle_dataset), _reco(uninterrupted, cycle_dataset))
    assert SASRecModel.load_from_checkpoint(tmp_path / "last.ckpt").epochs_done_ == EPOCHS


def test_resume_refuses_a_checkpoint_of_other_parameters(cycle_dataset, tmp_path):
    _model(epochs=1).fit(cycle_dataset, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="other parameters: lr=0.01 there, 0.02 here"):
        _model(lr=0.02).fit(cycle_dataset, checkpoint_dir=tmp_path, resume=True)
    # more epochs than the checkpointed run planned is fine: it trains on
    longer = _model(epochs=2).fit(cycle_dataset, checkpoint_dir=tmp_path, resume=True)
    assert longer.epochs_done_ == 2


def test_checkpoint_options_are_checked(cycle_dataset, tmp_path):
    with pytest.raises(TypeError, match="checkpoint_dir must be a path"):
        _model().fit(cycle_dataset, checkpoint_dir=3)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        _model().fit(cycle_dataset, resume=True)
    with pytest.raises(TypeError, match="resume must be True or False"):
        _model().fit(cycle_dataset, checkpoint_dir=tmp_path, resume="yes")
    assert training.checkpoint_path(tmp_path, np.bool_(False)) is not None  # numpy's booleans, as the models' flags
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        training.checkpoint_path(None, np.True_)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        _model().fit(cycle_dataset, checkpoint_dir=tmp_path / "file")
    with pytest.raises(ValueError, match="not supported with early_stopping"):
        _model(get_val_mask_func=leave_one_out_mask, early_stopping="val_loss").fit(
            cycle_dataset, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="not supported with lr_schedule='cosine'"):
        _model(lr_schedule="cosine").fit(cycle_dataset, checkpoint_dir=tmp_path, resume=True)


def test_a_nan_loss_stops_with_epoch_and_step_and_keeps_the_last_good_checkpoint(cycle_dataset, tmp_path,
                                                                                 monkeypatch):
    good = _model(epochs=2).fit(cycle_dataset)
    steps = int(np.ceil(cycle_dataset.n_users / 32))  # batches per epoch (every cycle user trains)
    calls = []
    real = training.compute_loss

    def poisoned(*args, **kwargs):  # the loss of epoch 3 (1-based), step 1 becomes NaN
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * float("nan") if len(calls) == 2 * steps + 2 else loss

    monkeypatch.setattr(training, "compute_loss", poisoned)
    model = _model()
    with pytest.raises(NonFiniteLossError, match=r"train_loss is nan at epoch 3 \(1-based\), step 1 of the epoch"):
        model.fit(cycle_dataset, checkpoint_dir=tmp_path)
    assert os.listdir(tmp_path) == ["last.ckpt"]
    kept = SASRecModel.load_from_checkpoint(tmp_path / "last.ckpt")
    assert kept.epochs_done_ == 2
    pd.testing.assert_frame_equal(_reco(kept, cycle_dataset), _reco(good, cycle_dataset))


def test_a_diverging_learning_rate_is_caught(cycle_dataset):
    with pytest.raises(NonFiniteLossError, match=r"at epoch \d+ \(1-based\), step \d+"):
        _model(lr=1e30, epochs=20).fit(cycle_dataset)


def test_lightning_model_checkpoint_resumes_as_rectools_users_do(cycle_dataset, uninterrupted, tmp_path):
    def trainer():
        return L.Trainer(max_epochs=2, deterministic=True, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, devices=1, accelerator="cpu",
                         callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)])

    _model(get_trainer_func=trainer).fit(cycle_dataset)
    model = SASRecModel.load_from_checkpoint(tmp_path / "last.ckpt")
    assert model.epochs_done_ == 2 and model.get_trainer_func is None  # a lambda-free config: default trainer
    model.fit_partial(cycle_dataset, max_epochs=EPOCHS - 2)
    pd.testing.assert_frame_equal(_reco(model, cycle_dataset), _reco(uninterrupted, cycle_dataset))
