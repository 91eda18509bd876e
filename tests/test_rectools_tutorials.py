"""RecTools' transformer tutorials, run on seqrec with only the imports changed.

Each test keeps the essential transformer-model calls of one notebook of RecTools (0.17-0.19):

* ``examples/tutorials/transformers_tutorial.ipynb``                 -> ``test_tutorial_*``
* ``examples/tutorials/transformers_advanced_training_guide.ipynb``  -> ``test_guide_*``
* ``examples/9_model_configs_and_saving.ipynb``                       -> ``test_configs_*``

The code is written as a RecTools user writes it; what differs from the notebooks:

* imports: ``rectools``, ``rectools.dataset``, ``rectools.models``, ``rectools.models.nn.item_net``
  become ``seqrec``; ``from pytorch_lightning import ...`` becomes ``from lightning.pytorch import ...``
  (``pytorch_lightning`` is not a dependency of seqrec; ``test_guide_pytorch_lightning_trainer``
  runs the same calls with ``pytorch_lightning`` when it is installed);
* data: the embedded MovieLens (a subset of users) instead of KION, which cannot be downloaded here;
  tiny models and ``accelerator="cpu"``, ``limit_train_batches``, few epochs;
* custom functions stored in a saved model are registered with ``seqrec.register`` (seqrec never
  imports a module named in a file; RecTools unpickles them);
* the recsys-metrics callback of the advanced guide reads RecTools' Lightning-module internals
  (``pl_module.torch_model.encode_sessions``, ``pl_module.item_embs``, ``outputs["logits"]``,
  ``batch["x"]``/``batch["y"]``, ``pl_module.data_preparator.train_dataset``), which seqrec does not
  provide; the callback here computes its metric from what Lightning gives every callback;
* the cross-validation cells (``cross_validate``, ``TimeRangeSplitter``) belong to another issue.
"""

import json
import os
import pickle
import typing as tp
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.fabric import seed_everything  # notebook: from lightning_fabric import seed_everything
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from seqrec import (
    BERT4RecModel,
    CatFeaturesItemNet,
    Columns,
    Dataset,
    DistanceSimilarityModule,
    ExternalIds,
    IdEmbeddingsItemNet,
    PopularModel,
    SASRecModel,
    TransformerModelBase,
    leave_one_out_mask,
    load_model,
    model_from_config,
    model_from_params,
    register,
)
from seqrec.datasets import load_movielens_small

N_USERS = 120  # users of the embedded MovieLens kept for these tests
RANDOM_STATE = 60
TINY = dict(n_factors=16, n_blocks=1, n_heads=2, session_max_len=20, batch_size=64)


# ------------------------------------------------------------------------------------ data


@pytest.fixture(scope="module")
def ml():
    return load_movielens_small()


@pytest.fixture(scope="module")
def interactions(ml) -> pd.DataFrame:
    """Interactions of the first users, plus the two special users of the tutorial's
    "inference tricks" section: one with a single interaction with a known item, and one whose
    only item no training user has seen."""
    df = ml.interactions
    users = pd.unique(df[Columns.User])[:N_USERS]
    df = df[df[Columns.User].isin(users)].reset_index(drop=True)
    popular = df[Columns.Item].value_counts().index[0]
    t = df[Columns.Datetime].max()
    extra = pd.DataFrame({
        Columns.User: [900001, 900002],
        Columns.Item: [popular, 99999999],
        Columns.Weight: [1.0, 1.0],
        Columns.Datetime: [t, t],
    })
    return pd.concat([df, extra], ignore_index=True)


@pytest.fixture(scope="module")
def item_features(ml, interactions) -> pd.DataFrame:
    f = ml.item_features
    return f[f[Columns.Id].isin(interactions[Columns.Item])].reset_index(drop=True)


@pytest.fixture(scope="module")
def dataset(interactions, item_features) -> Dataset:
    # transformers_tutorial, cell 10
    return Dataset.construct(
        interactions_df=interactions,
        item_features_df=item_features,
        cat_item_features=["genre"],
    )


@pytest.fixture(scope="module")
def dataset_no_features(interactions) -> Dataset:
    # advanced training guide, cell 6: interactions only
    return Dataset.construct(interactions)


@pytest.fixture(scope="module")
def test_user(interactions):
    return interactions[Columns.User].iloc[0]


@pytest.fixture(scope="module")
def test_item(interactions):
    return interactions[Columns.Item].value_counts().index[1]


