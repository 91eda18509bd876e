import numpy as np
import pandas as pd
import pytest

from seqrec import (Columns, Dataset, IdEmbeddingsItemNet, PopularModel, RandomModel, SASRecModel)
from seqrec.metrics import NDCG, Intersection, Recall, Serendipity
from seqrec.model_selection import (LastNSplitter, RandomSplitter, TimeRangeSplitter, cross_validate,
                                    dataset_of_rows)
from seqrec.splits import last_n_split

U, I, T = Columns.User, Columns.Item, Columns.Datetime


def _frame():
    # user 1: a b c d on days 1-4; user 2: x and y on the same day 2 (tie: y is the later row), then a on day 5
    return pd.DataFrame({
        U: [1, 2, 1, 2, 1, 1, 2, 3],
        I: ["a", "x", "b", "y", "c", "d", "a", "b"],
        T: pd.to_datetime(["2021-01-01", "2021-01-02", "2021-01-02", "2021-01-02", "2021-01-03", "2021-01-04",
                           "2021-01-05", "2021-01-05 10:00"], format="ISO8601"),
    })


def _pairs(df, rows):
    return sorted(map(tuple, df.iloc[np.asarray(rows)][[U, I]].astype(str).values.tolist()))


def test_last_n_splitter_folds_ties_and_stats():
    df = _frame()
    ds = Dataset.construct(df)
    raw = ds.get_raw_interactions()
    folds = list(LastNSplitter(1, n_splits=2, filter_cold_items=False).split(ds.interactions, collect_fold_stats=True))
    (tr0, te0, info0), (tr1, te1, info1) = folds
    # fold 0 tests the second-to-last interaction; on the tie of user 2, x is older than y
    assert _pairs(raw, te0) == [("1", "c"), ("2", "y")]
    assert _pairs(raw, tr0) == [("1", "a"), ("1", "b"), ("2", "x")]
    assert _pairs(raw, te1) == [("1", "d"), ("2", "a")]  # user 3 has no train row: cold, dropped
    assert info0 == {"i_split": 0, "train": 3, "train_users": 2, "train_items": 3, "test": 2, "test_users": 2,
                     "test_items": 2}
    assert info1["i_split"] == 1 and info1["train"] == 5
    # by default cold items go too: d occurs only in user 1's last row
    _, te, _ = next(LastNSplitter(1).split(ds.interactions))
    assert _pairs(raw, te) == [("2", "a")]


def test_splitters_accept_dataset_interactions_dataframe_alike():
    df = _frame()
    ds = Dataset.construct(df)
    raw = ds.get_raw_interactions()
    splitter = LastNSplitter(2, filter_cold_items=False, filter_already_seen=False)
    a = next(splitter.split(ds.interactions))
    b = next(splitter.split(ds))
    c = next(splitter.split(raw))
    for x, y in ((a, b), (a, c)):
        np.testing.assert_array_equal(x[0], y[0])
        np.testing.assert_array_equal(x[1], y[1])
    # the functional form is the same split: test = the last 2 of users with a train row
    train, test = last_n_split(df, 2)
    assert _pairs(raw, a[1]) == sorted(map(tuple, test[[U, I]].astype(str).values.tolist()))


def test_time_range_splitter_borders_and_filters():
    df = _frame()
    ds = Dataset.construct(df)
    raw = ds.get_raw_interactions()
    splitter = TimeRangeSplitter("1D", n_splits=2, filter_cold_users=False, filter_cold_items=False,
                                 filter_already_seen=False)
    # last interaction 2021-01-05 10:00 -> its whole day is the last fold
    assert splitter.get_test_fold_borders(ds.interactions) == [
        (pd.Timestamp("2021-01-04"), pd.Timestamp("2021-01-05")),
        (pd.Timestamp("2021-01-05"), pd.Timestamp("2021-01-06"))]
    folds = list(splitter.split(ds.interactions))
    assert _pairs(raw, folds[0][1]) == [("1", "d")]
    assert _pairs(raw, folds[1][1]) == [("2", "a"), ("3", "b")]
    assert folds[1][2] == {"i_split": 1, "start": pd.Timestamp("2021-01-05"), "end": pd.Timestamp("2021-01-06")}
    _, test, _ = list(TimeRangeSplitter("1D", 2).split(ds.interactions))[1]
    assert _pairs(raw, test) == [("2", "a")]  # user 3 is cold
    # the end is the last interaction rounded up to the unit (hour), one unit later when exactly on it
    on_border = df.assign(**{T: df[T].dt.normalize()})
    assert TimeRangeSplitter("12H").get_test_fold_borders(on_border) == [
        (pd.Timestamp("2021-01-04 13:00"), pd.Timestamp("2021-01-05 01:00"))]
    with pytest.raises(ValueError, match="test_size must be a number of days or hours"):
        TimeRangeSplitter("1W")
    with pytest.raises(ValueError, match="needs datetimes"):
        next(TimeRangeSplitter("1D").split(df.drop(columns=T)))


