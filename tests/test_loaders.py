from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqrec import Columns, Dataset
from seqrec.datasets.shared import load_beauty, load_ml_1m

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ML_1M = DATA / "ml-1m"
BEAUTY = DATA / "beauty"

needs_ml_1m = pytest.mark.skipif(not (ML_1M / "ml-1m.txt").is_file(), reason=f"{ML_1M} is absent")
needs_beauty = pytest.mark.skipif(not (BEAUTY / "Beauty.txt").is_file(), reason=f"{BEAUTY} is absent")


@needs_ml_1m
def test_ml_1m_counts_order_and_features():
    inter, feats = load_ml_1m(ML_1M)
    assert list(inter.columns) == [Columns.User, Columns.Item, Columns.Datetime]
    assert inter[Columns.User].nunique() == 6040
    assert inter[Columns.Item].nunique() == 3416
    assert len(inter) == 999_611
    # datetime is the line number: strictly increasing, so sorting keeps the file order
    assert (np.diff(inter[Columns.Datetime].to_numpy()) == 1).all()
    first = Path(ML_1M / "ml-1m.txt").read_text().split("\n", 3)[:3]
    assert [f"{u} {i}" for u, i in inter[[Columns.User, Columns.Item]].head(3).itertuples(index=False)] == first
    assert list(feats.columns) == [Columns.Id, Columns.Value, Columns.Feature]
    assert set(feats[Columns.Feature]) == {"genre"}
    items = pd.read_csv(ML_1M / "items.csv")
    row = items.iloc[0]
    assert set(feats.loc[feats[Columns.Id] == row["item_id"], Columns.Value]) == set(row["genres"].split("|"))
    ds = Dataset.construct(inter, item_features_df=feats, cat_item_features=["genre"])
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (6040, 3416, 999_611)


@needs_beauty
def test_beauty_counts_order_and_features():
    inter, feats = load_beauty(BEAUTY)
    assert inter[Columns.User].nunique() == 22_363
    assert inter[Columns.Item].nunique() == 12_101
    assert len(inter) == 198_502
    assert (np.diff(inter[Columns.Datetime].to_numpy()) == 1).all()
    first_line = (BEAUTY / "Beauty.txt").read_text().split("\n", 1)[0].split()
    user = int(first_line[0])
    assert inter.loc[inter[Columns.User] == user, Columns.Item].tolist() == [int(t) for t in first_line[1:]]
    assert set(feats[Columns.Feature]) == {"attribute"}
    assert feats[Columns.Id].nunique() == 12_101
    assert set(feats.loc[feats[Columns.Id] == 4, Columns.Value]) == {1, 2, 3}  # "4": [1, 2, 3] in the json


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="ml-1m.txt"):
        load_ml_1m(tmp_path)
    with pytest.raises(FileNotFoundError, match="Beauty.txt"):
        load_beauty(tmp_path)


def test_small_files(tmp_path):
    (tmp_path / "ml-1m.txt").write_text("1 10\n1 11\n2 10\n")
    (tmp_path / "items.csv").write_text("item_id,movielens_movie_id,title,genres\n10,5,A,Action|Drama\n11,6,B,Comedy\n")
    inter, feats = load_ml_1m(tmp_path)
    assert inter[Columns.Datetime].tolist() == [0, 1, 2]
    assert sorted(zip(feats[Columns.Id], feats[Columns.Value])) == [(10, "Action"), (10, "Drama"), (11, "Comedy")]
    (tmp_path / "Beauty.txt").write_text("1 5 6 7\n2 6\n")
    (tmp_path / "Beauty_item2attributes.json").write_text('{"5": [1, 2], "6": [3]}')
    inter, feats = load_beauty(tmp_path)
    assert inter[Columns.User].tolist() == [1, 1, 1, 2]
    assert inter[Columns.Item].tolist() == [5, 6, 7, 6]
    assert feats[[Columns.Id, Columns.Value]].values.tolist() == [[5, 1], [5, 2], [6, 3]]
    (tmp_path / "Beauty.txt").write_text("1 5 6 7\n2\n")
    with pytest.raises(ValueError, match="line 2"):
        load_beauty(tmp_path)
