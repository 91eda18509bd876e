import numpy as np
import pandas as pd
import pytest

from seqrec import Columns, Dataset
from seqrec.splits import last_n_split, leave_one_out, time_split


def _frame():
    # user "u" interacts with 1..4 in time order but the rows are shuffled; user "v" has two rows
    # with the same datetime (tie: input order decides, so "y" is later than "x"); "w" has one row
    return pd.DataFrame({
        Columns.User: ["u", "v", "u", "u", "v", "w", "u", "v"],
        Columns.Item: [3, "x", 1, 4, "y", 7, 2, "z"],
        Columns.Datetime: pd.to_datetime(["2020-01-03", "2020-02-01", "2020-01-01", "2020-01-04", "2020-02-01",
                                          "2020-03-01", "2020-01-02", "2020-01-15"]),
    }, index=[10, 11, 12, 13, 14, 15, 16, 17])


def _naive_from_end(df):
    """Per-user loop: position from the end of each row, with ties broken by input order."""
    out = {}
    for _, g in df.groupby(Columns.User, sort=False):
        times = g[Columns.Datetime].tolist() if Columns.Datetime in g else list(range(len(g)))
        order = sorted(range(len(g)), key=lambda i: (times[i], i))
        for pos, i in enumerate(order):
            out[g.index[i]] = len(g) - 1 - pos
    return out


def test_leave_one_out_small_case():
    df = _frame()
    train, val, test = leave_one_out(df)
    assert test.set_index(Columns.User)[Columns.Item].to_dict() == {"u": 4, "v": "y"}
    assert val.set_index(Columns.User)[Columns.Item].to_dict() == {"u": 3, "v": "x"}
    assert sorted(map(str, train[Columns.Item])) == ["1", "2", "7", "z"]
    # rows keep their input order and index; nothing lost or duplicated
    assert list(train.index) == [12, 15, 16, 17]
    assert sorted(train.index.tolist() + val.index.tolist() + test.index.tolist()) == sorted(df.index)


def test_leave_one_out_min_train_interactions():
    df = pd.DataFrame({Columns.User: [1, 2, 2, 3, 3, 3], Columns.Item: [1, 2, 3, 4, 5, 6]})
    train, val, test = leave_one_out(df)
    assert test[Columns.User].tolist() == [2, 3] and val[Columns.User].tolist() == [3]
    assert train[Columns.Item].tolist() == [1, 2, 4]
    train, val, test = leave_one_out(df, min_train_interactions=0)
    assert test[Columns.User].tolist() == [1, 2, 3] and val[Columns.User].tolist() == [2, 3]
    train, val, test = leave_one_out(df, min_train_interactions=2)
    assert test[Columns.User].tolist() == [3] and val.empty


@pytest.mark.parametrize("with_datetime", [True, False])
def test_splits_match_naive_positions_on_random_data(with_datetime):
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({Columns.User: rng.integers(0, 30, n), Columns.Item: rng.integers(0, 50, n)})
    if with_datetime:
        df[Columns.Datetime] = rng.integers(0, 20, n)  # many ties
    from_end = _naive_from_end(df)
    counts = df[Columns.User].map(df[Columns.User].value_counts())
    train, val, test = leave_one_out(df)
    expected_test = {i for i in df.index if from_end[i] == 0 and counts[i] >= 2}
    expected_val = {i for i in df.index if from_end[i] == 1 and counts[i] >= 3}
    assert set(test.index) == expected_test
    assert set(val.index) == expected_val
    assert set(train.index) == set(df.index) - expected_test - expected_val
    tr, te = last_n_split(df, 3)
    expected = {i for i in df.index if from_end[i] < 3 and counts[i] >= 4}
    assert set(te.index) == expected and set(tr.index) == set(df.index) - expected
    assert list(te.index) == sorted(te.index)  # input order kept


def test_dataset_built_on_train_plus_val_sees_test_item_last():
    df = _frame()
    train, val, test = leave_one_out(df)
    ds = Dataset.construct(pd.concat([train, val, test]))
    raw = ds.get_raw_interactions()
    last = raw.groupby(Columns.User).tail(1).set_index(Columns.User)[Columns.Item].to_dict()
    assert last["u"] == 4 and last["v"] == "y"


def test_last_n_split():
    df = _frame()
    train, test = last_n_split(df, 2)
    assert set(test.index) == {10, 11, 13, 14}  # v's x and y tie in time: both are its last two
    assert set(train.index) == {12, 15, 16, 17}
    train, test = last_n_split(df, 3)  # v has 3 rows: not enough history left -> all train
    assert set(test[Columns.User]) == {"u"}
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        last_n_split(df, 0)


def test_time_split():
    df = _frame()
    train, test = time_split(df, "2020-01-20")
    assert set(train.index) == {10, 12, 13, 16, 17}
    # w is a cold user and x, y are cold items: dropped by default
    assert test.empty
    train, test = time_split(df, "2020-01-20", filter_cold_users=False, filter_cold_items=False)
    assert set(test.index) == {11, 14, 15}
    train, test = time_split(df, "2020-01-20", filter_cold_users=True, filter_cold_items=False)
    assert set(test.index) == {11, 14}
    numeric = df.assign(**{Columns.Datetime: np.arange(len(df))})
    train, test = time_split(numeric, 5, filter_cold_users=False, filter_cold_items=False)
    assert set(train.index) == {10, 11, 12, 13, 14} and set(test.index) == {15, 16, 17}
    with pytest.raises(ValueError, match="must be a number"):
        time_split(numeric, "2020-01-01")
    with pytest.raises(ValueError, match="not a date"):
        time_split(df, "not a date")
    with pytest.raises(ValueError, match="'datetime' column"):
        time_split(df.drop(columns=Columns.Datetime), 3)


def test_input_not_modified_and_outputs_independent():
    df = _frame()
    copy = df.copy()
    train, val, test = leave_one_out(df)
    last_n_split(df, 1)
    time_split(df, "2020-01-02")
    pd.testing.assert_frame_equal(df, copy)
    train.loc[train.index[0], Columns.Item] = "changed"
    pd.testing.assert_frame_equal(df, copy)


@pytest.mark.parametrize("split", [leave_one_out, lambda d: last_n_split(d, 1), lambda d: time_split(d, 0)])
def test_bad_input(split):
    with pytest.raises(ValueError, match=r"\['item_id'\]"):
        split(pd.DataFrame({Columns.User: [1], Columns.Datetime: [0]}))
    with pytest.raises(ValueError, match="'user_id' has 1 missing"):
        split(pd.DataFrame({Columns.User: [1, None], Columns.Item: [1, 2], Columns.Datetime: [0, 1]}))
    with pytest.raises(TypeError, match="DataFrame"):
        split([(1, 2)])


def test_bad_min_train_interactions():
    with pytest.raises(ValueError, match="min_train_interactions"):
        leave_one_out(_frame(), min_train_interactions=-1)
