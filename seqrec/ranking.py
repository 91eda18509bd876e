"""Scoring and batched top-k: user-to-item (``recommend``) and item-to-item (``recommend_to_items``).

Everything runs on the device in batches; filtering (viewed items, the target item itself) and
whitelists are masks and column maps, never a dense host matrix. Scores are the dot product of
query and item vectors, or their cosine with ``similarity="cosine"`` (both vectors normalised,
exactly as in training).
"""

from __future__ import annotations

import typing as tp

import numpy as np
import torch
import torch.nn.functional as F

from .batching import take_rows

SIMILARITIES = ("dot", "cosine")
# histories (CSR, model item ids) -> right-padded tokens (B, L)
TokensFn = tp.Callable[[np.ndarray, np.ndarray], np.ndarray]
# rows of a batch (into the histories' CSR) -> further inputs of last_vectors after the item table
ExtrasFn = tp.Callable[[np.ndarray], tp.Tuple[np.ndarray, ...]]
Triplet = tp.Tuple[np.ndarray, np.ndarray, np.ndarray]  # (query row, item id, score)


def similarity_vectors(x: torch.Tensor, similarity: str) -> torch.Tensor:
    """The vectors whose dot product is the score: ``x`` itself ("dot") or ``x`` normalised to
    unit length ("cosine"; a zero vector stays zero)."""
    if similarity == "cosine":
        return F.normalize(x, dim=-1, eps=1e-8)
    return x


class DistanceSimilarityModule:
    """RecTools' spelling of the similarity: ``similarity_module_type=DistanceSimilarityModule,
    similarity_module_kwargs={"distance": "dot" | "cosine"}`` means ``similarity="dot" | "cosine"``."""

    def __init__(self, distance: str = "dot") -> None:
        if distance not in SIMILARITIES:
            raise ValueError(f"Unknown distance {distance!r}; allowed: {SIMILARITIES}")
        self.distance = distance


class Candidates:
    """The items a ranking may return: all ``n_items`` rows of the table, or a sorted subset.

    ``column_of[i]`` is item ``i``'s column among the candidates (-1: not a candidate).
    """

    def __init__(self, n_items: int, subset: tp.Optional[np.ndarray], device: torch.device) -> None:
        if subset is None:
            self.items = torch.arange(n_items, device=device)
            self.column_of = None
            self.size = n_items
        else:
            subset = np.asarray(subset, dtype=np.int64)
            self.items = torch.as_tensor(subset, device=device)
            self.column_of = np.full(n_items, -1, dtype=np.int64)
            self.column_of[subset] = np.arange(len(subset))
            self.size = len(subset)

    def columns(self, items: np.ndarray) -> np.ndarray:
        return items if self.column_of is None else self.column_of[items]

    def table(self, table: torch.Tensor) -> torch.Tensor:
        return table if self.column_of is None else table[self.items]


def _top_k(scores: torch.Tensor, k: int, rows: np.ndarray, excl_rows: np.ndarray, excl_cols: np.ndarray,
           cands: Candidates, out: tp.List[tp.List[np.ndarray]]) -> None:
    """Top-``k`` of each row of ``scores`` ``(B, C)`` after setting the excluded (row, item) pairs to
    -inf; appends (query row, item, score) of the finite results to ``out``."""
    device = scores.device
    cols = cands.columns(excl_cols)
    keep = cols >= 0
    if keep.any():
        scores[torch.as_tensor(excl_rows[keep], device=device), torch.as_tensor(cols[keep], device=device)] = (
            float("-inf"))
    top_scores, top_cols = torch.topk(scores, k, dim=1)  # (B, k)
    # -inf marks an excluded item; NaN (which topk puts first) or +inf can only come from the model
    broken = torch.isnan(top_scores) | (top_scores == float("inf"))
    if bool(broken.any()):
        raise ValueError(f"the model gives non-finite scores (e.g. {float(top_scores[broken][0])}) for "
                         f"{int(broken.any(dim=1).sum())} query row(s) of this batch: its weights are not finite "
                         "(a diverged training?); refusing to rank by them")
    ok = torch.isfinite(top_scores)
    row_ids = torch.as_tensor(rows, device=device).unsqueeze(1).expand_as(top_cols)
    out[0].append(row_ids[ok].cpu().numpy())
    out[1].append(cands.items[top_cols][ok].cpu().numpy())
    out[2].append(top_scores[ok].float().cpu().numpy())


def _finish(out: tp.List[tp.List[np.ndarray]]) -> Triplet:
    rows = np.concatenate(out[0])
    order = np.argsort(rows, kind="stable")  # queries in the requested order; ranks stay in order inside one
    return rows[order], np.concatenate(out[1])[order], np.concatenate(out[2])[order]


def _empty() -> Triplet:
    return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)