def test_random_splitter_disjoint_reproducible_and_checked():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({U: rng.integers(0, 20, 200), I: rng.integers(0, 30, 200)})
    splitter = RandomSplitter(0.2, n_splits=3, random_state=7, filter_cold_users=False, filter_cold_items=False,
                              filter_already_seen=False)
    folds = list(splitter.split(df))
    tests = [set(f[1]) for f in folds]
    assert all(len(t) == 40 for t in tests) and not (tests[0] & tests[1] | tests[1] & tests[2])
    for train, test, info in folds:
        assert set(train) | set(test) == set(range(200)) and not set(train) & set(test)
    again = list(splitter.split(df))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        RandomSplitter(1.0)
    with pytest.raises(ValueError, match="do not fit"):
        RandomSplitter(0.4, n_splits=3)
    with pytest.raises(ValueError, match="empty test"):
        next(RandomSplitter(0.001).split(df))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        LastNSplitter(0)
    with pytest.raises(TypeError, match="interactions must be"):
        next(LastNSplitter(1).split([(1, 2)]))


def test_splitters_match_per_user_loops_on_random_data():
    rng = np.random.default_rng(1)
    n = 500
    df = pd.DataFrame({U: rng.integers(0, 30, n), I: rng.integers(0, 40, n),
                       T: pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 10, n), unit="D")})
    copy = df.copy()
    _, test, _ = next(LastNSplitter(2, filter_cold_users=False, filter_cold_items=False,
                                    filter_already_seen=False).split(df))
    expected = []
    for _, g in df.groupby(U):
        order = sorted(range(len(g)), key=lambda i: (g[T].iloc[i], i))  # ties: later row is more recent
        expected += [g.index[i] for i in order[-2:]]
    assert sorted(test) == sorted(expected)
    train, test, _ = next(LastNSplitter(1).split(df))
    tr = set(map(tuple, df.loc[train, [U, I]].values.tolist()))
    for row in test:
        user, item = df.loc[row, U], df.loc[row, I]
        assert (user, item) not in tr and user in set(df.loc[train, U]) and item in set(df.loc[train, I])
    pd.testing.assert_frame_equal(df, copy)


def test_dataset_of_rows_keeps_warm_items_with_features():
    df = _frame()
    features = pd.DataFrame({Columns.Id: ["a", "b", "c", "d", "x", "y", "z"], Columns.Value: list("ppqqrrs"),
                             Columns.Feature: ["g"] * 7})
    ds = Dataset.construct(df, item_features_df=features, cat_item_features=["g"])
    rows = np.flatnonzero(ds.get_raw_interactions()[U].to_numpy() == 1)
    fold = dataset_of_rows(ds, rows)
    assert list(fold.user_id_map.external_ids) == [1]
    assert list(fold.item_id_map.external_ids[:4]) == ["a", "b", "c", "d"] and fold.n_hot_items == 4
    assert set(fold.item_id_map.external_ids[4:]) == {"x", "y", "z"}
    expected = ds.get_raw_interactions().iloc[rows].reset_index(drop=True)
    pd.testing.assert_frame_equal(fold.get_raw_interactions(), expected)
    # the features follow the ids
    z_old, z_new = ds.item_id_map.to_internal(["z"])[0], fold.item_id_map.to_internal(["z"])[0]
    old, new = ds.item_features, fold.item_features
    assert [old.names[c] for c in old.indices[old.indptr[z_old]:old.indptr[z_old + 1]]] == \
        [new.names[c] for c in new.indices[new.indptr[z_new]:new.indptr[z_new + 1]]]
    cold = dataset_of_rows(ds, rows, keep_features_for_removed_entities=False)
    assert list(cold.item_id_map.external_ids) == ["a", "b", "c", "d"]


