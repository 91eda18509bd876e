"""Model selection under RecTools' names: splitters of interactions into folds and ``cross_validate``.

``seqrec.splits`` has the same splits as plain functions of a DataFrame (``leave_one_out``,
``last_n_split``, ``time_split``), on the same implementation.
"""

from .cross_validate import cross_validate, dataset_of_rows
from .splitters import LastNSplitter, RandomSplitter, Splitter, TimeRangeSplitter

__all__ = ["LastNSplitter", "RandomSplitter", "Splitter", "TimeRangeSplitter", "cross_validate", "dataset_of_rows"]
