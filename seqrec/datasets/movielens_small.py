"""MovieLens "latest-small" (GroupLens), shipped gzipped inside the package.

The data is distributed under the conditions of its README (research and non-commercial use,
redistribution with the same conditions; cite F. Maxwell Harper and Joseph A. Konstan, 2015,
"The MovieLens Datasets: History and Context", ACM TiiS 5(4)). The README travels beside the
files: ``seqrec/datasets/data/README.txt``.
"""

from __future__ import annotations

import typing as tp
from dataclasses import dataclass
from importlib import resources

import pandas as pd

from ..columns import Columns

NO_GENRE = "(no genres listed)"


@dataclass(frozen=True)
class EmbeddedData:
    """The embedded dataset in the forms ``Dataset.construct`` takes."""

    interactions: pd.DataFrame  # user_id, item_id, weight (the rating), datetime
    item_features: pd.DataFrame  # flat: id, value, feature ("genre")
    items: pd.DataFrame  # item_id, title, title_orig, genres


def _read(name: str, **kwargs: tp.Any) -> pd.DataFrame:
    with resources.files(__package__).joinpath("data", name).open("rb") as f:
        return pd.read_csv(f, compression="gzip", **kwargs)


def load_movielens_small() -> EmbeddedData:
    """Load the embedded MovieLens latest-small: 610 users, 9,724 movies, 100,836 ratings.

    Interactions keep the file's row order; ``datetime`` comes from the unix timestamps (15.7% of
    them tie within a user, and ties keep the file order when sorted stably).
    """
    ratings = _read("ratings.csv.gz")
    interactions = pd.DataFrame({
        Columns.User: ratings["userId"].to_numpy(),
        Columns.Item: ratings["movieId"].to_numpy(),
        Columns.Weight: ratings["rating"].to_numpy(dtype=float),
        Columns.Datetime: pd.to_datetime(ratings["timestamp"], unit="s"),
    })
    movies = _read("movies.csv.gz")
    items = pd.DataFrame({
        Columns.Item: movies["movieId"].to_numpy(),
        "title": movies["title"].to_numpy(),
        "title_orig": movies["title"].to_numpy(),
        "genres": movies["genres"].to_numpy(),
    })
    genres = movies.assign(value=movies["genres"].str.split("|")).explode("value")
    genres = genres[genres["value"] != NO_GENRE]
    item_features = pd.DataFrame({
        Columns.Id: genres["movieId"].to_numpy(),
        Columns.Value: genres["value"].to_numpy(),
        Columns.Feature: "genre",
    })
    return EmbeddedData(interactions=interactions, item_features=item_features, items=items)