@pytest.fixture
def in_tmp_dir(tmp_path, monkeypatch):
    """The notebooks write logs, checkpoints and model files into the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def assert_reco_table(reco: pd.DataFrame, target_col: str, n_targets: int, k: int) -> None:
    assert list(reco.columns) == [target_col, Columns.Item, Columns.Score, Columns.Rank]
    assert len(reco) == n_targets * k
    assert (reco.groupby(target_col, sort=False)[Columns.Rank].apply(list) == [list(range(1, k + 1))] * n_targets).all()
    for _, group in reco.groupby(target_col, sort=False):
        assert group[Columns.Score].is_monotonic_decreasing


def fitted_same(model_1: TransformerModelBase, model_2: TransformerModelBase, dataset: Dataset, users) -> None:
    reco_1 = model_1.recommend(users=users, dataset=dataset, k=5, filter_viewed=True)
    reco_2 = model_2.recommend(users=users, dataset=dataset, k=5, filter_viewed=True)
    pd.testing.assert_frame_equal(reco_1, reco_2)


# ------------------------------------------------------------------- transformers_tutorial


def test_tutorial_basic_usage(dataset, test_user):
    # cells 2 and 32-34: seed_everything, SASRec and BERT4Rec with the tutorial's arguments
    torch.use_deterministic_algorithms(True)
    seed_everything(RANDOM_STATE, workers=True)
    sasrec = SASRecModel(
        session_max_len=20,
        loss="softmax",
        n_factors=32,
        n_blocks=1,
        n_heads=4,
        dropout_rate=0.2,
        lr=0.001,
        batch_size=128,
        epochs=1,
        verbose=0,
        deterministic=True,
    )
    bert4rec = BERT4RecModel(
        mask_prob=0.15,  # specify probability of masking tokens
        deterministic=True,
        **TINY,
        epochs=1,
    )
    assert sasrec.fit(dataset) is sasrec  # the notebook writes `sasrec.fit(dataset);`
    recos = sasrec.recommend(
        users=[test_user],
        dataset=dataset,
        k=3,
        filter_viewed=True,
        on_unsupported_targets="warn",
    )
    assert_reco_table(recos, Columns.User, 1, 3)
    seen = dataset.get_raw_interactions()
    seen = set(seen.loc[seen[Columns.User] == test_user, Columns.Item])
    assert not seen & set(recos[Columns.Item])
    bert4rec.fit(dataset)
    assert_reco_table(bert4rec.recommend(users=[test_user], dataset=dataset, k=3, filter_viewed=True),
                      Columns.User, 1, 3)


def test_tutorial_item_net_blocks_and_losses(dataset, test_user):
    # cells 37, 40 and 48: item net blocks, losses, and reading the blocks back from get_params
    models = {
        "sasrec_softmax_ids_only": SASRecModel(deterministic=True, loss="softmax",
                                               item_net_block_types=(IdEmbeddingsItemNet,)),
        "sasrec_softmax_ids_and_cat": SASRecModel(deterministic=True, loss="softmax",
                                                  item_net_block_types=(IdEmbeddingsItemNet, CatFeaturesItemNet)),
        "sasrec_softmax_cat_only": SASRecModel(deterministic=True, loss="softmax",
                                               item_net_block_types=(CatFeaturesItemNet,)),
        "sasrec_bce": SASRecModel(deterministic=True, loss="BCE", n_negatives=50),
        "sasrec_gbce": SASRecModel(deterministic=True, loss="gBCE", n_negatives=50, gbce_t=0.2),
    }
    blocks = {
        name: ",".join(block for block in ["Id", "Cat"] if block in str(model.get_params()["item_net_block_types"]))
        for name, model in models.items()
    }
    assert blocks["sasrec_softmax_ids_only"] == "Id"
    assert blocks["sasrec_softmax_cat_only"] == "Cat"
    assert blocks["sasrec_softmax_ids_and_cat"] == blocks["sasrec_bce"] == "Id,Cat"

    cat_only = SASRecModel(deterministic=True, loss="gBCE", n_negatives=5, item_net_block_types=(CatFeaturesItemNet,),
                           epochs=1, **TINY)
    cat_only.fit(dataset)
    assert_reco_table(cat_only.recommend(users=[test_user], dataset=dataset, k=3, filter_viewed=True),
                      Columns.User, 1, 3)


def test_tutorial_recommend_to_items(dataset, test_item):
    # cells 52-53: item-to-item recommendations
    sasrec = SASRecModel(epochs=1, deterministic=True, **TINY)
    sasrec.fit(dataset)
    recos = sasrec.recommend_to_items(
        target_items=[test_item],
        dataset=dataset,
        k=3,
        filter_itself=True,
        items_to_recommend=None,
    )
    assert_reco_table(recos, Columns.TargetItem, 1, 3)
    assert (recos[Columns.TargetItem] == test_item).all()
    assert test_item not in set(recos[Columns.Item])

    # several targets, a whitelist, no rank column
    targets = dataset.get_raw_interactions()[Columns.Item].value_counts().index[:4].tolist()
    whitelist = dataset.get_raw_interactions()[Columns.Item].value_counts().index[:30].tolist()
    recos = sasrec.recommend_to_items(target_items=targets, dataset=dataset, k=5, items_to_recommend=whitelist,
                                      add_rank_col=False)
    assert list(recos.columns) == [Columns.TargetItem, Columns.Item, Columns.Score]
    assert recos[Columns.TargetItem].tolist() == np.repeat(targets, 5).tolist()
    assert set(recos[Columns.Item]) <= set(whitelist)
    assert not (recos[Columns.TargetItem] == recos[Columns.Item]).any()


def test_tutorial_recommend_to_items_cosine_similarity(dataset, test_item):
    # RecTools' spelling of the similarity (similarity_module_type / similarity_module_kwargs):
    # with cosine similarity an item is its own nearest item, so without filter_itself it ranks first
    sasrec = SASRecModel(epochs=1, deterministic=True,
                         similarity_module_type=DistanceSimilarityModule,
                         similarity_module_kwargs={"distance": "cosine"}, **TINY)
    sasrec.fit(dataset)
    recos = sasrec.recommend_to_items(target_items=[test_item], dataset=dataset, k=3, filter_itself=False)
    assert_reco_table(recos, Columns.TargetItem, 1, 3)
    assert recos[Columns.Item].iloc[0] == test_item
    assert recos[Columns.Score].iloc[0] == pytest.approx(1.0, abs=1e-4)
    assert (recos[Columns.Score] <= 1.0 + 1e-4).all()
    with pytest.raises(ValueError):
        SASRecModel(similarity_module_kwargs={"distance": "euclidean"}).fit(dataset)


def test_tutorial_inference_for_cold_users(dataset, interactions):
    # cells 56-61: a user filtered out of training (one interaction) still gets recommendations
    # from the items of their history; a user without any item known to the model gets none
    sasrec = SASRecModel(epochs=1, deterministic=True, **TINY)
    sasrec.fit(dataset)
    test_user_one = 900001
    assert (interactions[Columns.User] == test_user_one).sum() == 1
    recos = sasrec.recommend(users=[test_user_one], dataset=dataset, k=3, filter_viewed=True,
                             on_unsupported_targets="warn")
    assert_reco_table(recos, Columns.User, 1, 3)


def test_tutorial_user_without_known_items_gets_nothing(dataset):
    # cells 58-61: user 900002's only item was seen by no user kept for training (one interaction
    # is below train_min_user_interactions=2), so the model does not know it (RecTools: the model's
    # catalog is the items of the training interactions) and the user is unsupported
    sasrec = SASRecModel(epochs=1, deterministic=True, item_net_block_types=(IdEmbeddingsItemNet,), **TINY)
    sasrec.fit(dataset)
    test_user_no_recs = 900002
    recos = sasrec.recommend(
        users=[test_user_no_recs],
        dataset=dataset,
        k=3,
        filter_viewed=True,
        on_unsupported_targets="ignore",  # prevent raising an error
    )
    assert recos.empty
    assert list(recos.columns) == [Columns.User, Columns.Item, Columns.Score, Columns.Rank]
    with pytest.raises(ValueError):
        sasrec.recommend(users=[test_user_no_recs], dataset=dataset, k=3, filter_viewed=True)


# -------------------------------------------------------------- advanced training guide

# cell 10: the validation fold. Module-level functions (not partial or lambdas), so that the
# model can be saved; seqrec resolves them on load only once registered (see the module docstring)


def leave_one_out_mask_for_users(interactions: pd.DataFrame, val_users: ExternalIds) -> np.ndarray:
    rank = (
        interactions
        .sort_values(Columns.Datetime, ascending=False, kind="stable")
        .groupby(Columns.User, sort=False)
        .cumcount()
    )
    val_mask = (
        (interactions[Columns.User].isin(val_users))
        & (rank == 0)
    )
    return val_mask.values


VAL_USERS = list(range(1, 33))  # MovieLens user ids 1..32 are among the first N_USERS users


def get_val_mask_func(interactions: pd.DataFrame):
    return leave_one_out_mask_for_users(interactions, val_users=VAL_USERS)


def get_debug_trainer() -> Trainer:
    # cell 12
    return Trainer(
        accelerator="cpu",
        devices=1,
        min_epochs=2,
        max_epochs=2,
        deterministic=True,
        enable_model_summary=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        limit_train_batches=2,  # limit train batches for quick debug runs
        logger=CSVLogger("test_logs"),
    )


def guide_model(**kwargs: tp.Any) -> SASRecModel:
    # cell 13, tiny
    params = dict(
        n_factors=16,
        n_blocks=1,
        n_heads=2,
        dropout_rate=0.2,
        train_min_user_interactions=5,
        session_max_len=20,
        verbose=0,
        deterministic=True,
        item_net_block_types=(IdEmbeddingsItemNet,),
        get_val_mask_func=get_val_mask_func,  # pass our custom `get_val_mask_func`
        get_trainer_func=get_debug_trainer,  # pass our custom trainer func
    )
    params.update(kwargs)
    return SASRecModel(**params)


def read_logs(model: TransformerModelBase) -> pd.DataFrame:
    return pd.read_csv(Path(model.fit_trainer.log_dir) / "metrics.csv")


def test_guide_validation_loss(dataset_no_features, in_tmp_dir):
    # cells 13-18: validation fold, validation loss in the Lightning logs of model.fit_trainer
    seed_everything(RANDOM_STATE, workers=True)
    model = guide_model()
    model.fit(dataset_no_features)
    assert isinstance(model.fit_trainer, Trainer)
    assert "metrics.csv" in os.listdir(model.fit_trainer.log_dir)  # RecTools also writes hparams.yaml
    logs = read_logs(model)
    assert {"epoch", "step", "train_loss", "val_loss"} <= set(logs.columns)
    assert SASRecModel.val_loss_name == BERT4RecModel.val_loss_name == "val_loss"
    assert SASRecModel.train_loss_name == "train_loss"
    assert logs["val_loss"].notna().sum() == 2  # one per epoch
    assert logs["train_loss"].notna().sum() == 2
    assert np.isfinite(logs["val_loss"].dropna()).all()


def get_early_stopping_trainer() -> Trainer:
    # cell 20
    early_stopping_callback = EarlyStopping(
        monitor=SASRecModel.val_loss_name,  # or just pass "val_loss" here
        mode="min",
        min_delta=1.0,  # just for a quick test of functionality
    )
    return Trainer(
        accelerator="cpu",
        devices=1,
        min_epochs=1,  # minimum number of epochs to train before early stopping
        max_epochs=20,  # maximum number of epochs to train
        deterministic=True,
        limit_train_batches=2,  # use only 2 batches for each epoch for a test run
        enable_checkpointing=False,
        logger=CSVLogger("test_logs"),
        callbacks=early_stopping_callback,  # pass our callback
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def test_guide_early_stopping(dataset_no_features, in_tmp_dir):
    # cells 19-24: early stopping on the validation loss
    model = guide_model(get_trainer_func=get_early_stopping_trainer)
    model.fit(dataset_no_features)
    n_epochs = read_logs(model)["val_loss"].notna().sum()
    assert 2 <= n_epochs < 20
    assert model.fit_trainer.current_epoch == n_epochs


def test_guide_replace_trainer_attribute(dataset_no_features, in_tmp_dir):
    # cells 21-22 and 64-65: the notebook assigns a trainer to the model's `_trainer` attribute
    model = guide_model()
    model._trainer = get_early_stopping_trainer()
    model.fit(dataset_no_features)
    assert read_logs(model)["val_loss"].notna().sum() < 20


def get_checkpoint_trainer() -> Trainer:
    # cells 26-27
    last_epoch_ckpt = ModelCheckpoint(filename="last_epoch")  # checkpoint last epoch
    least_val_loss_ckpt = ModelCheckpoint(  # checkpoints based on validation loss
        monitor=SASRecModel.val_loss_name,  # or just pass "val_loss" here,
        mode="min",
        filename="{epoch}-{val_loss:.2f}",
        save_top_k=2,  # Let's save top 2 checkpoints for validation loss
    )
    return Trainer(
        accelerator="cpu",
        devices=1,
        min_epochs=1,
        max_epochs=3,
        deterministic=True,
        limit_train_batches=2,  # use only 2 batches for each epoch for a test run
        logger=CSVLogger("test_logs"),
        callbacks=[last_epoch_ckpt, least_val_loss_ckpt],  # pass our callbacks for checkpoints
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def test_guide_checkpoints(dataset_no_features, in_tmp_dir):
    # cells 26-34: checkpoints, load_weights_from_checkpoint, load_from_checkpoint
    model = guide_model(get_trainer_func=get_checkpoint_trainer)
    model.fit(dataset_no_features)
    ckpt_dir = os.path.join(model.fit_trainer.log_dir, "checkpoints")
    files = sorted(os.listdir(ckpt_dir))
    assert "last_epoch.ckpt" in files
    assert len([f for f in files if f.startswith("epoch=") and "val_loss=" in f]) == 2
    users = VAL_USERS[:1]
    reco_final = model.recommend(users=users, dataset=dataset_no_features, filter_viewed=True, k=5)

    ckpt_path = os.path.join(model.fit_trainer.log_dir, "checkpoints", "last_epoch.ckpt")
    model.load_weights_from_checkpoint(ckpt_path)
    reco = model.recommend(users=users, dataset=dataset_no_features, filter_viewed=True, k=5)
    pd.testing.assert_frame_equal(reco, reco_final)  # the last epoch's weights are the final ones

    loaded = SASRecModel.load_from_checkpoint(ckpt_path)
    assert isinstance(loaded, SASRecModel)
    reco_loaded = loaded.recommend(users=users, dataset=dataset_no_features, filter_viewed=True, k=5)
    pd.testing.assert_frame_equal(reco_loaded, reco_final)
    assert loaded.get_params(simple_types=True) == model.get_params(simple_types=True)

    # an earlier checkpoint (one of the two best by val_loss is not the last of the 3 epochs),
    # loaded onto the CPU: other weights, and load_weights_from_checkpoint gives the same ones
    earlier = [f for f in files if "val_loss=" in f and not f.startswith("epoch=2-")][0]
    earlier = os.path.join(ckpt_dir, earlier)
    early = SASRecModel.load_from_checkpoint(earlier, map_location="cpu")
    reco_early = early.recommend(users=users, dataset=dataset_no_features, filter_viewed=True, k=5)
    assert not np.allclose(reco_early[Columns.Score], reco_final[Columns.Score])
    model.load_weights_from_checkpoint(earlier)
    pd.testing.assert_frame_equal(
        model.recommend(users=users, dataset=dataset_no_features, filter_viewed=True, k=5), reco_early)


class ValidationScore(Callback):
    """A custom callback that logs a metric computed at the end of each validation epoch (in the
    guide: RecTools metrics computed from the module's logits; here from the logged loss, which
    needs no model internals)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        val_loss = trainer.callback_metrics.get(SASRecModel.val_loss_name)
        if val_loss is not None:
            pl_module.log(self.name, -float(val_loss), on_step=False, on_epoch=True)


