"""The model API around training: save/load, configs, item-to-item, similarity, fit_partial,
validation with early stopping, Lightning trainers and checkpoints."""

import copy
import io
import json
import os
import pickle
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

import seqrec
from seqrec import (BERT4RecModel, CatFeaturesItemNet, Columns, Dataset, DistanceSimilarityModule,
                    IdEmbeddingsItemNet, ModelFileError, SASRecModel, leave_one_out_mask, load_model,
                    model_from_config, model_from_params)

from conftest import N_CYCLE_ITEMS

MODELS = [SASRecModel, BERT4RecModel]


def small(model_cls, **kw):
    params = dict(n_factors=16, n_heads=2, n_blocks=1, session_max_len=10, epochs=2, lr=0.01, batch_size=32,
                  dropout_rate=0.1, random_state=7, item_net_block_types=(IdEmbeddingsItemNet,),
                  recommend_torch_device="cpu")
    params.update(kw)
    return model_cls(**params)


def features_df():
    """Two categorical features per cycle item, and one cold item "cold" (features only) that shares
    the features of item i3."""
    rows = []
    for i in range(N_CYCLE_ITEMS):
        rows += [(f"i{i}", f"g{i % 3}", "genre"), (f"i{i}", f"b{i % 4}", "brand")]
    rows += [("cold", "g0", "genre"), ("cold", "b3", "brand"), ("cold", "unseen", "genre")]
    return pd.DataFrame(rows, columns=[Columns.Id, Columns.Value, Columns.Feature])


@pytest.fixture(scope="module")
def feat_dataset(cycle_df):
    return Dataset.construct(cycle_df, item_features_df=features_df(), cat_item_features=["genre", "brand"])


@pytest.fixture(scope="module")
def fitted(cycle_dataset):
    return {cls: small(cls).fit(cycle_dataset) for cls in MODELS}


def users_of(dataset, n=20):
    return dataset.user_id_map.external_ids[:n]


def reco_equal(a, b):
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


# ----------------------------------------------------------------- persistence
@pytest.mark.parametrize("model_cls", MODELS)
@pytest.mark.parametrize("via", ["path", "file"])
def test_save_load_gives_identical_recommendations(model_cls, via, fitted, cycle_dataset, tmp_path):
    model = fitted[model_cls]
    if via == "path":
        n = model.save(tmp_path / "m.seqrec")
        assert n == os.path.getsize(tmp_path / "m.seqrec")
        loaded = model_cls.load(tmp_path / "m.seqrec")
        again = load_model(str(tmp_path / "m.seqrec"))
    else:
        buf = io.BytesIO()
        model.save(buf)
        buf.seek(0)
        loaded = load_model(buf)
        again = loaded
    assert type(loaded) is model_cls and type(again) is model_cls
    assert loaded.get_params() == model.get_params()
    users = users_of(cycle_dataset)
    reco_equal(model.recommend(users, cycle_dataset, k=5, filter_viewed=True),
               loaded.recommend(users, cycle_dataset, k=5, filter_viewed=True))
    items = cycle_dataset.item_id_map.external_ids[:5]
    reco_equal(model.recommend_to_items(items, cycle_dataset, k=3),
               loaded.recommend_to_items(items, cycle_dataset, k=3))


def test_load_checks_the_class(fitted, tmp_path):
    fitted[SASRecModel].save(tmp_path / "m")
    with pytest.raises(TypeError, match="SASRecModel"):
        BERT4RecModel.load(tmp_path / "m")


def test_a_file_with_the_earlier_pre_ln_stack_loads(cycle_dataset, tmp_path):
    """A BERT4Rec file written before PreLNTransformerLayers' defaults became RecTools' stack (a
    final LayerNorm in its weights, no layer options in its config) loads with the standard stack
    and recommends as when it was saved; other weight mismatches still fail."""
    import json
    import zipfile

    from seqrec.persistence import META, ModelFileError

    model = small(BERT4RecModel, transformer_layers_kwargs={"final_norm": True, "output_dropout": False})
    model.fit(cycle_dataset)
    model.save(tmp_path / "new.seqrec")

    def rewrite(name, edit):
        with zipfile.ZipFile(tmp_path / "new.seqrec") as z:
            files = {n: z.read(n) for n in z.namelist()}
        meta = json.loads(files[META])
        edit(meta, files)
        files[META] = json.dumps(meta).encode()
        with zipfile.ZipFile(tmp_path / name, "w") as z:
            for n, data in files.items():
                z.writestr(n, data)
        return tmp_path / name

    def drop_options(meta, files):  # what the earlier seqrec wrote: no layer options
        meta["config"]["transformer_layers_kwargs"] = None

    old = load_model(rewrite("old.seqrec", drop_options))
    assert old.get_params()["transformer_layers_kwargs"] == {"final_norm": True, "output_dropout": False}
    users = users_of(cycle_dataset)
    reco_equal(model.recommend(users, cycle_dataset, k=5, filter_viewed=True),
               old.recommend(users, cycle_dataset, k=5, filter_viewed=True))

    def two_blocks(meta, files):  # a real mismatch is still refused
        drop_options(meta, files)
        meta["config"]["n_blocks"] = 3

    with pytest.raises(ModelFileError, match="do not match"):
        load_model(rewrite("bad.seqrec", two_blocks))


