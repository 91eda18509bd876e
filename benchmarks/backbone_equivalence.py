"""Checks that seqrec's ``TransformerNet`` computes RecTools 0.19's backbone: weights copied from
RecTools' ``TransformerTorchBackbone`` into seqrec's network, the same histories (RecTools left-
padded, seqrec right-padded), eval mode; prints the largest difference of the sequence vectors at
the real positions for SASRec (``SASRecTransformerLayers``, causal, no key mask: RecTools' padding
keys) with one and four heads and for BERT4Rec (``PreLNTransformerLayers``, bidirectional, key mask,
a mask token inside a history).

Runs in an environment with both packages (see ``loop_bisect.py``)::

    PYTHONPATH=. .venv-mix/bin/python benchmarks/backbone_equivalence.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from seqrec import PreLNTransformerLayers, SASRecTransformerLayers  # noqa: E402
from seqrec.nn.item_net import IdEmbeddingsItemNet, SumItemNet  # noqa: E402
from seqrec.nn.transformer import MASK, N_SPECIAL, TransformerNet  # noqa: E402

from loop_bisect import RecToolsNet, copy_rectools_weights  # noqa: E402  (RecTools' SASRec / BERT4Rec backbone)

N_ITEMS, D, N_BLOCKS, L = 20, 16, 2, 8


def max_difference(model: str, n_heads: int) -> float:
    bert = model == "bert4rec"
    torch.manual_seed(0)
    rt_net = RecToolsNet(N_ITEMS, D, N_BLOCKS, n_heads, 0.0, L, bert=bert)
    rt, n_extra = rt_net.backbone, rt_net.n_special  # RecTools' ids: PAD (and MASK), then the catalog
    for p in rt.parameters():  # non-zero biases too, so that a misplaced bias shows
        torch.nn.init.xavier_normal_(p) if p.dim() > 1 else torch.nn.init.normal_(p, 0.0, 0.1)
    sq = TransformerNet(SumItemNet([IdEmbeddingsItemNet(N_ITEMS, D)]), D, N_BLOCKS, n_heads, 0.0, L,
                        use_causal_attn=not bert, use_key_padding_mask=bert, ff_multiplier=4 if bert else 1,
                        activation="gelu" if bert else "relu",
                        layers_type=PreLNTransformerLayers if bert else SASRecTransformerLayers)
    copy_rectools_weights(rt_net, sq)
    rt.eval()
    sq.eval()
    g = torch.Generator().manual_seed(1)
    histories = [torch.randint(0, N_ITEMS, (n,), generator=g) for n in (8, 5, 3, 1, 6)]
    if bert:
        histories[1][2] = -1  # a mask token inside a history
    left = torch.zeros(len(histories), L, dtype=torch.long)  # RecTools' ids
    right = torch.zeros(len(histories), L, dtype=torch.long)  # seqrec's tokens
    for i, q in enumerate(histories):
        left[i, L - len(q):] = torch.where(q >= 0, q + n_extra, 1)
        right[i, :len(q)] = torch.where(q >= 0, q + N_SPECIAL, MASK)
    with torch.no_grad():
        a = rt.encode_sessions({"x": left}, rt.item_model.get_all_embeddings())  # (B, L, d)
        b = sq.encode(right, sq.item_table())  # (B, L, d)
    return max(float((a[i, L - len(q):] - b[i, :len(q)]).abs().max()) for i, q in enumerate(histories))


def main() -> None:
    for model, n_heads in (("sasrec", 1), ("sasrec", 4), ("bert4rec", 2)):
        print(f"{model}, {n_heads} head(s): largest difference {max_difference(model, n_heads):.2e}")


if __name__ == "__main__":
    main()