def get_custom_trainer() -> Trainer:
    # cell 47: recsys-metric callback, best-metric and last-epoch checkpoints, early stopping on the metric
    val_metrics_callback = ValidationScore("score")
    best_ckpt = ModelCheckpoint(monitor="score", mode="max", filename="{epoch}-{score:.2f}")
    last_epoch_ckpt = ModelCheckpoint(filename="{epoch}-last_epoch")
    early_stopping_callback = EarlyStopping(monitor="score", patience=1, mode="max", min_delta=1.0)
    return Trainer(
        accelerator="cpu",
        devices=1,
        min_epochs=1,
        max_epochs=6,
        deterministic=True,
        limit_train_batches=2,
        logger=CSVLogger("sasrec_logs"),
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[val_metrics_callback, best_ckpt, last_epoch_ckpt, early_stopping_callback],
    )


# the one line a RecTools user adds: functions named in a saved model or a checkpoint are
# resolved on load only from seqrec's allow-list
for func in (get_val_mask_func, get_debug_trainer, get_early_stopping_trainer, get_checkpoint_trainer,
             get_custom_trainer):
    register(func)


def test_guide_full_example_and_saving(dataset_no_features, in_tmp_dir):
    # cells 35-59: custom metric callback, checkpoints and early stopping on it, loading the best
    # checkpoint, the logs, then save / load_model of the trained model
    seed_everything(RANDOM_STATE, workers=True)
    model = guide_model(get_trainer_func=get_custom_trainer)
    model.fit(dataset_no_features)
    logs = read_logs(model)
    assert {"train_loss", "val_loss", "score"} <= set(logs.columns)
    n_epochs = logs["score"].notna().sum()
    assert 2 <= n_epochs < 6  # patience 1 with min_delta 1: stopped early
    files = os.listdir(os.path.join(model.fit_trainer.log_dir, "checkpoints"))
    best = [f for f in files if "score=" in f]
    assert len(best) == 1 and any(f.endswith("-last_epoch.ckpt") for f in files)

    users = VAL_USERS[:1]
    best_model = SASRecModel.load_from_checkpoint(os.path.join(model.fit_trainer.log_dir, "checkpoints", best[0]))
    assert_reco_table(best_model.recommend(users=users, dataset=dataset_no_features, filter_viewed=True, k=5),
                      Columns.User, 1, 5)

    # cells 58-59: save and load_model
    n_bytes = model.save("my_model.pkl")
    assert isinstance(n_bytes, int) and n_bytes == os.path.getsize("my_model.pkl")
    loaded = load_model("my_model.pkl")
    assert type(loaded) is SASRecModel
    fitted_same(model, loaded, dataset_no_features, users)
    assert loaded.get_params(simple_types=True) == model.get_params(simple_types=True)