def _cv_data():
    rng = np.random.default_rng(0)
    rows = []
    for user in range(40):
        start = int(rng.integers(0, 15))
        rows += [(user, (start + t) % 15, pd.Timestamp("2021-01-01") + pd.Timedelta(hours=int(h)))
                 for t, h in enumerate(np.sort(rng.integers(0, 24 * 6, 8)))]
    return pd.DataFrame(rows, columns=[U, I, T])


def test_cross_validate_structure_with_baselines():
    ds = Dataset.construct(_cv_data())
    metrics = {"ndcg@5": NDCG(5), "recall@5": Recall(5), "serendipity@5": Serendipity(5), "inter@5": Intersection(5)}
    models = {"popular": PopularModel(), "random": RandomModel(random_state=0)}
    out = cross_validate(ds, LastNSplitter(1, n_splits=2), metrics, models, k=5, filter_viewed=True,
                         ref_models=["popular"])
    assert [s["i_split"] for s in out["splits"]] == [0, 1]
    assert set(out["splits"][0]) == {"i_split", "train", "train_users", "train_items", "test", "test_users",
                                     "test_items"}
    assert [(m["model"], m["i_split"]) for m in out["metrics"]] == [("random", 0), ("random", 1)]
    assert set(out["metrics"][0]) == {"model", "i_split", "ndcg@5", "recall@5", "serendipity@5", "inter@5_popular"}
    out = cross_validate(ds, LastNSplitter(1, n_splits=2), metrics, models, k=5, filter_viewed=True,
                         ref_models=["popular"], validate_ref_models=True)
    rows = {(m["model"], m["i_split"]): m for m in out["metrics"]}
    assert rows[("popular", 0)]["inter@5_popular"] == 1.0
    # the popular fold 0 equals a hand-run of the same steps
    train, test, _ = next(LastNSplitter(1, n_splits=2).split(ds.interactions))
    fold = dataset_of_rows(ds, train)
    raw = ds.get_raw_interactions().iloc[test]
    reco = PopularModel().fit(fold).recommend(raw[U].unique(), fold, k=5, filter_viewed=True)
    assert rows[("popular", 0)]["ndcg@5"] == pytest.approx(NDCG(5).calc(reco, raw))


def test_cross_validate_with_sasrec_and_checks():
    ds = Dataset.construct(_cv_data())
    sasrec = SASRecModel(n_factors=8, n_heads=1, n_blocks=1, session_max_len=6, epochs=1, batch_size=64,
                         item_net_block_types=(IdEmbeddingsItemNet,), random_state=0, recommend_torch_device="cpu")
    out = cross_validate(ds, TimeRangeSplitter("1D", n_splits=1), {"ndcg@10": NDCG(10)},
                         {"sasrec": sasrec, "popular": PopularModel()}, k=10, filter_viewed=True)
    assert [m["model"] for m in out["metrics"]] == ["sasrec", "popular"]
    assert all(0.0 <= m["ndcg@10"] <= 1.0 for m in out["metrics"])
    assert out["splits"][0]["start"] == pd.Timestamp("2021-01-06")
    with pytest.raises(ValueError, match="ref_models"):
        cross_validate(ds, LastNSplitter(1), {}, {"p": PopularModel()}, k=5, filter_viewed=True, ref_models=["x"])
    with pytest.raises(ValueError, match="on_unsupported_targets"):
        cross_validate(ds, LastNSplitter(1), {}, {"p": PopularModel()}, k=5, filter_viewed=True,
                       on_unsupported_targets="skip")
    with pytest.raises(TypeError, match="splitter"):
        cross_validate(ds, "last", {}, {"p": PopularModel()}, k=5, filter_viewed=True)
    with pytest.raises(TypeError, match="fit/recommend"):
        cross_validate(ds, LastNSplitter(1), {}, {"p": object()}, k=5, filter_viewed=True)
