"""Approximate nearest-neighbour retrieval over the item table, with faiss (extra ``seqrec[ann]``).

:class:`ItemIndex` is an inner-product index of item vectors: HNSW (``kind="hnsw"``, the default)
or exact (``kind="flat"``). With ``similarity="cosine"`` vectors and queries are normalised, so
the inner product is the cosine, as in the model's own scoring. An index saves to one ``.npz``
file (the serialised faiss index and a JSON header) and loads back without pickle.

``model.recommend(..., retrieval="ann")`` ranks with the index of the model's current item table:
built on first use with the default parameters (or attached with :func:`attach_index`), cached
on the model, and rebuilt when the item table changes (``fit``, ``fit_partial``, new weights).
Filtering works by over-fetching: a user asks the index for
``ceil((k + n_viewed) * n_items / n_candidates)`` neighbours (``n_viewed``: their history items
among the candidates, when ``filter_viewed``; ``n_candidates``: the size of
``items_to_recommend``, else the catalog), viewed and non-candidate items are dropped, and the
first ``k`` remain. A user whose over-fetch would exceed ``min(n_items // 4, 4096)`` neighbours,
or who keeps fewer than ``min(k, n_available)`` items after filtering, is ranked exactly, so
every user gets as many rows as the exact ranking gives.
"""

from __future__ import annotations

import hashlib
import json
import os
import typing as tp

import numpy as np
import torch

from .batching import take_rows
from .export import require
from .ranking import (SIMILARITIES, TokensFn, Triplet, _empty, rank_users, similarity_vectors,
                      user_vector_batches)

if tp.TYPE_CHECKING:
    from .models.base import TransformerModelBase

RETRIEVALS = ("exact", "ann")
KINDS = ("hnsw", "flat")
FORMAT = "seqrec-item-index"
FORMAT_VERSION = 1
MAX_FETCH = 4096  # neighbours asked of the index per user at most; beyond, exact ranking is cheaper
CACHE_ATTR = "_ann_index"  # where a fitted model keeps its index


def _faiss() -> tp.Any:
    return require("faiss", "ann")