def test_guide_configs(dataset_no_features, in_tmp_dir):
    # cells 61-63: from_config with functions and class paths, get_params(simple_types=True)
    config = {"epochs": 2, "n_blocks": 1, "n_heads": 1, "n_factors": 64}
    model = SASRecModel.from_config(config)
    params = model.get_params(simple_types=True)
    assert params["cls"] == "SASRecModel"
    assert (params["epochs"], params["n_blocks"], params["n_heads"], params["n_factors"]) == (2, 1, 1, 64)
    assert params["get_val_mask_func"] is None and params["get_trainer_func"] is None

    config = {
        "get_val_mask_func": get_val_mask_func,  # function to get validation mask
        "get_trainer_func": get_custom_trainer,  # function to get custom trainer
        # path to transformer layers class:
        "transformer_layers_type": "rectools.models.nn.transformers.sasrec.SASRecTransformerLayers",
    }
    model = SASRecModel.from_config(config)
    params = model.get_params(simple_types=True)
    assert params["get_val_mask_func"].endswith(".get_val_mask_func")
    assert params["get_trainer_func"].endswith(".get_custom_trainer")
    assert params["transformer_layers_type"].endswith("SASRecTransformerLayers")
    json.dumps(params)
    assert model_from_params(params).get_params(simple_types=True) == params


