"""Validation during training: which interactions are validation targets, and the samples made of them.

``get_val_mask_func`` (a model parameter, as in RecTools) is a function of the interactions
DataFrame (``user_id, item_id, weight, datetime``) returning a boolean mask of the rows that are
validation targets. Those rows never enter training. Each user with a validation row gets one
validation sample: the history is the user's training interactions before the first validation
row, the target is that row's item.
"""

from __future__ import annotations

import typing as tp

import numpy as np
import pandas as pd

from .columns import Columns
from .dataset import Dataset, ExternalIds, _time_values

ValMaskFunc = tp.Callable[[pd.DataFrame], np.ndarray]


def leave_one_out_mask(interactions: pd.DataFrame, val_users: tp.Union[None, int, ExternalIds] = None,
                       random_state: int = 0) -> np.ndarray:
    """Mask of each user's last interaction (by ``datetime``, ties by row order), as in RecTools.

    ``val_users``: None for every user, an int for a seeded random sample of that many users
    (``random_state``), or the external ids of the users to validate on.
    """
    # the time order of Dataset.construct and seqrec.splits (datetime strings parsed, floats exact)
    order = (np.argsort(_time_values(interactions[Columns.Datetime]), kind="stable")
             if Columns.Datetime in interactions else np.arange(len(interactions)))
    last = ~interactions[Columns.User].iloc[order].duplicated(keep="last").to_numpy()
    mask = np.zeros(len(interactions), dtype=bool)
    mask[order[last]] = True
    if val_users is None:
        return mask
    users = interactions[Columns.User]
    if isinstance(val_users, (int, np.integer)) and not isinstance(val_users, bool):
        unique = pd.unique(users)
        if not 0 < val_users <= len(unique):
            raise ValueError(f"val_users={val_users} must be between 1 and the number of users ({len(unique)})")
        rng = np.random.default_rng(random_state)
        chosen = unique[rng.choice(len(unique), size=int(val_users), replace=False)]
    else:
        chosen = pd.unique(pd.Series(list(val_users)))
    return mask & users.isin(chosen).to_numpy()


def validation_mask(dataset: Dataset, get_val_mask_func: ValMaskFunc) -> np.ndarray:
    """The mask ``get_val_mask_func`` gives for ``dataset``'s interactions, one entry per CSR position
    (users in internal order, each user's rows by time), checked."""
    raw = dataset.get_raw_interactions()  # rows in CSR order
    mask = get_val_mask_func(raw)
    mask = np.asarray(mask.to_numpy() if isinstance(mask, pd.Series) else mask)
    if mask.shape != (len(raw),) or mask.dtype != bool:
        raise ValueError(f"get_val_mask_func must return a boolean mask of one entry per interaction "
                         f"({len(raw)}), got an array of shape {mask.shape} and dtype {mask.dtype}")
    if not mask.any():
        raise ValueError("get_val_mask_func marked no interaction for validation")
    return mask


def split_validation(indptr: np.ndarray, mask: np.ndarray
                     ) -> tp.Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validation samples of a CSR whose positions ``mask`` marks.

    Returns, per validation user (a user with a marked position): its row, the CSR position of its
    first marked interaction (the target) and the number of unmarked positions before it (the
    length of its history among the training interactions).
    """
    n_rows = len(indptr) - 1
    row_of = np.repeat(np.arange(n_rows), np.diff(indptr))
    marked = np.flatnonzero(mask)
    rows, first = np.unique(row_of[marked], return_index=True)
    target_pos = marked[first]
    # unmarked positions of the row before the target
    unmarked_before = np.cumsum(~mask) - (~mask)  # unmarked positions strictly before each position
    row_start_unmarked = unmarked_before[indptr[rows]] if len(rows) else np.zeros(0, np.int64)
    n_history = unmarked_before[target_pos] - row_start_unmarked
    return rows, target_pos, n_history
