"""seqrec.io: one column mapping for pandas / polars frames and CSV / Parquet files, three timestamp forms."""

import numpy as np
import pandas as pd
import pytest

from seqrec import Columns, Dataset, read_interactions, read_item_features
from seqrec.datasets import load_movielens_small
from seqrec.io import file_format, read_ids, to_datetimes, write_table

pl = pytest.importorskip("polars")
pytest.importorskip("pyarrow")

STAMPS = pd.to_datetime(["2024-01-01 00:00:00", "2024-01-01 00:00:30", "2024-03-05 12:00:00",
                         "2023-12-31 23:59:59", "2024-01-02 08:00:00"])


def raw_log(time_form: str) -> pd.DataFrame:
    """A log with the caller's own column names and one of the three time forms."""
    times = {
        "datetime": STAMPS,
        "unix": (STAMPS - pd.Timestamp("1970-01-01")) // pd.Timedelta("1s"),
        "iso": STAMPS.strftime("%Y-%m-%dT%H:%M:%S"),
    }[time_form]
    return pd.DataFrame({"uid": ["a", "a", "b", "c", "b"], "movie": [10, 11, 10, 12, 13],
                         "when": times, "stars": [4.0, 3.5, 5.0, 1.0, 2.0], "other": list("vwxyz")})


def as_source(df: pd.DataFrame, kind: str, tmp_path):
    if kind == "pandas":
        return df
    if kind == "polars":
        return pl.from_pandas(df)
    if kind == "polars-lazy":
        return pl.from_pandas(df).lazy()
    path = tmp_path / {"csv": "log.csv", "csv.gz": "log.csv.gz", "tsv": "log.tsv", "parquet": "log.parquet"}[kind]
    write_table(df, path) if kind != "csv.gz" else df.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("kind", ["pandas", "polars", "polars-lazy", "csv", "csv.gz", "tsv", "parquet"])
@pytest.mark.parametrize("time_form", ["datetime", "unix", "iso"])
def test_every_source_and_time_form_gives_the_same_table(kind, time_form, tmp_path):
    df = raw_log(time_form)
    before = df.copy()
    out = read_interactions(as_source(df, kind, tmp_path), user_col="uid", item_col="movie", time_col="when",
                            weight_col="stars")
    assert list(out.columns) == [Columns.User, Columns.Item, Columns.Weight, Columns.Datetime]
    assert out[Columns.User].tolist() == ["a", "a", "b", "c", "b"]
    assert out[Columns.Item].tolist() == [10, 11, 10, 12, 13]
    assert out[Columns.Weight].tolist() == [4.0, 3.5, 5.0, 1.0, 2.0]
    assert out[Columns.Datetime].dtype == "datetime64[ns]"
    assert (out[Columns.Datetime].to_numpy() == STAMPS.to_numpy(dtype="datetime64[ns]")).all()
    if kind == "pandas":
        pd.testing.assert_frame_equal(df, before)  # the caller's frame is untouched
        out.loc[0, Columns.Weight] = -1.0
        assert df.loc[0, "stars"] == 4.0  # and shares no memory with the result