def user_vector_batches(net: torch.nn.Module, tokens_fn: TokensFn, indptr: np.ndarray, items: np.ndarray,
                        table: torch.Tensor, device: torch.device, batch_size: int, similarity: str = "dot",
                        extras_fn: tp.Optional[ExtrasFn] = None
                        ) -> tp.Iterator[tp.Tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor]]:
    """The scoring vectors of histories in CSR form (model item ids), batch by batch: ``(rows,
    b_indptr, b_items, vectors (B, d))``, ``rows`` into ``indptr``. Users go by history length, so
    that a batch's sequences have similar lengths and ``last_vectors`` can cut the padding columns
    (callers restore the requested order). ``net`` is on ``device``, in eval mode, under no_grad."""
    by_length = np.argsort(np.diff(indptr), kind="stable")
    for start in range(0, len(indptr) - 1, batch_size):
        rows = by_length[start:start + batch_size]
        b_indptr, b_items = take_rows(indptr, items, rows)
        tokens = torch.from_numpy(tokens_fn(b_indptr, b_items)).to(device)
        extras = [] if extras_fn is None else [torch.from_numpy(e).to(device) for e in extras_fn(rows)]
        yield rows, b_indptr, b_items, similarity_vectors(net.last_vectors(tokens, table, *extras), similarity)


@torch.no_grad()
def rank_users(net: torch.nn.Module, tokens_fn: TokensFn, indptr: np.ndarray, items: np.ndarray, k: int,
               filter_viewed: bool, candidates: tp.Optional[np.ndarray], device: torch.device, batch_size: int,
               similarity: str = "dot", extras_fn: tp.Optional[ExtrasFn] = None,
               score_table: tp.Optional[torch.Tensor] = None,
               seen: tp.Optional[tp.Tuple[np.ndarray, np.ndarray]] = None) -> Triplet:
    """Top-``k`` items of ``net`` (already on ``device``) for histories in CSR form (model item ids).

    ``extras_fn`` gives the further inputs of ``net.last_vectors`` for the rows of a batch (HSTU's
    times); None: tokens only. ``score_table`` ``(n_rows, d)`` holds the vectors the users are
    scored against (default: the model's item table; a longer table appends cold items' vectors
    after the model's items), ``seen`` the CSR ``(indptr, rows of score_table)`` that
    ``filter_viewed`` removes (default: the histories). Returns the row in ``indptr``, the row of
    ``score_table`` (the model item id for the default) and the score of each recommendation.
    """
    n_users = len(indptr) - 1
    cands = Candidates(net.n_items if score_table is None else len(score_table), candidates, device)
    k_eff = min(k, cands.size)
    if k_eff == 0 or n_users == 0:
        return _empty()
    was_training = net.training
    net.eval()
    table = net.item_table()  # (n_items, d)
    cand_table = similarity_vectors(cands.table(table if score_table is None else score_table), similarity)  # (C, d)
    out: tp.List[tp.List[np.ndarray]] = [[], [], []]
    for rows, b_indptr, b_items, user_vecs in user_vector_batches(net, tokens_fn, indptr, items, table, device,
                                                                  batch_size, similarity, extras_fn):
        scores = user_vecs @ cand_table.T  # (B, C)
        if filter_viewed:
            if seen is not None:
                b_indptr, b_items = take_rows(seen[0], seen[1], rows)
            seen_rows, seen_items = np.repeat(np.arange(len(rows)), np.diff(b_indptr)), b_items
        else:
            seen_rows = seen_items = np.zeros(0, np.int64)
        _top_k(scores, k_eff, rows, seen_rows, seen_items, cands, out)
    net.train(was_training)
    return _finish(out)


@torch.no_grad()
def rank_items(table: torch.Tensor, targets: np.ndarray, k: int, filter_itself: bool,
               candidates: tp.Optional[np.ndarray], batch_size: int, similarity: str = "dot") -> Triplet:
    """Top-``k`` most similar items of each target row of ``table`` ``(n_items, d)``.

    Returns the position in ``targets``, the item row and the score of each recommendation.
    """
    cands = Candidates(len(table), candidates, table.device)
    k_eff = min(k, cands.size)
    if k_eff == 0 or len(targets) == 0:
        return _empty()
    vectors = similarity_vectors(table, similarity)
    cand_table = cands.table(vectors)  # (C, d)
    out: tp.List[tp.List[np.ndarray]] = [[], [], []]
    for start in range(0, len(targets), batch_size):
        rows = np.arange(start, min(start + batch_size, len(targets)))
        b_targets = np.asarray(targets[rows], dtype=np.int64)
        scores = vectors[torch.as_tensor(b_targets, device=table.device)] @ cand_table.T  # (B, C)
        if filter_itself:
            excl_rows, excl_cols = np.arange(len(rows)), b_targets
        else:
            excl_rows = excl_cols = np.zeros(0, np.int64)
        _top_k(scores, k_eff, rows, excl_rows, excl_cols, cands, out)
    return _finish(out)