def test_guide_fit_partial(dataset_no_features, in_tmp_dir):
    # fit_partial (RecTools >= 0.14): training continues from the current state
    model = SASRecModel(epochs=1, deterministic=True, item_net_block_types=(IdEmbeddingsItemNet,), **TINY)
    users = VAL_USERS[:3]
    assert model.fit_partial(dataset_no_features, min_epochs=1, max_epochs=1) is model  # unfitted: like fit
    assert model.fit_trainer.current_epoch == 1
    reco_1 = model.recommend(users=users, dataset=dataset_no_features, filter_viewed=True, k=5)
    model.fit_partial(dataset_no_features, min_epochs=1, max_epochs=1)
    assert model.fit_trainer.current_epoch == 2
    reco_2 = model.recommend(users=users, dataset=dataset_no_features, filter_viewed=True, k=5)
    assert not np.allclose(reco_1[Columns.Score], reco_2[Columns.Score])
    model.fit(dataset_no_features)  # fit starts afresh
    assert model.fit_trainer.current_epoch == 1


def test_guide_pytorch_lightning_trainer(dataset_no_features, in_tmp_dir):
    # the guide's own imports: a pytorch_lightning Trainer, EarlyStopping and CSVLogger
    pl = pytest.importorskip("pytorch_lightning")
    from pytorch_lightning.callbacks import EarlyStopping as PLEarlyStopping
    from pytorch_lightning.loggers import CSVLogger as PLCSVLogger

    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        min_epochs=1,
        max_epochs=20,
        deterministic=True,
        limit_train_batches=2,
        enable_checkpointing=False,
        logger=PLCSVLogger("test_logs"),
        callbacks=PLEarlyStopping(monitor=SASRecModel.val_loss_name, mode="min", min_delta=1.0),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = guide_model(get_trainer_func=lambda: trainer)
    model.fit(dataset_no_features)
    assert isinstance(model.fit_trainer, pl.Trainer)
    n_epochs = read_logs(model)["val_loss"].notna().sum()
    assert 2 <= n_epochs < 20
    assert_reco_table(model.recommend(users=VAL_USERS[:2], dataset=dataset_no_features, filter_viewed=True, k=5),
                      Columns.User, 2, 5)


