"""ANN retrieval benchmark: seqrec.ann.ItemIndex (faiss HNSW) against exact search.

A synthetic catalog of clustered vectors (a Gaussian mixture: ``--clusters`` centres drawn from
N(0, 1), items and queries are a centre plus N(0, ``--spread``^2) noise, so neighbourhoods are
dense as in learned item tables, unlike uniform random vectors), ``--n-queries`` query vectors
from the same mixture. Measures the index build time, the query time per 1,000 users at
several ``ef_search`` values, recall@k against the exact top-k (torch matmul + topk in blocks of
queries) and the exact search time.

    python benchmarks/ann.py                       # 1,000,000 items, d 64, 10,000 queries
    python benchmarks/ann.py --n-items 100000      # a quicker run

Prints a markdown table (and writes it as JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import typing as tp

import numpy as np
import torch

from seqrec.ann import ItemIndex


def clustered(n: int, d: int, centers: np.ndarray, spread: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` vectors ``(n, d)``: a random centre each, plus Gaussian noise."""
    out = np.empty((n, d), dtype=np.float32)
    step = 100_000  # in pieces, to keep the float64 temporaries small
    for start in range(0, n, step):
        m = min(step, n - start)
        out[start:start + m] = centers[rng.integers(0, len(centers), m)] + spread * rng.standard_normal((m, d))
    return out


def exact_top_k(items: torch.Tensor, queries: torch.Tensor, k: int, block: int) -> np.ndarray:
    """Rows ``(n_queries, k)`` of the exact top-k inner products, ``block`` queries at a time."""
    out = []
    for start in range(0, len(queries), block):
        scores = queries[start:start + block] @ items.T  # (block, n_items)
        out.append(torch.topk(scores, k, dim=1).indices.numpy())
    return np.concatenate(out)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact top-k that the index found."""
    k = exact.shape[1]
    hits = (found[:, :, None] == exact[:, None, :]).any(axis=2).sum(axis=1)  # (n_queries,)
    return float(hits.mean() / k)


def main(argv: tp.Optional[tp.Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-items", type=int, default=1_000_000)
    p.add_argument("--n-queries", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--clusters", type=int, default=1000)
    p.add_argument("--spread", type=float, default=0.5, help="noise around the cluster centres")
    p.add_argument("--similarity", choices=("dot", "cosine"), default="dot")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--hnsw-m", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=64)
    p.add_argument("--ef-search", type=int, nargs="+", default=[32, 64, 128, 256])
    p.add_argument("--exact-block", type=int, default=256, help="queries per block of the exact search")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    centers = rng.standard_normal((args.clusters, args.dim))
    items = clustered(args.n_items, args.dim, centers, args.spread, rng)  # (n_items, d)
    queries = clustered(args.n_queries, args.dim, centers, args.spread, rng)  # (n_queries, d)

    t0 = time.perf_counter()
    t_items, t_queries = torch.from_numpy(items), torch.from_numpy(queries)
    if args.similarity == "cosine":
        t_items = torch.nn.functional.normalize(t_items, dim=1)
        t_queries = torch.nn.functional.normalize(t_queries, dim=1)
    with torch.no_grad():
        exact = exact_top_k(t_items, t_queries, args.k, args.exact_block)
    exact_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    index = ItemIndex.build(items, similarity=args.similarity, kind="hnsw", hnsw_m=args.hnsw_m,
                            ef_construction=args.ef_construction)
    build_s = time.perf_counter() - t0

    per_k = 1000 / args.n_queries
    rows = []
    for ef in args.ef_search:
        index.ef_search = ef
        t0 = time.perf_counter()
        _, found = index.search(queries, args.k)
        query_s = time.perf_counter() - t0
        rows.append({"ef_search": ef, "query_s_per_1000": query_s * per_k, "recall": recall(found, exact)})

    result = {
        "n_items": args.n_items, "n_queries": args.n_queries, "dim": args.dim, "clusters": args.clusters,
        "spread": args.spread, "similarity": args.similarity, "k": args.k, "hnsw_m": args.hnsw_m,
        "ef_construction": args.ef_construction, "build_s": build_s, "exact_s": exact_s,
        "exact_s_per_1000": exact_s * per_k, "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(), "rows": rows,
    }
    print(f"{args.n_items:,} items, d {args.dim}, {args.clusters} clusters (spread {args.spread}), "
          f"{args.n_queries:,} queries, {args.similarity}, k {args.k}; HNSW M {args.hnsw_m}, "
          f"ef_construction {args.ef_construction}: build {build_s:.1f} s")
    print()
    print(f"| search | ef_search | s per 1,000 users | recall@{args.k} |")
    print("|---|---|---|---|")
    print(f"| exact (torch matmul + topk, blocks of {args.exact_block}) | - | {exact_s * per_k:.3f} | 1.000 |")
    for r in rows:
        print(f"| HNSW | {r['ef_search']} | {r['query_s_per_1000']:.3f} | {r['recall']:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
