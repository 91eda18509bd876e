"""Bad input gives a clear error (or a documented warning) naming the column or parameter and an
offending value, before any training starts; no input DataFrame is ever modified. One test per
row of docs/guide/errors.md, plus the correctness fixes found by review."""

import copy
import inspect
import math
import re
import warnings

import lightning.pytorch as L
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from seqrec import (BERT4RecModel, Columns, Dataset, HSTUModel, IdEmbeddingsItemNet, NotFittedError, SASRecModel,
                    leave_one_out_mask)
from seqrec.dataset import DataWarning
from seqrec.splits import last_n_split, leave_one_out, time_split

U, I, W, T = Columns.User, Columns.Item, Columns.Weight, Columns.Datetime


def _df() -> pd.DataFrame:
    return pd.DataFrame({
        U: ["a", "a", "a", "b", "b", "c", "c", "c"],
        I: [1, 2, 3, 2, 3, 1, 3, 4],
        W: [1.0] * 8,
        T: pd.date_range("2024-01-01", periods=8, freq="h"),
    })


def _tiny(cls=SASRecModel, **kw):
    args = dict(n_factors=8, n_heads=2, n_blocks=1, session_max_len=5, epochs=1, batch_size=16,
                random_state=0, recommend_torch_device="cpu", item_net_block_types=(IdEmbeddingsItemNet,))
    return cls(**{**args, **kw})


@pytest.fixture(scope="module")
def fitted(cycle_dataset):
    return _tiny().fit(cycle_dataset)


# ------------------------------------------------------------------ interactions
def test_not_a_dataframe():
    with pytest.raises(TypeError, match="interactions must be a pandas DataFrame, got list"):
        Dataset.construct([(1, 2)])


@pytest.mark.parametrize("col", [U, I])
def test_missing_column(col):
    with pytest.raises(ValueError, match=f"missing required column.*'{col}'"):
        Dataset.construct(_df().drop(columns=col))


def test_misnamed_column_gets_a_hint():
    with pytest.raises(ValueError, match=r"\['user_id'\].*rename 'userId' to 'user_id'"):
        Dataset.construct(_df().rename(columns={U: "userId"}))


def test_missing_datetime_warns_and_keeps_row_order():
    df = _df().drop(columns=T).iloc[::-1]
    with pytest.warns(DataWarning, match="no 'datetime' column.*row order"):
        ds = Dataset.construct(df)
    a = ds.user_id_map.to_internal(["a"])[0]
    assert ds.item_id_map.to_external(ds.interactions.items[ds.interactions.indptr[a]:ds.interactions.indptr[a + 1]]
                                      ).tolist() == [3, 2, 1]


@pytest.mark.parametrize("col,value", [(U, None), (U, np.nan), (I, None), (I, np.nan)])
def test_missing_ids(col, value):
    df = _df().astype({col: object})
    df.loc[5, col] = value
    with pytest.raises(ValueError, match=f"column '{col}' has 1 missing value.*first at index 5"):
        Dataset.construct(df)


@pytest.mark.parametrize("value,error,match", [
    (np.nan, ValueError, "'weight' has 1 missing value"),
    (np.inf, ValueError, "'weight' has 1 non-finite value.*inf at index 3"),
    (-np.inf, ValueError, "'weight' has 1 non-finite value.*-inf at index 3"),
    ("heavy", TypeError, "'weight' must be numeric, got dtype object"),
])
def test_bad_weights(value, error, match):
    df = _df().astype({W: object if isinstance(value, str) else float})
    df.loc[3, W] = value
    with pytest.raises(error, match=match):
        Dataset.construct(df)


def test_negative_weights_warn_and_are_kept():
    df = _df()
    df.loc[3, W] = -2.0
    with pytest.warns(DataWarning, match=r"'weight' has 1 negative value.*-2\.0 at index 3"):
        ds = Dataset.construct(df)
    assert ds.interactions.weights.min() == -2.0