# ---------------------------------------------------------- 9_model_configs_and_saving


def user_leave_one_out_mask(interactions: pd.DataFrame) -> pd.Series:
    # cell 26 (named `leave_one_out_mask` in the notebook; renamed here beside seqrec's own)
    rank = (
        interactions
        .sort_values(Columns.Datetime, ascending=False, kind="stable")
        .groupby(Columns.User, sort=False)
        .cumcount()
    )
    return rank == 0


register(user_leave_one_out_mask)

RECTOOLS_USER_KEYS = {  # the keys of a SASRec config that a RecTools user reads or writes
    "cls", "verbose", "n_blocks", "n_heads", "n_factors", "use_pos_emb", "use_causal_attn", "use_key_padding_mask",
    "dropout_rate", "session_max_len", "dataloader_num_workers", "batch_size", "loss", "n_negatives", "gbce_t", "lr",
    "epochs", "deterministic", "recommend_batch_size", "recommend_torch_device", "train_min_user_interactions",
    "item_net_block_types", "transformer_layers_type", "similarity_module_type", "get_val_mask_func",
    "get_trainer_func",
}


def test_configs_sasrec(dataset):
    # cells 24-26
    config = {"epochs": 2, "n_blocks": 1, "n_heads": 1, "n_factors": 64}
    model = SASRecModel.from_config(config)
    params = model.get_params(simple_types=True)
    assert RECTOOLS_USER_KEYS <= set(params)
    assert params["cls"] == "SASRecModel"
    assert params["verbose"] == 0 and params["session_max_len"] == 100 and params["loss"] == "softmax"
    assert params["use_causal_attn"] is True and params["use_key_padding_mask"] is False
    assert [name.rsplit(".", 1)[-1] for name in params["item_net_block_types"]] == \
        ["IdEmbeddingsItemNet", "CatFeaturesItemNet"]
    json.dumps(params)

    config = {
        # function to get validation mask
        "get_val_mask_func": user_leave_one_out_mask,
        # path to transformer layers class
        "transformer_layers_type": "rectools.models.nn.transformers.sasrec.SASRecTransformerLayers",
    }
    model = SASRecModel.from_config(config)
    params = model.get_params(simple_types=True)
    assert params["get_val_mask_func"].endswith(".user_leave_one_out_mask")
    assert (params["n_blocks"], params["n_factors"], params["epochs"]) == (2, 256, 3)

    # get_config: classes as objects; with simple_types as names; a config rebuilds the model
    config = model.get_config()
    assert config["cls"] is SASRecModel
    assert tuple(config["item_net_block_types"]) == (IdEmbeddingsItemNet, CatFeaturesItemNet)
    assert config["get_val_mask_func"] is user_leave_one_out_mask
    assert SASRecModel.from_config(config).get_config() == config
    simple = model.get_config(simple_types=True)
    assert simple["cls"] == "SASRecModel"
    assert simple == json.loads(json.dumps(simple))
    assert model_from_config(simple).get_config() == config