def test_embedded_data_round_trips_through_csv_and_parquet(tmp_path):
    data = load_movielens_small().interactions.iloc[:3000]
    raw = pd.DataFrame({"userId": data[Columns.User], "movieId": data[Columns.Item], "rating": data[Columns.Weight],
                        "timestamp": (data[Columns.Datetime] - pd.Timestamp("1970-01-01")) // pd.Timedelta("1s")})
    raw.to_csv(tmp_path / "ratings.csv", index=False)
    data.to_parquet(tmp_path / "ratings.parquet")
    from_csv = read_interactions(tmp_path / "ratings.csv", "userId", "movieId", "timestamp", "rating")
    from_parquet = read_interactions(tmp_path / "ratings.parquet")  # standard names: time and weight found
    expected = data.reset_index(drop=True).astype({Columns.Datetime: "datetime64[ns]"})
    pd.testing.assert_frame_equal(from_csv, expected)
    pd.testing.assert_frame_equal(from_parquet, expected)
    a, b = Dataset.construct(from_csv), Dataset.construct(data)
    assert np.array_equal(a.interactions.items, b.interactions.items)
    assert np.array_equal(a.interactions.times, b.interactions.times)


def test_optional_columns_are_taken_when_present_and_required_when_named():
    df = pd.DataFrame({"user_id": [1, 2], "item_id": [3, 4], "weight": [2.0, 1.0], "datetime": [10, 20]})
    assert list(read_interactions(df).columns) == [Columns.User, Columns.Item, Columns.Weight, Columns.Datetime]
    bare = read_interactions(df[["user_id", "item_id"]])
    assert list(bare.columns) == [Columns.User, Columns.Item]  # no time: Dataset uses the row order
    with pytest.raises(ValueError, match="time column 'ts' not found.*columns are"):
        read_interactions(df, time_col="ts")
    with pytest.raises(ValueError, match="weight column 'w' not found"):
        read_interactions(df, weight_col="w")


def test_time_units_and_offsets():
    seconds = pd.Series([1_700_000_000, 1_700_000_060])
    as_ms = to_datetimes(seconds * 1000, "t", time_unit="ms")
    assert (as_ms == to_datetimes(seconds, "t")).all()
    assert as_ms.iloc[1] - as_ms.iloc[0] == pd.Timedelta("60s")
    # ISO strings with offsets come out in UTC; numbers stored as text are unix timestamps
    iso = to_datetimes(pd.Series(["2024-01-01T12:00:00+02:00", "2024-01-01T10:00:00Z"]), "t")
    assert iso.iloc[0] == iso.iloc[1] == pd.Timestamp("2024-01-01 10:00:00")
    assert to_datetimes(pd.Series(["1700000000"]), "t").iloc[0] == pd.Timestamp(1_700_000_000, unit="s")
    aware = pd.Series(pd.to_datetime(["2024-01-01 12:00"]).tz_localize("Europe/Berlin"))
    assert to_datetimes(aware, "t").iloc[0] == pd.Timestamp("2024-01-01 11:00")
    with pytest.raises(ValueError, match="Unknown time_unit 'h'"):
        to_datetimes(seconds, "t", time_unit="h")


@pytest.mark.parametrize("change, match", [
    (dict(user_col="user"), r"user column 'user' not found in the DataFrame; its columns are \['uid'"),
    (dict(item_col="uid"), r"column 'uid' is given for several roles \['user', 'item'\]"),
    (dict(weight_col="other"), "weight column 'other' must be numeric"),
    (dict(time_col="other"), "time column 'other': 'v' is not an ISO 8601 date"),
])
def test_bad_columns_are_named(change, match):
    kwargs = dict(user_col="uid", item_col="movie", time_col="when", weight_col="stars")
    kwargs.update(change)
    with pytest.raises(ValueError, match=match):
        read_interactions(raw_log("iso"), **kwargs)


def test_missing_values_are_named_with_their_row(tmp_path):
    df = raw_log("unix")
    df.loc[3, "movie"] = np.nan
    with pytest.raises(ValueError, match=r"column 'movie' has 1 missing value\(s\), first in row 3"):
        read_interactions(df, "uid", "movie")
    df = raw_log("iso")
    df.loc[1, "when"] = None
    df.to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(ValueError, match=r"column 'when' has 1 missing value"):
        read_interactions(tmp_path / "log.csv", "uid", "movie", time_col="when")
    df = raw_log("iso")
    df.loc[0, "stars"] = np.inf
    with pytest.raises(ValueError, match="weight column 'stars' has non-finite values"):
        read_interactions(df, "uid", "movie", weight_col="stars")


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_interactions(tmp_path / "absent.csv")
    with pytest.raises(ValueError, match=r"unknown file type '.xlsx'"):
        read_interactions(tmp_path / "log.xlsx")
    with pytest.raises(TypeError, match="file path, a pandas DataFrame or a polars DataFrame, got list"):
        read_interactions([1, 2])
    assert file_format("a/b.CSV.GZ") == "csv" and file_format("x.pq") == "parquet"


def test_item_features_wide_with_separator_and_flat(tmp_path):
    wide = pd.DataFrame({"movie": [10, 11, 12], "genres": ["Action|Comedy", "Drama", None], "year": [1999, 2001, 2010],
                         "title": ["A", "B", "C"]})
    before = wide.copy()
    flat = read_item_features(wide, item_col="movie", cat_features=["genres", "year"], sep="|")
    pd.testing.assert_frame_equal(wide, before)
    assert list(flat.columns) == [Columns.Id, Columns.Value, Columns.Feature]
    rows = set(map(tuple, flat.to_numpy().tolist()))
    assert rows == {(10, "Action", "genres"), (10, "Comedy", "genres"), (11, "Drama", "genres"),
                    (10, 1999, "year"), (11, 2001, "year"), (12, 2010, "year")}  # the missing genre is skipped
    # the flat form is taken as it is, from a file too
    write_table(flat, tmp_path / "features.csv")
    again = read_item_features(tmp_path / "features.csv", cat_features=["genres"])
    assert len(again) == len(flat) and set(again[Columns.Feature]) == {"genres", "year"}
    dataset = Dataset.construct(read_interactions(raw_log("unix"), "uid", "movie"), item_features_df=again,
                                cat_item_features=["genres", "year"])
    assert dataset.n_items == 4  # 10..13
    with pytest.raises(ValueError, match=r"categorical feature 'genre' is not in the table's 'feature' column"):
        read_item_features(flat, cat_features=["genre"])
    with pytest.raises(ValueError, match="not in the flat form.*name its categorical columns"):
        read_item_features(wide, item_col="movie")
    with pytest.raises(ValueError, match=r"feature 'country' column 'country' not found"):
        read_item_features(wide, item_col="movie", cat_features=["country"])


def test_read_ids(tmp_path):
    pd.DataFrame({"uid": [3, 1, 3], "x": [0, 0, 0]}).to_csv(tmp_path / "u.csv", index=False)
    assert read_ids(tmp_path / "u.csv", "uid", "users").tolist() == [3, 1]
    pd.DataFrame({"whatever": ["b", "a"]}).to_parquet(tmp_path / "u.parquet")
    assert read_ids(tmp_path / "u.parquet", "uid", "users").tolist() == ["b", "a"]  # the only column
    with pytest.raises(ValueError, match="column 'user_id' not found.*several columns"):
        read_ids(tmp_path / "u.csv", "user_id", "users")
