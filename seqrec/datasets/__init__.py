"""Datasets: the embedded MovieLens latest-small (shipped with the package) and loaders."""

from .movielens_small import EmbeddedData, load_movielens_small

__all__ = ["EmbeddedData", "load_movielens_small"]