def fingerprint(vectors: tp.Union[np.ndarray, torch.Tensor]) -> str:
    """A digest of an item table ``(n_items, d)`` (float32 bytes and shape): equal tables, equal digests."""
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().float().cpu().numpy()
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    h = hashlib.blake2b(digest_size=16)
    h.update(str(arr.shape).encode())
    h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def _positive_int(value: tp.Any, name: str) -> int:
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class ItemIndex:
    """An inner-product (or cosine) index over item vectors; rows are the vectors' row numbers.

    Build with :meth:`build`, query with :meth:`search`, write with :meth:`save` and read with
    :meth:`load`. ``ef_search`` (HNSW only) trades speed for recall at query time.
    """

    def __init__(self, index: tp.Any, similarity: str, kind: str, params: tp.Dict[str, int], digest: str) -> None:
        self.index = index
        self.similarity = similarity
        self.kind = kind
        self.params = dict(params)
        self.fingerprint = digest

    @classmethod
    def build(cls, vectors: tp.Union[np.ndarray, torch.Tensor], similarity: str = "dot", kind: str = "hnsw",
              hnsw_m: int = 32, ef_construction: int = 64, ef_search: int = 128) -> "ItemIndex":
        """Index the rows of ``vectors`` ``(n_items, d)``.

        ``similarity``: "dot" (inner product) or "cosine" (rows and queries normalised).
        ``kind``: "hnsw" (graph with ``hnsw_m`` links per node, ``ef_construction`` candidates
        while building, ``ef_search`` while searching) or "flat" (exact, for comparison).
        """
        faiss = _faiss()
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        params = {"hnsw_m": _positive_int(hnsw_m, "hnsw_m"),
                  "ef_construction": _positive_int(ef_construction, "ef_construction"),
                  "ef_search": _positive_int(ef_search, "ef_search")}
        if isinstance(vectors, torch.Tensor):
            vectors = vectors.detach().float().cpu().numpy()
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or len(vectors) == 0 or vectors.shape[1] == 0:
            raise ValueError(f"vectors must be a non-empty 2-d array (n_items, d), got shape {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise ValueError("vectors must be finite (NaN or inf found)")
        digest = fingerprint(vectors)
        data = _as_search_vectors(vectors, similarity)  # (n_items, d)
        d = data.shape[1]
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, params["hnsw_m"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = params["ef_construction"]
            index.hnsw.efSearch = params["ef_search"]
        else:
            index = faiss.IndexFlatIP(d)
        index.add(data)
        return cls(index, similarity, kind, params, digest)

    @property
    def n_items(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def ef_search(self) -> int:
        return self.params["ef_search"]

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self.params["ef_search"] = _positive_int(value, "ef_search")
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = self.params["ef_search"]

    def search(self, queries: tp.Union[np.ndarray, torch.Tensor], k: int) -> tp.Tuple[np.ndarray, np.ndarray]:
        """The ``k`` best rows for each query ``(B, d)``: scores ``(B, k)`` float32 (decreasing) and
        rows ``(B, k)`` int64; -1 (score -inf) where the index found fewer."""
        k = _positive_int(k, "k")
        if isinstance(queries, torch.Tensor):
            queries = queries.detach().float().cpu().numpy()
        queries = np.asarray(queries)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (B, {self.dim}), got {queries.shape}")
        scores, rows = self.index.search(_as_search_vectors(queries, self.similarity), min(k, self.n_items))
        scores = np.where(rows >= 0, scores, -np.inf).astype(np.float32)
        if k > self.n_items:  # the caller asked for more rows than there are items
            pad = k - self.n_items
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
        return scores, rows.astype(np.int64, copy=False)

    def save(self, path: tp.Union[str, "os.PathLike[str]"]) -> None:
        """Write the index to ``path`` (an ``.npz``: the faiss index bytes and a JSON header)."""
        faiss = _faiss()
        header = {"format": FORMAT, "version": FORMAT_VERSION, "similarity": self.similarity, "kind": self.kind,
                  "params": self.params, "fingerprint": self.fingerprint}
        with open(os.fspath(path), "wb") as f:
            np.savez(f, index=faiss.serialize_index(self.index), header=np.asarray(json.dumps(header)))

    @classmethod
    def load(cls, path: tp.Union[str, "os.PathLike[str]"]) -> "ItemIndex":
        """Read an index written by :meth:`save`; ValueError for other files."""
        faiss = _faiss()
        try:
            with np.load(os.fspath(path), allow_pickle=False) as f:
                header = json.loads(str(f["header"]))
                data = f["index"]
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
            raise ValueError(f"{os.fspath(path)!r} is not a seqrec item index file ({e})") from e
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"{os.fspath(path)!r} is not a seqrec item index file")
        if header.get("version", 0) > FORMAT_VERSION:
            raise ValueError(f"{os.fspath(path)!r} has index format version {header['version']}, newer than this "
                             f"seqrec reads ({FORMAT_VERSION})")
        index = faiss.deserialize_index(data)
        out = cls(index, header["similarity"], header["kind"], header["params"], header["fingerprint"])
        if out.kind == "hnsw":
            index.hnsw.efSearch = out.ef_search
        return out

    def __repr__(self) -> str:
        return (f"ItemIndex(kind={self.kind!r}, similarity={self.similarity!r}, n_items={self.n_items}, "
                f"dim={self.dim}, params={self.params})")


def _as_search_vectors(x: np.ndarray, similarity: str) -> np.ndarray:
    """float32 C-contiguous rows, normalised for cosine (as :func:`seqrec.ranking.similarity_vectors`)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if similarity == "cosine":
        x = similarity_vectors(torch.from_numpy(x), "cosine").numpy()
    return np.ascontiguousarray(x)


# ----------------------------------------------------------------- the model's index
def _item_table(model: "TransformerModelBase") -> torch.Tensor:
    net = model.net_
    was_training = net.training
    net.eval()
    with torch.no_grad():
        table = net.item_table()  # (n_items, d)
    net.train(was_training)
    return table


def model_index(model: "TransformerModelBase", kind: str = "hnsw", hnsw_m: int = 32, ef_construction: int = 64,
                ef_search: int = 128) -> ItemIndex:
    """Build the index of the fitted ``model``'s item table with these parameters and cache it on
    the model: ``recommend(..., retrieval="ann")`` then uses it until the item table changes."""
    model._check_fitted()
    index = ItemIndex.build(_item_table(model), model._similarity(), kind, hnsw_m, ef_construction, ef_search)
    model.__dict__[CACHE_ATTR] = index
    return index


def attach_index(model: "TransformerModelBase", index: ItemIndex) -> None:
    """Use ``index`` (e.g. :meth:`ItemIndex.load`) for ``model``'s ANN retrieval; ValueError unless it
    was built from the model's current item table with its similarity."""
    model._check_fitted()
    if not isinstance(index, ItemIndex):
        raise TypeError(f"index must be an ItemIndex, got {type(index).__name__}")
    if index.fingerprint != fingerprint(_item_table(model)):
        raise ValueError("index was not built from this model's current item table (refit or other weights)")
    if index.similarity != model._similarity():
        raise ValueError(f"index similarity {index.similarity!r} differs from the model's {model._similarity()!r}")
    model.__dict__[CACHE_ATTR] = index


def cached_index(model: "TransformerModelBase", table: torch.Tensor) -> ItemIndex:
    """The model's index of ``table`` (its current item table): the cached one while it matches,
    else a new one (with the cached one's parameters, or the defaults), cached in its place."""
    cached = model.__dict__.get(CACHE_ATTR)
    digest = fingerprint(table)
    if isinstance(cached, ItemIndex) and cached.fingerprint == digest and cached.similarity == model._similarity():
        return cached
    params = cached.params if isinstance(cached, ItemIndex) else {}
    kind = cached.kind if isinstance(cached, ItemIndex) else "hnsw"
    index = ItemIndex.build(table, model._similarity(), kind, **params)
    model.__dict__[CACHE_ATTR] = index
    return index


@torch.no_grad()
def user_vectors(net: torch.nn.Module, tokens_fn: TokensFn, indptr: np.ndarray, items: np.ndarray,
                 table: torch.Tensor, device: torch.device, batch_size: int, similarity: str) -> np.ndarray:
    """Scoring vectors ``(n_users, d)`` (float32, on the host) of histories in CSR form, computed in
    the batches of ``rank_users``."""
    out = np.zeros((len(indptr) - 1, table.shape[1]), dtype=np.float32)
    for rows, _, _, vectors in user_vector_batches(net, tokens_fn, indptr, items, table, device, batch_size,
                                                   similarity):
        out[rows] = vectors.float().cpu().numpy()
    return out


@torch.no_grad()
def rank_users_ann(model: "TransformerModelBase", net: torch.nn.Module, indptr: np.ndarray, items: np.ndarray,
                   k: int, filter_viewed: bool, candidates: tp.Optional[np.ndarray], device: torch.device,
                   batch_size: int) -> Triplet:
    """``rank_users`` through the model's ANN index (module docstring: over-fetch, filter, exact
    ranking for the users left short). ``net`` is the model's network, already on ``device``."""
    similarity = model._similarity()
    n_users, n_items = len(indptr) - 1, net.n_items
    n_cands = n_items if candidates is None else len(candidates)
    if n_users == 0 or min(k, n_cands) == 0:
        return _empty()
    was_training = net.training
    net.eval()
    table = net.item_table()  # (n_items, d)
    index = cached_index(model, table)
    is_cand = None
    if candidates is not None:
        is_cand = np.zeros(n_items, dtype=bool)
        is_cand[candidates] = True
    # each user's distinct viewed candidates: (user row, item) as one key
    user_of = np.repeat(np.arange(n_users), np.diff(indptr))
    if filter_viewed:
        keep = is_cand[items] if is_cand is not None else np.ones(len(items), dtype=bool)
        viewed_keys = np.unique(user_of[keep] * n_items + items[keep])
        n_viewed = np.bincount(viewed_keys // n_items, minlength=n_users)  # (n_users,)
    else:
        viewed_keys = np.zeros(0, np.int64)
        n_viewed = np.zeros(n_users, np.int64)
    needed = np.minimum(k, n_cands - n_viewed)  # rows the exact ranking gives each user
    fetch = np.ceil((k + n_viewed) * (n_items / n_cands)).astype(np.int64)
    limit = max(k, min(n_items // 4, MAX_FETCH))
    ann_users = np.flatnonzero(fetch <= limit)
    vectors = user_vectors(net, model._inference_tokens, *take_rows(indptr, items, ann_users), table, device,
                           batch_size, similarity)  # (n_ann, d)
    out_rows, out_items, out_scores = [], [], []
    short = [np.flatnonzero(fetch > limit)]
    order = ann_users[np.argsort(fetch[ann_users], kind="stable")]  # similar fetch sizes per batch
    position = np.empty(n_users, dtype=np.int64)
    position[ann_users] = np.arange(len(ann_users))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        scores, found = index.search(vectors[position[rows]], int(fetch[rows].max()))  # (B, F)
        ok = found >= 0
        safe = np.where(ok, found, 0)
        if is_cand is not None:
            ok &= is_cand[safe]
        if len(viewed_keys):
            ok &= ~np.isin(rows[:, None] * n_items + safe, viewed_keys)
        ok &= np.cumsum(ok, axis=1) <= k
        got = ok.sum(axis=1)
        enough = got >= needed[rows]
        ok &= enough[:, None]
        short.append(rows[~enough])
        r, c = np.nonzero(ok)  # row-major: each user's items in decreasing score
        out_rows.append(rows[r])
        out_items.append(found[r, c])
        out_scores.append(scores[r, c])
    exact_users = np.sort(np.concatenate(short))
    if len(exact_users):
        e_indptr, e_items = take_rows(indptr, items, exact_users)
        e_rows, e_item, e_scores = rank_users(net, model._inference_tokens, e_indptr, e_items, k, filter_viewed,
                                              candidates, device, batch_size, similarity)
        out_rows.append(exact_users[e_rows])
        out_items.append(e_item)
        out_scores.append(e_scores)
    net.train(was_training)
    rows_all = np.concatenate(out_rows) if out_rows else np.zeros(0, np.int64)
    order_all = np.argsort(rows_all, kind="stable")
    return (rows_all[order_all], np.concatenate(out_items)[order_all].astype(np.int64),
            np.concatenate(out_scores)[order_all].astype(np.float32))


def check_retrieval(retrieval: tp.Any) -> None:
    """ValueError unless ``retrieval`` is "exact" or "ann"; ImportError for "ann" without faiss."""
    if retrieval not in RETRIEVALS:
        raise ValueError(f"retrieval must be one of {RETRIEVALS}, got {retrieval!r}")
    if retrieval == "ann":
        _faiss()


__all__ = ["ItemIndex", "RETRIEVALS", "attach_index", "check_retrieval", "fingerprint", "model_index",
           "rank_users_ann", "user_vectors"]
