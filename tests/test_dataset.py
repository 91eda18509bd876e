import numpy as np
import pandas as pd
import pytest

from seqrec import Columns, Dataset, IdMap


def _df() -> pd.DataFrame:
    return pd.DataFrame({
        Columns.User: ["b", "a", "b", "a", "b", "c"],
        Columns.Item: [10, 20, 30, 10, 20, 40],
        Columns.Weight: [1.0, 2.0, 1.0, 1.0, 3.0, 1.0],
        Columns.Datetime: pd.to_datetime(["2024-01-03", "2024-01-02", "2024-01-01", "2024-01-01", "2024-01-03",
                                          "2024-01-05"]),
    })


def test_id_maps_follow_first_appearance_and_are_immutable():
    ds = Dataset.construct(_df())
    assert ds.user_id_map.external_ids.tolist() == ["b", "a", "c"]
    assert ds.item_id_map.external_ids.tolist() == [10, 20, 30, 40]
    assert ds.item_id_map.to_internal([30, 10]).tolist() == [2, 0]
    assert ds.item_id_map.to_internal([30, 99], strict=False).tolist() == [2, -1]
    with pytest.raises(KeyError, match="99"):
        ds.item_id_map.to_internal([99])
    with pytest.raises(ValueError):
        ds.item_id_map.external_ids[0] = 5
    with pytest.raises(ValueError):
        ds.interactions.items[0] = 1


def test_sequences_sorted_by_time_with_stable_ties():
    ds = Dataset.construct(_df())
    inter = ds.interactions
    # user "b": items 30 (01-01), then 10 and 20 both on 01-03 in input order
    b = ds.user_id_map.to_internal(["b"])[0]
    seq = ds.item_id_map.to_external(inter.items[inter.indptr[b]:inter.indptr[b + 1]])
    assert seq.tolist() == [30, 10, 20]
    assert inter.lengths.tolist() == [3, 2, 1]
    raw = ds.get_raw_interactions()
    assert raw[raw[Columns.User] == "a"][Columns.Item].tolist() == [10, 20]
    assert raw[raw[Columns.User] == "b"][Columns.Weight].tolist() == [1.0, 1.0, 3.0]
    assert raw[raw[Columns.User] == "c"][Columns.Datetime].tolist() == [pd.Timestamp("2024-01-05")]


def test_without_datetime_row_order_is_time_order_and_weight_defaults_to_one():
    df = pd.DataFrame({Columns.User: [1, 2, 1, 1], Columns.Item: ["x", "y", "z", "x"]})
    ds = Dataset.construct(df)
    inter = ds.interactions
    assert ds.item_id_map.to_external(inter.items[: inter.indptr[1]]).tolist() == ["x", "z", "x"]
    assert (inter.weights == 1).all()


def test_caller_frames_are_not_modified():
    df = _df()
    feats = pd.DataFrame({Columns.Id: [10, 10, 20], Columns.Value: ["a", "b", "a"], Columns.Feature: "genre"})
    df_copy, feats_copy = df.copy(), feats.copy()
    Dataset.construct(df, item_features_df=feats, cat_item_features=["genre"])
    pd.testing.assert_frame_equal(df, df_copy)
    pd.testing.assert_frame_equal(feats, feats_copy)


def test_flat_item_features_with_several_values_and_numeric_features():
    feats = pd.DataFrame({
        Columns.Id: [10, 10, 20, 99, 30],
        Columns.Value: ["drama", "comedy", "drama", "x", 1.5],
        Columns.Feature: ["genre", "genre", "genre", "genre", "price"],
    })
    ds = Dataset.construct(_df(), item_features_df=feats, cat_item_features=["genre"])
    f = ds.item_features
    assert f.names[: 2] == (("genre", "drama"), ("genre", "comedy"))
    assert ("price", None) in f.names
    item10 = ds.item_id_map.to_internal([10])[0]
    cols = f.indices[f.indptr[item10]:f.indptr[item10 + 1]]
    assert sorted(f.names[c] for c in cols) == [("genre", "comedy"), ("genre", "drama")]
    cat = f.categorical()
    assert cat.n_columns == 3  # "x" of item 99, a cold item (features only), appended to the map
    assert ds.n_items == 5 and ds.n_hot_items == 4 and ds.item_id_map.external_ids[-1] == 99
    item40 = ds.item_id_map.to_internal([40])[0]
    assert cat.indptr[item40 + 1] - cat.indptr[item40] == 0