@pytest.mark.parametrize("values,error,match", [
    (["2024-01-01"] * 7 + ["notadate"], ValueError, "'datetime' must hold datetimes.*'notadate' at index 7"),
    (["2024-01-01"] * 7 + ["2024/01/02 10:00"], ValueError, "'datetime' must hold datetimes"),
    ([pd.Timestamp("2024-01-01", tz="UTC")] * 7 + [pd.Timestamp("2024-01-01")], ValueError,
     "'datetime' must hold datetimes.*tz"),
    (["2024-01-01"] * 7 + [5], ValueError, "'datetime' must hold datetimes"),
    ([True] * 8, TypeError, "'datetime' must hold datetimes or numbers, got dtype bool"),
    ([1.0] * 7 + [np.inf], ValueError, "'datetime' has a non-finite time inf at index 7"),
    ([pd.Timestamp("2024-01-01")] * 7 + [pd.NaT], ValueError, "'datetime' has 1 missing value"),
])
def test_bad_datetimes(values, error, match):
    df = _df()
    df[T] = pd.Series(values)
    with pytest.raises(error, match=match):
        Dataset.construct(df)


def test_empty_interactions():
    with pytest.raises(ValueError, match="interactions is empty"):
        Dataset.construct(_df().iloc[:0])


class _FitStarted(L.Callback):
    started = False

    def on_fit_start(self, trainer, pl_module):
        type(self).started = True


def _watched_trainer():
    return L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, callbacks=[_FitStarted()], devices=1, accelerator="cpu")


def test_one_item_only_is_refused_before_training():
    df = pd.DataFrame({U: [1, 1, 2, 2], I: [7, 7, 7, 7], T: [1, 2, 3, 4]})
    ds = Dataset.construct(df)
    _FitStarted.started = False
    with pytest.raises(ValueError, match="1 item"):
        _tiny(get_trainer_func=_watched_trainer).fit(ds)
    assert not _FitStarted.started


def test_no_user_long_enough_is_refused_before_training():
    ds = Dataset.construct(pd.DataFrame({U: [1, 2, 3], I: [1, 2, 3], T: [1, 2, 3]}))
    _FitStarted.started = False
    with pytest.raises(ValueError, match="No user has at least 2 training interactions"):
        _tiny(get_trainer_func=_watched_trainer).fit(ds)
    assert not _FitStarted.started


def test_one_user_only_trains_and_recommends():
    ds = Dataset.construct(pd.DataFrame({U: ["solo"] * 6, I: [1, 2, 3, 1, 2, 3], T: range(6)}))
    reco = _tiny().fit(ds).recommend(["solo"], ds, k=2, filter_viewed=False)
    assert reco[U].tolist() == ["solo", "solo"] and reco[Columns.Rank].tolist() == [1, 2]


def test_duplicate_rows_warn_and_are_kept():
    df = pd.concat([_df(), _df().iloc[[2, 2, 6]]], ignore_index=True)
    with pytest.warns(DataWarning, match=r"3 row\(s\) repeat the same.*\('a', 3\)"):
        ds = Dataset.construct(df)
    assert len(ds.interactions) == len(df)


def test_same_time_different_items_is_not_a_duplicate():
    df = _df()
    df[T] = pd.Timestamp("2024-01-01")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        Dataset.construct(df)


def test_mixed_id_types_warn():
    df = _df().astype({I: object})
    df.loc[0, I] = "one"
    with pytest.warns(DataWarning, match=r"'item_id' mixes id types \['number', 'str'\]"):
        ds = Dataset.construct(df)
    assert "one" in ds.item_id_map.external_ids.tolist()


def test_ids_differing_only_by_type_are_refused():
    df = _df().astype({U: object})
    df.loc[0, U] = 1
    df.loc[1, U] = "1"
    with pytest.raises(TypeError, match=r"'user_id' has ids that differ only by type, e.g. \[1, '1'\]"):
        Dataset.construct(df)


# ------------------------------------------------------------------ features
def _feats(**cols):
    base = {Columns.Id: [1, 2, 3, 4], Columns.Value: ["x", "y", "x", "z"], Columns.Feature: "genre"}
    return pd.DataFrame({**base, **cols})


def test_features_of_unknown_items_become_cold_items():
    feats = pd.concat([_feats(), pd.DataFrame({Columns.Id: [99], Columns.Value: ["x"], Columns.Feature: ["genre"]})])
    ds = Dataset.construct(_df(), item_features_df=feats, cat_item_features=["genre"])
    assert ds.n_items == 5 and ds.n_hot_items == 4 and ds.item_id_map.external_ids[-1] == 99


