from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

import seqrec
from seqrec import Columns, Dataset, NotFittedError, PopularModel, RandomModel

U, I, W, T = Columns.User, Columns.Item, Columns.Weight, Columns.Datetime


def _dataset(**kw):
    # item popularity in distinct users: a 3, b 2 (4 rows), c 1, d 1 (late); e only in the features (cold)
    df = pd.DataFrame({
        U: [1, 2, 3, 1, 1, 2, 1, 3, 2],
        I: ["a", "a", "a", "b", "b", "b", "c", "d", "b"],
        W: [1.0, 1.0, 1.0, 5.0, 5.0, 1.0, 9.0, 2.0, 1.0],
        T: pd.to_datetime(["2021-01-01", "2021-01-02", "2021-01-03", "2021-01-01", "2021-01-02", "2021-01-03",
                           "2021-01-04", "2021-01-10", "2021-01-04"]),
    })
    features = pd.DataFrame({Columns.Id: list("abcde"), Columns.Value: ["x"] * 5, Columns.Feature: ["f"] * 5})
    return Dataset.construct(df, item_features_df=features, cat_item_features=["f"], **kw), df


def _lists(reco, key=U):
    return {u: list(g.sort_values(Columns.Rank)[I]) for u, g in reco.groupby(key, sort=False)}


def test_popularity_options_give_their_orders_and_scores():
    ds, _ = _dataset()
    cases = {
        "n_users": (["a", "b", "c", "d"], [3, 2, 1, 1]),
        "n_interactions": (["b", "a", "c", "d"], [4, 3, 1, 1]),
        "sum_weight": (["b", "c", "a", "d"], [12, 9, 3, 2]),
        "mean_weight": (["c", "b", "d", "a"], [9, 3, 2, 1]),
    }
    for popularity, (items, scores) in cases.items():
        reco = PopularModel(popularity=popularity).fit(ds).recommend([9], ds, k=10, filter_viewed=False)
        assert list(reco[I]) == items, popularity
        assert reco[Columns.Score].tolist() == pytest.approx(scores)
        assert list(reco.columns) == [U, I, Columns.Score, Columns.Rank]
        assert reco[Columns.Rank].tolist() == [1, 2, 3, 4]


def test_period_begin_from_add_cold_inverse():
    ds, _ = _dataset()
    recent = PopularModel(period=timedelta(days=7)).fit(ds)  # from 2021-01-03 on
    assert list(recent.popularity_list_[0]) == ["a", "b", "c", "d"]
    assert recent.popularity_list_[1].tolist() == [1, 1, 1, 1]
    late = PopularModel(begin_from=pd.Timestamp("2021-01-04").to_pydatetime()).fit(ds)
    assert list(late.popularity_list_[0]) == ["b", "c", "d"]
    cold = PopularModel(add_cold=True).fit(ds)
    assert list(cold.popularity_list_[0]) == ["a", "b", "c", "d", "e"] and cold.popularity_list_[1][-1] == 0
    inverse = PopularModel(inverse=True, add_cold=True).fit(ds)
    assert list(inverse.popularity_list_[0]) == ["e", "d", "c", "b", "a"]


def test_popular_filter_viewed_whitelist_and_unknown_users():
    ds, _ = _dataset()
    model = PopularModel(add_cold=True).fit(ds)
    reco = model.recommend([3, 1, "new"], ds, k=2, filter_viewed=True)
    # user 3 saw a, d; user 1 saw a, b, c; "new" is unknown: the top of the list, in the order given
    assert _lists(reco) == {3: ["b", "c"], 1: ["d", "e"], "new": ["a", "b"]}
    reco = model.recommend([1], ds, k=5, filter_viewed=True, items_to_recommend=["c", "d", "zz"])
    assert _lists(reco) == {1: ["d"]}
    reco = model.recommend([1], ds, k=3, filter_viewed=False, add_rank_col=False)
    assert list(reco.columns) == [U, I, Columns.Score] and list(reco[I]) == ["a", "b", "c"]


def test_popular_recommend_to_items():
    ds, _ = _dataset()
    model = PopularModel().fit(ds)
    reco = model.recommend_to_items(["b", "zz"], ds, k=2)
    assert list(reco.columns) == [Columns.TargetItem, I, Columns.Score, Columns.Rank]
    assert _lists(reco, Columns.TargetItem) == {"b": ["a", "c"], "zz": ["a", "b"]}
    reco = model.recommend_to_items(["b"], ds, k=2, filter_itself=False)
    assert _lists(reco, Columns.TargetItem) == {"b": ["a", "b"]}


def test_popular_filter_viewed_matches_a_loop_on_random_data():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({U: rng.integers(0, 60, 800), I: rng.integers(0, 40, 800)})
    ds = Dataset.construct(df)
    model = PopularModel().fit(ds)
    items = list(model.popularity_list_[0])
    users = list(range(-5, 65))
    reco = model.recommend(users, ds, k=7, filter_viewed=True)
    got = _lists(reco)
    for user in users:
        seen = set(df.loc[df[U] == user, I])
        assert got.get(user, []) == [i for i in items if i not in seen][:7]


