"""Command line: ``seqrec demo``."""

from __future__ import annotations

import argparse
import sys
import typing as tp


def main(argv: tp.Optional[tp.Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="seqrec", description="Sequential recommendation with transformers")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train SASRec on the embedded MovieLens latest-small and compare with popularity")
    demo.add_argument("--epochs", type=int, default=None, help="training epochs (default: the demo's setting)")
    demo.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        results = run_demo(epochs=args.epochs, seed=args.seed)
        ours, pop = results["SASRec (ids + genres)"], results["Popularity"]
        verdict = "beats" if ours["NDCG@10"] > pop["NDCG@10"] and ours["HR@10"] > pop["HR@10"] else "does NOT beat"
        print(f"SASRec {verdict} popularity on HR@10 and NDCG@10")
    return 0


if __name__ == "__main__":
    sys.exit(main())