def test_configs_bert4rec():
    # cell 28
    config = {
        "epochs": 2,
        "n_blocks": 1,
        "n_heads": 1,
        "n_factors": 64,
        "mask_prob": 0.2,
        "get_val_mask_func": user_leave_one_out_mask,  # function to get validation mask
        # path to transformer layers class
        "transformer_layers_type": "rectools.models.nn.transformers.base.PreLNTransformerLayers",
    }
    model = BERT4RecModel.from_config(config)
    params = model.get_params(simple_types=True)
    assert params["cls"] == "BERT4RecModel"
    assert params["mask_prob"] == 0.2
    assert params["use_causal_attn"] is False and params["use_key_padding_mask"] is True
    assert params["transformer_layers_type"].endswith("PreLNTransformerLayers")
    with pytest.raises(TypeError):
        SASRecModel.from_config(model.get_config())  # a config for another class


def test_configs_model_from_config_and_params(dataset, test_user):
    # cells 6, 16: "cls" names the model; flat params with "." as separator
    config = {"cls": "SASRecModel", "epochs": 1, "deterministic": True, **TINY}
    model = model_from_config(config)
    assert type(model) is SASRecModel
    assert type(model_from_config({**config, "cls": "BERT4RecModel"})) is BERT4RecModel
    with pytest.raises(ValueError):
        model_from_config({"epochs": 1})  # no "cls"

    params = {
        "cls": "SASRecModel",
        "epochs": 1,
        "similarity_module_kwargs.distance": "cosine",  # flat form with ``.`` as a separator
    }
    model = model_from_params(params)
    assert model.get_config()["similarity_module_kwargs"] == {"distance": "cosine"}
    assert model.get_params(simple_types=True)["similarity_module_kwargs.distance"] == "cosine"
    assert SASRecModel.from_params(params).get_params() == model.get_params()
    with pytest.raises(ValueError):
        SASRecModel.from_config({"n_factor": 64})  # unknown key

    # a model built from another's config, fitted with the same seed, recommends the same
    original = SASRecModel(epochs=1, deterministic=True, get_val_mask_func=leave_one_out_mask, **TINY)
    copy_ = model_from_config(json.loads(json.dumps(original.get_config(simple_types=True))))
    seed_everything(32, workers=True)
    original.fit(dataset)
    seed_everything(32, workers=True)
    copy_.fit(dataset)
    fitted_same(original, copy_, dataset, [test_user])