@pytest.mark.parametrize("col", [Columns.Id, Columns.Value, Columns.Feature])
def test_features_with_missing_values(col):
    feats = _feats().astype({col: object})
    feats.loc[1, col] = None
    with pytest.raises(ValueError, match=f"item_features: column '{col}' has 1 missing value.*index 1"):
        Dataset.construct(_df(), item_features_df=feats, cat_item_features=["genre"])


def test_features_without_feature_column():
    with pytest.raises(ValueError, match=r"item_features is missing required column\(s\) \['feature'\]"):
        Dataset.construct(_df(), item_features_df=_feats().drop(columns=Columns.Feature), cat_item_features=["genre"])


def test_absent_categorical_feature_warns():
    with pytest.warns(DataWarning, match=r"categorical feature\(s\) \['genres'\] not found"):
        ds = Dataset.construct(_df(), item_features_df=_feats(), cat_item_features=["genre", "genres"])
    assert {name[0] for name in ds.item_features.names} == {"genre"}


def test_categorical_features_without_table_or_as_a_number():
    with pytest.raises(ValueError, match=r"categorical item_features \['genre'\] given without"):
        Dataset.construct(_df(), cat_item_features=["genre"])
    with pytest.raises(TypeError, match="cat_item_features must be a list of feature names, got 5"):
        Dataset.construct(_df(), item_features_df=_feats(), cat_item_features=5)