def test_random_model_reproducible_filtered_and_scored():
    ds, _ = _dataset()
    a = RandomModel(random_state=3).fit(ds).recommend([1, 2, 3, "new"], ds, k=3, filter_viewed=True)
    b = RandomModel(random_state=3).fit(ds).recommend([1, 2, 3, "new"], ds, k=3, filter_viewed=True)
    pd.testing.assert_frame_equal(a, b)
    lists = _lists(a)
    assert set(lists[1]) <= {"d", "e"} and len(lists[1]) == 2  # only two items left for user 1
    assert len(lists["new"]) == 3 and len(set(lists["new"])) == 3
    assert a.loc[a[U] == 1, Columns.Score].tolist() == [2, 1]
    assert a.loc[a[U] == "new", Columns.Score].tolist() == [3, 2, 1]
    reco = RandomModel(random_state=0).fit(ds).recommend_to_items(["a", "b"], ds, k=10)
    assert all(t not in items for t, items in _lists(reco, Columns.TargetItem).items())
    only = RandomModel(random_state=0).fit(ds).recommend([2], ds, k=5, filter_viewed=False, items_to_recommend=["c"])
    assert list(only[I]) == ["c"]


def test_random_model_is_uniform():
    df = pd.DataFrame({U: [0, 0, 1], I: list("abc")})
    ds = Dataset.construct(pd.concat([df, pd.DataFrame({U: [2] * 7, I: list("defghij")})]))
    reco = RandomModel(random_state=0).fit(ds).recommend(list(range(3)) * 1, ds, k=1, filter_viewed=False)
    many = RandomModel(random_state=1).fit(ds)
    counts = pd.concat([many.recommend([5], ds, k=1, filter_viewed=False) for _ in range(2000)])[I].value_counts()
    assert len(counts) == 10 and counts.min() > 140 and counts.max() < 260  # 200 expected each
    assert len(reco) == 3


def test_params_follow_scikit_learn_and_are_checked():
    model = PopularModel(popularity="n_interactions", add_cold=True)
    assert model.get_params() == {"popularity": "n_interactions", "period": None, "begin_from": None,
                                  "add_cold": True, "inverse": False, "verbose": 0}
    clone = PopularModel(**model.get_params())
    assert clone.get_params() == model.get_params() and not clone.is_fitted
    assert model.set_params(inverse=True) is model and model.inverse
    with pytest.raises(ValueError, match=r"Unknown popularity 'users'; allowed: \('n_users'"):
        PopularModel(popularity="users")
    with pytest.raises(ValueError, match="Only one of period and begin_from"):
        PopularModel(period=timedelta(days=1), begin_from=pd.Timestamp("2021-01-01"))
    with pytest.raises(ValueError, match="Unknown parameter"):
        model.set_params(k=3)
    with pytest.raises(ValueError, match="add_cold must be True or False"):
        model.set_params(add_cold="yes")
    assert model.add_cold is True  # a refused value leaves the model as it was
    with pytest.raises(ValueError, match="random_state"):
        RandomModel(random_state=-1)
    assert RandomModel(random_state=4).get_params() == {"random_state": 4, "verbose": 0}


def test_errors_and_state_hook():
    ds, df = _dataset()
    with pytest.raises(NotFittedError):
        PopularModel().recommend([1], ds, k=1, filter_viewed=False)
    model = PopularModel().fit(ds)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        model.recommend([1], ds, k=0, filter_viewed=False)
    with pytest.raises(ValueError, match="on_unsupported_targets must be one of"):
        model.recommend([1], ds, k=1, filter_viewed=False, on_unsupported_targets="drop")
    with pytest.raises(TypeError, match="Dataset"):
        model.fit(df)
    numeric = Dataset.construct(df.drop(columns=T))
    with pytest.raises(ValueError, match="period and begin_from need datetimes"):
        PopularModel(period=timedelta(days=1)).fit(numeric)
    for cls in (PopularModel, RandomModel):
        fitted = cls().fit(ds)
        restored = cls(**fitted.get_params())
        restored._set_state_arrays(fitted._state_arrays())
        assert all(isinstance(v, np.ndarray) for v in fitted._state_arrays().values())
        if cls is PopularModel:
            expected = fitted.recommend([1, 2], ds, 3, True)
            pd.testing.assert_frame_equal(restored.recommend([1, 2], ds, 3, True), expected)
        else:
            assert len(restored.recommend([1, 2], ds, 3, False)) == 6


def test_inputs_not_modified_and_exports():
    ds, df = _dataset()
    users = np.array([1, 2])
    copy = users.copy()
    PopularModel().fit(ds).recommend(users, ds, k=2, filter_viewed=True)
    RandomModel().fit(ds).recommend(users, ds, k=2, filter_viewed=True)
    np.testing.assert_array_equal(users, copy)
    assert seqrec.models.PopularModel is PopularModel and seqrec.models.RandomModel is RandomModel


def test_baselines_save_and_load(tmp_path):
    from seqrec import load_model
    df = pd.DataFrame({Columns.User: [1, 1, 2, 2, 3], Columns.Item: ["a", "b", "b", "c", "b"],
                       Columns.Datetime: pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04",
                                                         "2024-01-05"])})
    ds = Dataset.construct(df)
    for model in (PopularModel(period=timedelta(days=30)), PopularModel(popularity="n_interactions"),
                  RandomModel(random_state=3)):
        model.save(tmp_path / "m")
        assert type(load_model(tmp_path / "m")).__name__ == type(model).__name__
        model.fit(ds)
        model.save(tmp_path / "m")
        loaded = type(model).load(tmp_path / "m")
        assert loaded.get_params() == model.get_params()
        if isinstance(model, RandomModel):
            model = RandomModel(random_state=3).fit(ds)  # the random stream restarts on load
        pd.testing.assert_frame_equal(model.recommend([1, 2], ds, k=2, filter_viewed=False),
                                      loaded.recommend([1, 2], ds, k=2, filter_viewed=False))