def test_unfitted_model_saves_and_loads(tmp_path):
    model = SASRecModel(n_factors=32, n_heads=2, loss="gBCE", similarity="cosine")
    model.save(tmp_path / "u")
    loaded = load_model(tmp_path / "u")
    assert loaded.get_params() == model.get_params() and not hasattr(loaded, "net_")


def test_ids_of_every_kind_round_trip(tmp_path):
    df = pd.DataFrame({Columns.User: [1, 1, 1, 2, 2, 2], Columns.Item: [10, 20, 30, 20, 30, 10]})
    for items in ([10, 20, 30], ["a", "b", "c"], [1, "b", 2.5]):
        mapping = dict(zip([10, 20, 30], items))
        ds = Dataset.construct(df.assign(**{Columns.Item: df[Columns.Item].map(mapping)}))
        model = small(SASRecModel, epochs=1).fit(ds)
        model.save(tmp_path / "ids")
        loaded = load_model(tmp_path / "ids")
        assert list(loaded.item_id_map_.external_ids) == list(model.item_id_map_.external_ids)
        reco_equal(model.recommend([1, 2], ds, k=2, filter_viewed=False),
                   loaded.recommend([1, 2], ds, k=2, filter_viewed=False))


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch boom-was-run",))


def test_crafted_pickles_never_run(fitted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    payload = pickle.dumps(_Boom())
    # a plain pickle, a zip with a pickle instead of the metadata, and a torch checkpoint with code in it
    (tmp_path / "plain").write_bytes(payload)
    with zipfile.ZipFile(tmp_path / "zipped", "w") as zf:
        zf.writestr("seqrec-model.json", payload)
    torch.save({"state_dict": {}, "seqrec": _Boom()}, tmp_path / "ckpt")
    for name in ("plain", "zipped"):
        with pytest.raises(ModelFileError):
            load_model(tmp_path / name)
    with pytest.raises(ModelFileError, match="weights_only"):
        SASRecModel.load_from_checkpoint(tmp_path / "ckpt")
    assert not (tmp_path / "boom-was-run").exists()


def test_truncated_corrupt_foreign_and_newer_files_fail_clearly(fitted, tmp_path):
    fitted[SASRecModel].save(tmp_path / "m")
    data = (tmp_path / "m").read_bytes()
    (tmp_path / "cut").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        load_model(tmp_path / "cut")
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF  # inside the weights: the zip CRC catches it
    (tmp_path / "flip").write_bytes(bytes(flipped))
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "flip")
    with zipfile.ZipFile(tmp_path / "foreign", "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(ModelFileError, match="not a seqrec model"):
        load_model(tmp_path / "foreign")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    meta = json.loads(files["seqrec-model.json"])
    meta["format_version"] = 99
    files["seqrec-model.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(tmp_path / "newer", "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    with pytest.raises(ModelFileError, match="format 99.*upgrade seqrec"):
        load_model(tmp_path / "newer")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent")


def test_interrupted_save_keeps_the_previous_file(fitted, tmp_path, monkeypatch):
    path = tmp_path / "m"
    fitted[SASRecModel].save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        fitted[BERT4RecModel].save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m"]  # no temporary file left


class MyItemNet(IdEmbeddingsItemNet):
    """A custom item block (module level, so it has an importable name)."""


def test_custom_blocks_resolve_only_when_registered(cycle_dataset, tmp_path):
    model = small(SASRecModel, epochs=1, item_net_block_types=(MyItemNet,)).fit(cycle_dataset)
    model.save(tmp_path / "m")
    name = f"{MyItemNet.__module__}.MyItemNet"
    with pytest.raises(ValueError, match="not a registered name"):
        load_model(tmp_path / "m")
    config = model.get_config(simple_types=True)
    assert config["item_net_block_types"] == [name]
    seqrec.register(MyItemNet)
    loaded = load_model(tmp_path / "m")
    assert loaded.item_net_block_types == (MyItemNet,)
    # a name that is not registered is never imported
    with pytest.raises(ValueError, match="never imports"):
        model_from_config({**config, "get_trainer_func": "os.system"})


def test_pickle_and_deepcopy_of_a_fitted_model(fitted, cycle_dataset):
    for model in fitted.values():
        users = users_of(cycle_dataset)
        expected = model.recommend(users, cycle_dataset, k=4, filter_viewed=True)
        for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
            reco_equal(expected, clone.recommend(users, cycle_dataset, k=4, filter_viewed=True))


# ----------------------------------------------------------------- configs
@pytest.mark.parametrize("model_cls", MODELS)
def test_config_round_trips_and_refits_identically(model_cls, cycle_dataset):
    model = small(model_cls, similarity_module_type=DistanceSimilarityModule,
                  similarity_module_kwargs={"distance": "cosine"}, get_val_mask_func=leave_one_out_mask)
    config = model.get_config(simple_types=True)
    json.dumps(config)  # JSON-able
    assert config["cls"] == model_cls.__name__
    assert config["item_net_block_types"] == ["seqrec.nn.item_net.IdEmbeddingsItemNet"]
    assert config["get_val_mask_func"] == "seqrec.validation.leave_one_out_mask"
    rebuilt = [model_cls.from_config(config), model_from_config(config),
               model_cls.from_config(model.get_config()),
               model_from_params(model.get_params(simple_types=True))]
    flat = model.get_params(simple_types=True)
    assert flat["similarity_module_kwargs.distance"] == "cosine" and flat["cls"] == model_cls.__name__
    for other in rebuilt:
        assert other.get_params() == model.get_params()
    users = users_of(cycle_dataset)
    first = model.fit(cycle_dataset).recommend(users, cycle_dataset, k=5, filter_viewed=True)
    reco_equal(first, rebuilt[0].fit(cycle_dataset).recommend(users, cycle_dataset, k=5, filter_viewed=True))


def test_config_errors_name_the_key():
    config = SASRecModel().get_config(simple_types=True)
    with pytest.raises(ValueError, match="n_factorz"):
        SASRecModel.from_config({**config, "n_factorz": 3})
    with pytest.raises(TypeError, match="config is for `SASRecModel`"):
        BERT4RecModel.from_config(config)
    with pytest.raises(ValueError, match="'cls'"):
        model_from_config({"n_factors": 8})
    with pytest.raises(ValueError, match="data_preparator_type"):
        model_from_config({**config, "data_preparator_type": "my.Preparator"})


def test_a_config_written_by_rectools_loads():
    """RecTools' names for the shared objects and its internal keys at their defaults are accepted."""
    config = {
        "cls": "SASRecModel", "n_factors": 64, "n_heads": 2,
        "item_net_block_types": ["rectools.models.nn.item_net.IdEmbeddingsItemNet",
                                 "rectools.models.nn.item_net.CatFeaturesItemNet"],
        "similarity_module_type": "rectools.models.nn.transformers.similarity.DistanceSimilarityModule",
        "similarity_module_kwargs": {"distance": "cosine"},
        "data_preparator_type": "rectools.models.nn.transformers.sasrec.SASRecDataPreparator",
        "lightning_module_type": "rectools.models.nn.transformers.lightning.TransformerLightningModule",
        "backbone_kwargs": None,
    }
    model = model_from_config(config)
    assert model.item_net_block_types == (IdEmbeddingsItemNet, CatFeaturesItemNet)
    assert model._similarity() == "cosine"


# ----------------------------------------------------------------- item-to-item and similarity
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_recommend_to_items_is_the_brute_force_ranking(similarity, cycle_dataset):
    model = small(SASRecModel, similarity=similarity).fit(cycle_dataset)
    table = model.net_.item_table().detach()
    if similarity == "cosine":
        table = torch.nn.functional.normalize(table, dim=1)
    scores = (table @ table.T).numpy()
    targets = ["i3", "i0", "i7"]
    reco = model.recommend_to_items(targets, cycle_dataset, k=4)
    assert list(reco.columns) == [Columns.TargetItem, Columns.Item, Columns.Score, Columns.Rank]
    assert reco[Columns.TargetItem].drop_duplicates().tolist() == targets
    for target, group in reco.groupby(Columns.TargetItem, sort=False):
        t = model.item_id_map_.to_internal([target])[0]
        row = scores[t].copy()
        row[t] = -np.inf  # filter_itself
        best = np.argsort(-row, kind="stable")[:4]
        assert group[Columns.Item].tolist() == model.item_id_map_.to_external(best).tolist()
        np.testing.assert_allclose(group[Columns.Score], row[best], rtol=1e-5)
        assert group[Columns.Rank].tolist() == [1, 2, 3, 4]
    with_itself = model.recommend_to_items(["i3"], cycle_dataset, k=1, filter_itself=False)
    assert with_itself[Columns.Item].tolist() == ["i3"] or similarity == "dot"
    white = model.recommend_to_items(["i3"], cycle_dataset, k=10, items_to_recommend=["i1", "i2", "zzz"])
    assert set(white[Columns.Item]) == {"i1", "i2"}


def test_cosine_similarity_is_used_in_recommend(cycle_dataset):
    model = small(SASRecModel, similarity="cosine").fit(cycle_dataset)
    reco = model.recommend(users_of(cycle_dataset, 5), cycle_dataset, k=3, filter_viewed=False)
    assert reco[Columns.Score].between(-1 - 1e-5, 1 + 1e-5).all()
    same = small(SASRecModel, similarity_module_type=DistanceSimilarityModule,
                 similarity_module_kwargs={"distance": "cosine"}).fit(cycle_dataset)
    reco_equal(reco, same.recommend(users_of(cycle_dataset, 5), cycle_dataset, k=3, filter_viewed=False))
    with pytest.raises(ValueError, match="distance"):
        SASRecModel(similarity_module_kwargs={"distance": "euclid"})
    with pytest.raises(ValueError, match="contradicts"):
        SASRecModel(similarity="cosine", similarity_module_kwargs={"distance": "dot"})
    with pytest.raises(ValueError, match="similarity"):
        SASRecModel(similarity="l2")


def test_cold_items_with_features_are_targets_and_candidates(feat_dataset):
    assert feat_dataset.item_id_map.external_ids[-1] == "cold" and feat_dataset.n_hot_items == N_CYCLE_ITEMS
    model = small(SASRecModel, item_net_block_types=(IdEmbeddingsItemNet, CatFeaturesItemNet)).fit(feat_dataset)
    assert "cold" not in set(model.item_id_map_.external_ids)  # never trained on: not in the catalog
    reco = model.recommend_to_items(["cold", "i3"], feat_dataset, k=N_CYCLE_ITEMS + 1)
    assert len(reco[reco[Columns.TargetItem] == "cold"]) == N_CYCLE_ITEMS
    assert "cold" in set(reco.loc[reco[Columns.TargetItem] == "i3", Columns.Item])
    # its vector is the sum of its known pairs' embeddings ("unseen" is not known to the model)
    cat = [b for b in model.net_.item_net.blocks if isinstance(b, CatFeaturesItemNet)][0]
    pairs = [cat.pair_names.index(("genre", "g0")), cat.pair_names.index(("brand", "b3"))]
    cold_vec = cat.embedding_bag.weight[pairs].sum(0).detach()
    table = model.net_.item_table().detach()
    i3 = model.item_id_map_.to_internal(["i3"])[0]
    got = reco[(reco[Columns.TargetItem] == "cold") & (reco[Columns.Item] == "i3")][Columns.Score].item()
    assert got == pytest.approx(float(cold_vec @ table[i3]), rel=1e-5)
    # an id-only model cannot embed it
    ids_only = small(SASRecModel, epochs=1).fit(feat_dataset)
    with pytest.raises(ValueError, match="unknown to the model"):
        ids_only.recommend_to_items(["cold"], feat_dataset, k=3)
    with pytest.warns(UserWarning, match="unknown to the model"):
        out = ids_only.recommend_to_items(["cold", "i1"], feat_dataset, k=3, on_unsupported_targets="warn")
    assert set(out[Columns.TargetItem]) == {"i1"}
    assert ids_only.recommend_to_items(["cold"], feat_dataset, k=3, on_unsupported_targets="ignore").empty


def test_numeric_item_features_are_named_in_a_warning(cycle_df):
    feats = pd.concat([features_df(), pd.DataFrame({Columns.Id: ["i1"], Columns.Value: [2.5],
                                                    Columns.Feature: ["price"]})])
    ds = Dataset.construct(cycle_df, item_features_df=feats, cat_item_features=["genre", "brand"])
    with pytest.warns(UserWarning, match=r"\['price'\]"):
        small(SASRecModel, epochs=1, item_net_block_types=(IdEmbeddingsItemNet, CatFeaturesItemNet)).fit(ds)


# ----------------------------------------------------------------- fit_partial
@pytest.mark.parametrize("model_cls", MODELS)
def test_fit_partial_in_pieces_equals_one_fit(model_cls, cycle_dataset, tmp_path):
    users = users_of(cycle_dataset)
    full = small(model_cls, epochs=3).fit(cycle_dataset)
    parts = small(model_cls, epochs=3)
    parts.fit_partial(cycle_dataset, max_epochs=2)
    assert parts.epochs_done_ == 2
    parts.save(tmp_path / "half")
    parts.fit_partial(cycle_dataset, max_epochs=1)
    assert parts.epochs_done_ == 3
    expected = full.recommend(users, cycle_dataset, k=5, filter_viewed=True)
    reco_equal(expected, parts.recommend(users, cycle_dataset, k=5, filter_viewed=True))
    # a saved model continues exactly as the one in memory
    resumed = load_model(tmp_path / "half").fit_partial(cycle_dataset, max_epochs=1)
    reco_equal(expected, resumed.recommend(users, cycle_dataset, k=5, filter_viewed=True))
    # fit starts afresh
    again = parts.fit(cycle_dataset)
    assert again.epochs_done_ == 3
    with pytest.raises(ValueError, match="max_epochs"):
        parts.fit_partial(cycle_dataset, max_epochs=0)


# ----------------------------------------------------------------- validation and early stopping
def test_validation_targets_never_enter_training():
    # item "x" is only ever a last interaction: with leave-one-out validation it is never trained on
    rows = [(u, f"i{(u + t) % 5}") for u in range(30) for t in range(6)] + [(u, "x") for u in range(10)]
    df = pd.DataFrame(rows, columns=[Columns.User, Columns.Item])
    ds = Dataset.construct(df)
    plain = small(SASRecModel, epochs=1).fit(ds)
    assert "x" in set(plain.item_id_map_.external_ids)
    val = small(SASRecModel, epochs=2, get_val_mask_func=leave_one_out_mask).fit(ds)
    assert "x" not in set(val.item_id_map_.external_ids)
    assert list(val.history_.columns) == ["epoch", "train_loss", "val_loss", "val_hr@10", "val_ndcg@10"] or \
        set(val.history_.columns) == {"epoch", "train_loss", "val_loss", "val_hr@10", "val_ndcg@10"}
    assert val.history_["epoch"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="boolean mask"):
        small(SASRecModel, get_val_mask_func=lambda df: np.zeros(3, bool)).fit(ds)
    with pytest.raises(ValueError, match="get_val_mask_func"):
        small(SASRecModel, early_stopping="val_loss").fit(ds)
    with pytest.raises(ValueError, match="early_stopping"):
        SASRecModel(early_stopping="val_ndcg@5")


def test_function_kwargs_are_passed(cycle_dataset):
    seen = {}

    def trainer(max_epochs):
        import lightning.pytorch as L
        seen["max_epochs"] = max_epochs
        return L.Trainer(max_epochs=max_epochs, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)

    model = small(SASRecModel, get_trainer_func=trainer, get_trainer_func_kwargs={"max_epochs": 1},
                  get_val_mask_func=leave_one_out_mask, get_val_mask_func_kwargs={"val_users": 7})
    model.fit(cycle_dataset)
    assert seen == {"max_epochs": 1} and model.epochs_done_ == 1
    with pytest.raises(ValueError, match="get_trainer_func_kwargs"):
        SASRecModel(get_trainer_func_kwargs=[1])


def test_leave_one_out_mask_options(cycle_df):
    mask = leave_one_out_mask(cycle_df)
    assert mask.sum() == cycle_df[Columns.User].nunique()
    last = cycle_df[mask].set_index(Columns.User)[Columns.Datetime]
    assert (last == cycle_df.groupby(Columns.User)[Columns.Datetime].max().reindex(last.index)).all()
    sample = leave_one_out_mask(cycle_df, val_users=10, random_state=1)
    assert sample.sum() == 10 and (sample <= mask).all()
    assert (leave_one_out_mask(cycle_df, val_users=10, random_state=1) == sample).all()
    chosen = leave_one_out_mask(cycle_df, val_users=["u1", "u2"])
    assert set(cycle_df.loc[chosen, Columns.User]) == {"u1", "u2"}


@pytest.mark.parametrize("model_cls", MODELS)
def test_early_stopping_stops_and_restores_the_best_weights(model_cls, cycle_dataset):
    model = small(model_cls, epochs=30, lr=0.05, get_val_mask_func=leave_one_out_mask,
                  early_stopping="val_ndcg@10", early_stopping_patience=2).fit(cycle_dataset)
    history = model.history_
    scores = history["val_ndcg@10"].to_numpy()
    best = int(np.argmax(scores)) + 1
    assert model.best_epoch_ == best
    assert len(history) == min(30, best + 2)  # stopped after `patience` epochs without improvement
    # the restored weights give the best validation score again
    from seqrec.validation import validation_mask
    mask = validation_mask(cycle_dataset, leave_one_out_mask)
    _, model_of = model._training_data(cycle_dataset, mask)
    val = model._validation_samples(cycle_dataset, mask, model_of)
    module = model.lightning_model
    batch = val.__getitems__(list(range(len(val))))
    module.net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a running trainer
        logged = {}
        # the logged values are torchmetrics means (gathered over the processes at the epoch's end)
        module.log = lambda name, value, **kw: logged.__setitem__(name, float(value.compute()))
        module.on_validation_epoch_start()
        module.validation_step(batch, 0)
    assert logged["val_ndcg@10"] == pytest.approx(scores[best - 1], abs=1e-6)


# ----------------------------------------------------------------- trainers and checkpoints
def test_a_pytorch_lightning_trainer_is_accepted(cycle_dataset):
    pl = pytest.importorskip("pytorch_lightning")

    model = small(SASRecModel, get_trainer_func=lambda: pl.Trainer(max_epochs=2, logger=False,
                                                                   enable_checkpointing=False,
                                                                   enable_progress_bar=False,
                                                                   enable_model_summary=False))
    model.fit(cycle_dataset)
    assert isinstance(model.fit_trainer, pl.Trainer) and model.epochs_done_ == 2
    assert len(model.recommend(users_of(cycle_dataset, 3), cycle_dataset, k=2, filter_viewed=False)) == 6


def test_load_from_checkpoint_and_load_weights(cycle_dataset, tmp_path):
    import lightning.pytorch as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    def trainer():
        return L.Trainer(max_epochs=3, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[ModelCheckpoint(dirpath=tmp_path, filename="last", save_top_k=1,
                                                    monitor="val_loss")])

    # a local function has no importable name: the checkpoint's config leaves it out
    model = small(SASRecModel, get_trainer_func=trainer, get_val_mask_func=leave_one_out_mask)
    model.fit(cycle_dataset)
    ckpt = model.fit_trainer.checkpoint_callback.best_model_path
    assert ckpt
    # the checkpoint holds the weights of the epoch of best val_loss; load it and compare with the estimator
    # whose weights are replaced by the same checkpoint
    rebuilt = SASRecModel.load_from_checkpoint(ckpt)
    model.load_weights_from_checkpoint(ckpt)
    users = users_of(cycle_dataset)
    reco_equal(model.recommend(users, cycle_dataset, k=4, filter_viewed=True),
               rebuilt.recommend(users, cycle_dataset, k=4, filter_viewed=True))
    assert rebuilt.get_params()["n_factors"] == 16 and rebuilt.get_trainer_func is None


def test_items_seen_only_by_skipped_users_are_unknown(cycle_df):
    """As in RecTools: an item only in histories training skipped (users below
    train_min_user_interactions) is not in the catalog; a user whose only item it is gets nothing."""
    extra = pd.DataFrame({Columns.User: ["short"], Columns.Item: ["rare"], Columns.Weight: 1.0,
                          Columns.Datetime: pd.Timestamp("2024-01-01")})
    ds = Dataset.construct(pd.concat([cycle_df, extra], ignore_index=True))
    model = small(SASRecModel, epochs=1).fit(ds)
    assert "rare" not in set(model.item_id_map_.external_ids)
    with pytest.warns(UserWarning, match="no interactions with items known"):
        reco = model.recommend(["short", "u1"], ds, k=3, filter_viewed=False, on_unsupported_targets="warn")
    assert set(reco[Columns.User]) == {"u1"}


def test_context_is_ignored_with_a_warning(fitted, cycle_dataset):
    model = fitted[SASRecModel]
    with pytest.warns(UserWarning, match="does not use context"):
        reco = model.recommend(["u1"], cycle_dataset, k=2, filter_viewed=False, context=pd.DataFrame())
    assert len(reco) == 2