def test_numeric_feature_with_text_or_several_values():
    feats = _feats(**{Columns.Feature: "price", Columns.Value: [1.0, "cheap", 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"\['price'\] have non-numeric or non-finite values, e.g. 'cheap' of id 2"):
        Dataset.construct(_df(), item_features_df=feats)
    feats = _feats(**{Columns.Id: [1, 1, 2, 3], Columns.Feature: "price", Columns.Value: [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(ValueError, match="numeric feature 'price' has several values for id 1"):
        Dataset.construct(_df(), item_features_df=feats)


def test_repeated_categorical_rows_warn_and_count_once():
    feats = pd.concat([_feats(), _feats().iloc[[0]]])
    with pytest.warns(DataWarning, match=r"1 repeated \(id, feature, value\) row.*\(1, 'genre', 'x'\)"):
        ds = Dataset.construct(_df(), item_features_df=feats, cat_item_features=["genre"])
    f = ds.item_features
    assert np.diff(f.indptr).tolist() == [1, 1, 1, 1]


def test_dense_features_with_nan_duplicates_or_text():
    dense = pd.DataFrame({Columns.Id: [1, 2, 3, 4], "size": [1.0, np.nan, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"dense feature column 'size' has 1 missing or non-finite value.*id 2"):
        Dataset.construct(_df(), item_features_df=dense, make_dense_item_features=True)
    dense = pd.DataFrame({Columns.Id: [1, 1, 3, 4], "size": [1.0, 2.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"one row per 'id', found duplicated ids \[1\]"):
        Dataset.construct(_df(), item_features_df=dense, make_dense_item_features=True)
    dense = pd.DataFrame({Columns.Id: [1, 2, 3, 4], "size": ["s", "m", "l", "xl"]})
    with pytest.raises(ValueError, match="dense features must be numeric"):
        Dataset.construct(_df(), item_features_df=dense, make_dense_item_features=True)


# ------------------------------------------------------------------ recommend arguments
@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3", None])
def test_bad_k(fitted, cycle_dataset, k):
    with pytest.raises(ValueError, match=f"k must be a positive integer, got {re.escape(repr(k))}"):
        fitted.recommend(["u1"], cycle_dataset, k=k, filter_viewed=True)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        fitted.recommend_to_items(["i1"], cycle_dataset, k=k)


def test_empty_users_give_an_empty_table(fitted, cycle_dataset):
    reco = fitted.recommend([], cycle_dataset, k=3, filter_viewed=True)
    assert reco.empty and list(reco.columns) == list(Columns.Recommendations)
    sim = fitted.recommend_to_items([], cycle_dataset, k=3)
    assert sim.empty and list(sim.columns) == list(Columns.ItemItemRecommendations)


def test_unknown_users(fitted, cycle_dataset):
    with pytest.raises(ValueError, match=r"1 user\(s\) have no interactions.*'nobody'"):
        fitted.recommend(["u1", "nobody"], cycle_dataset, k=3, filter_viewed=True)
    with pytest.warns(UserWarning, match="nobody"):
        reco = fitted.recommend(["u1", "nobody"], cycle_dataset, k=3, filter_viewed=False,
                                on_unsupported_targets="warn")
    assert set(reco[U]) == {"u1"}
    # ints given where the ids are strings: the message says so
    with pytest.raises(ValueError, match="given ids of type int.*like \\['u"):
        fitted.recommend([1, 2], cycle_dataset, k=3, filter_viewed=True)


@pytest.mark.parametrize("users,error,match", [
    ("u1", TypeError, "users must be a sequence of ids.*got str 'u1'"),
    (5, TypeError, "users must be a sequence of ids.*got int 5"),
    (["u1", None], ValueError, r"users has missing values \(NaN/None\) at position\(s\) \[1\]"),
])
def test_bad_users_argument(fitted, cycle_dataset, users, error, match):
    with pytest.raises(error, match=match):
        fitted.recommend(users, cycle_dataset, k=3, filter_viewed=True)


def test_unknown_items_to_recommend(fitted, cycle_dataset):
    # partly unknown: the unknown ids are ignored (RecTools' behaviour)
    reco = fitted.recommend(["u1"], cycle_dataset, k=5, filter_viewed=False, items_to_recommend=["i1", "zzz"])
    assert reco[I].tolist() == ["i1"]
    with pytest.warns(UserWarning, match=r"items_to_recommend: none of the 2 item\(s\) is known.*'zzz'"):
        reco = fitted.recommend(["u1"], cycle_dataset, k=5, filter_viewed=False, items_to_recommend=["zzz", "yyy"])
    assert reco.empty
    with pytest.raises(TypeError, match="items_to_recommend must be a sequence of ids"):
        fitted.recommend(["u1"], cycle_dataset, k=5, filter_viewed=False, items_to_recommend="i1")


def test_bad_flags_and_dataset(fitted, cycle_dataset, cycle_df):
    with pytest.raises(TypeError, match="filter_viewed must be True or False, got 'yes'"):
        fitted.recommend(["u1"], cycle_dataset, k=3, filter_viewed="yes")
    with pytest.raises(TypeError, match="filter_itself must be True or False, got 1"):
        fitted.recommend_to_items(["i1"], cycle_dataset, k=3, filter_itself=1)
    with pytest.raises(ValueError, match="on_unsupported_targets must be one of.*'skip'"):
        fitted.recommend(["u1"], cycle_dataset, k=3, filter_viewed=True, on_unsupported_targets="skip")
    with pytest.raises(TypeError, match="recommend expects a seqrec Dataset.*got DataFrame"):
        fitted.recommend(["u1"], cycle_df, k=3, filter_viewed=True)
    with pytest.raises(TypeError, match="fit expects a seqrec Dataset.*got DataFrame"):
        _tiny().fit(cycle_df)


def test_unknown_target_items(fitted, cycle_dataset):
    with pytest.raises(ValueError, match=r"1 target item\(s\) are unknown.*'nothing'"):
        fitted.recommend_to_items(["i1", "nothing"], cycle_dataset, k=3)


def test_not_fitted_error_is_value_and_attribute_error(cycle_dataset):
    model = _tiny()
    with pytest.raises(NotFittedError) as info:
        model.recommend(["u1"], cycle_dataset, k=3, filter_viewed=True)
    assert isinstance(info.value, ValueError) and isinstance(info.value, AttributeError)
    assert not hasattr(model, "torch_model")  # the sklearn idiom works


# ------------------------------------------------------------------ model parameters
_BAD = {
    "n_blocks": [0, -1, 1.5, "2", True],
    "n_heads": [0, 3, None],
    "n_factors": [0, 2.0, "8"],
    "dropout_rate": [-0.1, 1.0, math.nan, "0.1", True],
    "session_max_len": [0, 2.5],
    "train_min_user_interactions": [0, 2.5],
    "loss": ["mse", None, "softmax "],
    "n_negatives": [0, 1.0],
    "gbce_t": [-0.1, 1.5, math.nan, True],
    "lr": [0, -1e-3, math.inf, math.nan, "0.1", True],
    "batch_size": [0, 10.0],
    "epochs": [0, None],
    "deterministic": ["yes", 1],
    "verbose": [-1, "loud"],
    "dataloader_num_workers": [-1, 0.5],
    "use_pos_emb": ["no", None],
    "use_key_padding_mask": ["no", 0],
    "use_causal_attn": ["yes", None],
    "transformer_layers_type": ["PreLN", nn.Linear, None],
    "item_net_block_types": [(), (str,), IdEmbeddingsItemNet, None],
    "get_trainer_func": [5, "trainer"],
    "recommend_batch_size": [0, 1.5],
    "recommend_torch_device": [5, "gpuu"],
    "random_state": [-1, 1.5, "0"],
    "mask_prob": [0, 1, math.nan, "0.1"],
    "negative_sampling": ["hard"],
    "softmax_chunk_size": [0, 1.5],
    "precision": ["fp16"],
    "torch_compile": ["yes"],
    "train_windows": ["first"],
    "lr_schedule": ["linear"],
    "similarity": ["euclid"],
    "similarity_module_type": [str],
    "similarity_module_kwargs": [{"distance": "l2"}, {"foo": 1}, "cosine"],
    "get_val_mask_func": [5],
    "val_k": [0, 2.5],
    "early_stopping": ["loss", "val_ndcg@5"],
    "early_stopping_patience": [0],
    "get_val_mask_func_kwargs": [[1], {1: 2}],
    "get_trainer_func_kwargs": ["a"],
    "transformer_layers_kwargs": [{"ff_multiplyer": 2}, "big", {"ff_multiplier": 0}],
    # HSTUModel's own
    "relative_time_attention": ["yes", None],
    "relative_pos_attention": [1, "no"],
    "pos_encoding_kwargs": [{"scale": True}, {"use_scale_factor": "yes"}],
    "lightning_module_kwargs": [{"logit_t": 0.1}, {"logits_t": 0}],
}
_MODELS = (SASRecModel, BERT4RecModel, HSTUModel)


def _bad_cases():
    for cls in _MODELS:
        names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        for name in names:
            for value in _BAD[name]:
                yield pytest.param(cls, name, value, id=f"{cls.__name__}-{name}-{value!r}")


def test_every_parameter_has_bad_values():
    for cls in _MODELS:
        names = {p for p in inspect.signature(cls.__init__).parameters if p != "self"}
        assert names <= set(_BAD), names - set(_BAD)


@pytest.mark.parametrize("cls,name,value", list(_bad_cases()))
def test_bad_parameter(cls, name, value):
    with pytest.raises((ValueError, TypeError)) as info:
        cls(**{name: value})
    message = str(info.value)
    assert name in message
    shown = value[0] if isinstance(value, tuple) and value else value
    if isinstance(value, dict) and value:
        # a dict of options: the message names the offending key (unknown) or its value (out of range)
        assert "distance" in value or any(repr(k) in message or f"{k} must" in message for k in value), message
        shown = next(iter(value.values())) if "distance" in value else None
    if shown is not None or not isinstance(value, dict):
        assert repr(shown) in message or str(shown) in message, message
    # set_params refuses it too and leaves the old value in place
    model = cls()
    before = model.get_params()
    with pytest.raises((ValueError, TypeError)):
        model.set_params(**{name: value})
    assert model.get_params() == before


def test_set_params_keeps_all_values_of_a_refused_call():
    model = SASRecModel(n_factors=8, n_heads=2)
    with pytest.raises(ValueError, match="divisible"):
        model.set_params(n_factors=10, n_heads=4)  # each alone is fine
    assert (model.n_factors, model.n_heads) == (8, 2)
    assert model.set_params(n_factors=12, n_heads=4).n_factors == 12


def test_bert4rec_session_max_len_one():
    with pytest.raises(ValueError, match="session_max_len must be at least 2"):
        BERT4RecModel(session_max_len=1)


def test_sasrec_without_causal_attention_is_refused():
    with pytest.raises(ValueError, match="use_causal_attn=False.*its own target"):
        SASRecModel(use_causal_attn=False)

    class LastOnly(SASRecModel):
        # targets only at the last position, whose next item is never an input: no leak
        def _training_batch(self, window, n_items):
            tokens, targets = super()._training_batch(window, n_items)
            last = (targets >= 0).sum(dim=1, keepdim=True) - 1
            keep = torch.arange(targets.shape[1]).unsqueeze(0) == last
            return tokens, torch.where(keep, targets, -1)

    assert LastOnly(use_causal_attn=False).use_causal_attn is False


def test_unknown_activation_is_a_clear_error():
    class Swish(SASRecModel):
        _activation = "swish"

    with pytest.raises(ValueError, match="_activation 'swish' is unknown; allowed: \\('relu', 'gelu'\\)"):
        Swish()


def test_sequence_longer_than_max_len(fitted):
    net = fitted.net_
    tokens = torch.full((1, fitted.session_max_len + 1), 2)  # (B, L + 1)
    with pytest.raises(ValueError, match=r"sequences of 6 tokens are longer than the network's max_len \(5"):
        net.encode(tokens, net.item_table())


def test_train_min_user_interactions_one_warns(cycle_dataset):
    with pytest.warns(UserWarning, match="train_min_user_interactions=1: a user needs 2 interactions"):
        _tiny(train_min_user_interactions=1).fit(cycle_dataset)


def test_non_finite_scores_raise(cycle_dataset):
    model = _tiny().fit(cycle_dataset)
    with torch.no_grad():
        model.net_.item_net.blocks[0].embedding.weight[3] = math.nan
    with pytest.raises(ValueError, match="non-finite scores"):
        model.recommend(["u1", "u2"], cycle_dataset, k=3, filter_viewed=False)
    with pytest.raises(ValueError, match="non-finite scores"):
        model.recommend_to_items(["i1"], cycle_dataset, k=3)


# ------------------------------------------------------------------ one time order everywhere
def test_float_times_are_not_truncated():
    # user 1's times 0.2, 0.1, 0.3 in that row order: the order is 0.1, 0.2, 0.3 everywhere
    df = pd.DataFrame({U: [1, 1, 1, 2, 2], I: ["b", "a", "c", "a", "b"], T: [0.2, 0.1, 0.3, 5.5, 5.25]})
    ds = Dataset.construct(df)
    raw = ds.get_raw_interactions()
    assert raw[I].tolist() == ["a", "b", "c", "b", "a"]
    assert raw[T].tolist() == [0.1, 0.2, 0.3, 5.25, 5.5]
    train, val, test = leave_one_out(df)
    assert test[I].tolist() == ["c", "a"] and val[I].tolist() == ["b"]  # user 2 is too short for a val target
    tr, te = last_n_split(df, 1)
    assert te[I].tolist() == ["c", "a"]
    mask = leave_one_out_mask(raw)
    assert raw[I][mask].tolist() == ["c", "a"]


def test_datetime_strings_are_ordered_as_datetimes_by_the_splits():
    # lexicographically "2024-1-10" < "2024-1-9", in time it is later
    df = pd.DataFrame({U: [1, 1, 1], I: ["x", "y", "z"], T: ["2024-1-10", "2024-1-9", "2024-1-8"]})
    ds = Dataset.construct(df)
    assert ds.get_raw_interactions()[I].tolist() == ["z", "y", "x"]
    _, test = last_n_split(df, 1)
    assert test[I].tolist() == ["x"]
    assert leave_one_out_mask(df).tolist() == [True, False, False]


def test_time_split_on_strings_is_refused_with_the_column_named():
    df = pd.DataFrame({U: [1, 1], I: ["x", "y"], T: ["2024-01-01", "2024-01-02"]})
    with pytest.raises(ValueError, match="column 'datetime' must hold datetimes or numbers, got dtype"):
        time_split(df, "2024-01-02")


# ------------------------------------------------------------------ the softmax path is chosen once per fit
def test_softmax_path_is_planned_once_per_fit(cycle_dataset, monkeypatch):
    import seqrec.nn.losses as losses
    free = iter([1 << 40] + [1 << 12, 1 << 40] * 1000)  # the first call plans; later ones would flip
    monkeypatch.setattr(losses, "_available_memory", lambda device: next(free))
    paths = []
    fused, chunked = losses.fused_softmax_loss, losses.chunked_softmax_loss
    monkeypatch.setattr(losses, "fused_softmax_loss", lambda *a: paths.append("fused") or fused(*a))
    monkeypatch.setattr(losses, "chunked_softmax_loss", lambda *a: paths.append("chunked") or chunked(*a))
    model = _tiny(epochs=2, batch_size=16, deterministic=True).fit(cycle_dataset)
    assert len(paths) >= 8 and set(paths) == {"fused"}
    assert model.softmax_plan_ == losses.SoftmaxPlan("fused", model.net_.n_items)
    # forced chunks are planned as such, and fit_partial keeps the plan of the first fit
    model = _tiny(softmax_chunk_size=4).fit(cycle_dataset)
    assert model.softmax_plan_ == losses.SoftmaxPlan("chunked", 4)
    paths.clear()
    model.fit_partial(cycle_dataset)
    assert set(paths) == {"chunked"}


# ------------------------------------------------------------------ input frames are never modified
def _odd_index(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.index = [f"r{i}" for i in range(len(df))][::-1]  # non-default index: positions != labels
    return out


def _check_unchanged(frames, before):
    for frame, copy_ in zip(frames, before):
        if isinstance(frame, pd.DataFrame):
            pd.testing.assert_frame_equal(frame, copy_)
        else:
            pd.testing.assert_series_equal(pd.Series(frame), pd.Series(copy_))


def test_no_entry_point_modifies_its_input(cycle_df):
    from seqrec import PopularModel
    from seqrec.metrics import NDCG, CoveredUsers, Recall, Serendipity, calc_metrics
    from seqrec.model_selection import LastNSplitter, RandomSplitter, TimeRangeSplitter, cross_validate

    df = _odd_index(cycle_df.iloc[:400])
    items = pd.unique(df[I])
    flat = _odd_index(pd.DataFrame({Columns.Id: items, Columns.Value: [f"g{i % 3}" for i in range(len(items))],
                                    Columns.Feature: "genre"}))
    dense = _odd_index(pd.DataFrame({Columns.Id: pd.unique(df[U])[:5], "age": [1.0, 2.0, 3.0, 4.0, 5.0]}))
    frames = [df, flat, dense]
    before = copy.deepcopy(frames)
    ds = Dataset.construct(df, item_features_df=flat, cat_item_features=["genre"], user_features_df=dense,
                           make_dense_user_features=True)
    _check_unchanged(frames, before)

    seen = []

    def val_mask(interactions):
        seen.append(interactions.copy())
        return leave_one_out_mask(interactions)

    model = _tiny(get_val_mask_func=val_mask).fit(ds)
    _check_unchanged(frames, before)
    pd.testing.assert_frame_equal(ds.get_raw_interactions(), seen[0])  # the mask function got an untouched copy

    users = pd.Series(pd.unique(df[U])[:10], index=list(range(10))[::-1])
    whitelist = pd.Index(items[:6])
    context = _odd_index(df.iloc[:3])
    args = [users, whitelist, context]
    args_before = copy.deepcopy(args)
    with pytest.warns(UserWarning, match="context"):
        reco = model.recommend(users, ds, k=3, filter_viewed=True, items_to_recommend=whitelist, context=context)
    model.recommend_to_items(pd.Series(items[:3]), ds, k=3, items_to_recommend=whitelist)
    _check_unchanged(args, args_before)

    train, val, test = leave_one_out(df)
    last_n_split(df, 2)
    time_split(df, df[T].min() + pd.Timedelta("3h"))
    _check_unchanged(frames, before)

    reco_before = reco.copy()
    prev = train.copy()
    metrics = {"ndcg": NDCG(3), "recall": Recall(3), "ser": Serendipity(3), "cov": CoveredUsers(3)}
    calc_metrics(metrics, reco, test, prev_interactions=prev, catalog=items)
    for m in metrics.values():
        extra = (prev, items) if "prev_interactions" in inspect.signature(m.calc).parameters else ()
        m.calc(reco, test, *extra)
    pd.testing.assert_frame_equal(reco, reco_before)
    pd.testing.assert_frame_equal(prev, train)
    _check_unchanged(frames, before)

    raw_before = ds.get_raw_interactions()
    for splitter in (LastNSplitter(1, 2), RandomSplitter(0.3, 2, random_state=0), TimeRangeSplitter("2H", 2)):
        list(splitter.split(df, collect_fold_stats=True))
        list(splitter.split(ds.interactions))
    cross_validate(ds, LastNSplitter(1, 1), {"ndcg": NDCG(3)}, {"pop": PopularModel(), "sas": _tiny()}, k=3,
                   filter_viewed=True)
    _check_unchanged(frames, before)
    pd.testing.assert_frame_equal(ds.get_raw_interactions(), raw_before)