def test_configs_save_load(dataset, test_user, test_item, in_tmp_dir):
    # cells 17-21: save returns the number of bytes; Model.load and load_model; paths and files
    model = SASRecModel(epochs=1, deterministic=True, **TINY)
    n_bytes = model.save("unfitted.pkl")  # an unfitted model saves its config
    assert n_bytes == os.path.getsize("unfitted.pkl")
    assert SASRecModel.load("unfitted.pkl").get_config() == model.get_config()

    model.fit(dataset)
    assert model.save("sasrec_model.pkl") == os.path.getsize("sasrec_model.pkl")
    loaded = SASRecModel.load("sasrec_model.pkl")
    assert type(loaded) is SASRecModel
    fitted_same(model, loaded, dataset, [test_user])
    pd.testing.assert_frame_equal(
        model.recommend_to_items(target_items=[test_item], dataset=dataset, k=5),
        loaded.recommend_to_items(target_items=[test_item], dataset=dataset, k=5),
    )
    with open("sasrec_model_2.pkl", "wb") as f:  # file objects
        model.save(f)
    with open("sasrec_model_2.pkl", "rb") as f:
        loaded = load_model(f)
    fitted_same(model, loaded, dataset, [test_user])
    with pytest.raises(TypeError):
        BERT4RecModel.load("sasrec_model.pkl")  # not a BERT4Rec file

    # RecTools models pickle
    fitted_same(model, pickle.loads(pickle.dumps(model)), dataset, [test_user])


def test_tutorial_cross_validation(dataset):
    # transformers_tutorial, cells 13-15: a time split, models against popularity, RecTools' metrics
    from seqrec.metrics import MAP, AvgRecPopularity, CoveredUsers, HitRate, Intersection, Serendipity
    from seqrec.model_selection import TimeRangeSplitter, cross_validate

    splitter = TimeRangeSplitter(test_size="7D", n_splits=1, filter_already_seen=True)
    models = {
        "popular": PopularModel(),
        "sasrec_softmax_ids_and_cat": SASRecModel(epochs=1, deterministic=True, **TINY),
        "sasrec_bce_ids_only": SASRecModel(epochs=1, deterministic=True, loss="BCE", n_negatives=50,
                                           item_net_block_types=(IdEmbeddingsItemNet,), **TINY),
    }
    metrics = {
        "HitRate@10": HitRate(k=10),
        "MAP@10": MAP(k=10),
        "Serendipity@10": Serendipity(k=10),
        "CoveredUsers@10": CoveredUsers(k=10),
        "AvgRecPopularity@10": AvgRecPopularity(k=10),
        "Intersection@10": Intersection(k=10),
    }
    cv_results = cross_validate(
        dataset=dataset,
        splitter=splitter,
        models=models,
        metrics=metrics,
        k=10,
        filter_viewed=True,
        ref_models=["popular"],
        validate_ref_models=True,
    )
    assert len(cv_results["splits"]) == 1
    table = pd.DataFrame(cv_results["metrics"]).set_index("model")
    assert set(table.index) == set(models)
    assert table.loc["popular", "Intersection@10_popular"] == pytest.approx(1.0)
    assert (table["CoveredUsers@10"] > 0).all() and table["HitRate@10"].between(0, 1).all()
    # the notebook reads the item blocks back from get_params
    assert "Id" in str(models["sasrec_bce_ids_only"].get_params()["item_net_block_types"])
