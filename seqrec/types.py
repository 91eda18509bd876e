"""Type aliases of ids, under the names RecTools users import (``from seqrec.types import ExternalIds``).

External ids are the ids of the data (any hashable: int, str, ...); internal ids are the
positions ``0..n-1`` given to them by an :class:`~seqrec.IdMap`.
"""

from __future__ import annotations

import typing as tp

import numpy as np

__all__ = [
    "AnyIds", "AnyIdsArray", "AnySequence", "ExternalId", "ExternalIds", "ExternalIdsArray", "InternalId",
    "InternalIds", "InternalIdsArray",
]

ExternalId = tp.Hashable
ExternalIdsArray = np.ndarray
ExternalIds = tp.Union[tp.Sequence[ExternalId], ExternalIdsArray]
InternalId = int
InternalIdsArray = np.ndarray
InternalIds = tp.Union[tp.Sequence[InternalId], InternalIdsArray]
AnyIdsArray = tp.Union[ExternalIdsArray, InternalIdsArray]
AnyIds = tp.Union[ExternalIds, InternalIds]
AnySequence = tp.Union[tp.Sequence[tp.Any], np.ndarray]