def test_dense_item_features():
    feats = pd.DataFrame({Columns.Id: [20, 10], "price": [2.0, 1.0], "age": [5.0, 3.0]})
    ds = Dataset.construct(_df(), item_features_df=feats, make_dense_item_features=True)
    assert ds.item_features.names == ("price", "age")
    assert ds.item_features.values[ds.item_id_map.to_internal([10])[0]].tolist() == [1.0, 3.0]


@pytest.mark.parametrize("drop", [Columns.User, Columns.Item])
def test_missing_required_column_is_named(drop):
    with pytest.raises(ValueError, match=drop):
        Dataset.construct(_df().drop(columns=drop))


def test_bad_values_are_reported():
    df = _df()
    df.loc[2, Columns.Item] = None
    with pytest.raises(ValueError, match="'item_id' has 1 missing"):
        Dataset.construct(df)
    df = _df().astype({Columns.Weight: object})
    df.loc[0, Columns.Weight] = "heavy"
    with pytest.raises(TypeError, match="weight"):  # as RecTools: a dtype error
        Dataset.construct(df)
    with pytest.raises(TypeError, match="DataFrame"):
        Dataset.construct([1, 2, 3])
    with pytest.raises(ValueError, match="empty"):
        Dataset.construct(_df().iloc[:0])


def test_absent_categorical_feature_warns_and_is_ignored():
    feats = pd.DataFrame({Columns.Id: [10], Columns.Value: ["drama"], Columns.Feature: "genre"})
    with pytest.warns(UserWarning, match="director"):
        ds = Dataset.construct(_df(), item_features_df=feats, cat_item_features=["genre", "director"])
    assert ds.item_features.n_columns == 1


def test_features_table_must_be_flat():
    with pytest.raises(ValueError, match="feature"):
        Dataset.construct(_df(), item_features_df=pd.DataFrame({Columns.Id: [10], "genre": ["x"]}),
                          cat_item_features=["genre"])


def test_idmap_rejects_duplicates():
    with pytest.raises(ValueError, match="unique"):
        IdMap([1, 2, 1])
    assert IdMap(["a", "b"]) == IdMap(np.array(["a", "b"], dtype=object))


@pytest.mark.parametrize("n", [5000, 300_000])
@pytest.mark.parametrize("times_kind", ["seconds_ns", "wide", "extreme"])
def test_user_time_order_equals_two_stable_argsorts(times_kind, n):
    # the one-key stable sort (whole seconds in ns, or wide times) and the two-argsort fallback give
    # the reference order, ties (many equal times) in row order
    from seqrec.dataset import _user_time_order

    rng = np.random.default_rng(1)
    n_users = n // 16  # the large case takes the radix path of torch.sort
    users = rng.integers(0, n_users, n)
    if times_kind == "seconds_ns":  # one key: whole seconds in ns (divided by 10**9), few distinct values
        times = rng.integers(0, 50, n) * 10**9 + 1_600_000_000 * 10**9
    elif times_kind == "wide":  # one key of about 53 bits, many ties
        times = rng.integers(0, 2**44, n) * 3 + rng.integers(0, 2, n)
        times[::7] = times[0]
    else:  # span beyond 2**62: the two argsorts
        times = rng.choice(np.array([-(2**62), 0, 2**62, 5]), n)
    ref = np.argsort(times, kind="stable")
    ref = ref[np.argsort(users[ref], kind="stable")]
    np.testing.assert_array_equal(_user_time_order(users, times, n_users), ref)
