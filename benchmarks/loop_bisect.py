"""Bisection of a parity gap between seqrec and RecTools 0.19: one plain PyTorch training loop in
which the network and the loss can each come from either library.

Runs in an environment that has both packages (RecTools' pins: numpy < 2, pandas < 3), e.g. a
venv with ``rectools[torch]==0.19.0 lightning safetensors typer pyyaml`` and this checkout on
``PYTHONPATH``. The data are the leave-one-out split of ``parity.py``; the training samples are
each user's last ``L + 1`` training items (users with at least two), the catalog the items they
hold, as in both libraries; batches are shuffled per epoch, Adam (lr 1e-3, betas 0.9/0.98).

- ``--net rectools``: RecTools' own modules (``IdEmbeddingsItemNet`` in ``SumOfEmbeddingsConstructor``,
  ``LearnableInversePositionalEncoding``, ``SASRecTransformerLayers``, ``TransformerTorchBackbone``)
  on left-padded sequences, Xavier-normal on every matrix as RecTools' ``on_train_start``;
  ``--net seqrec``: seqrec's ``TransformerNet`` with ``SASRecTransformerLayers`` on right-padded tokens
  and a key padding mask (its layout before padding keys); ``--net seqrec-padkeys``: the same without
  the key mask, i.e. RecTools' padding keys (SASRec's default now).
- ``--loss rectools``: negatives drawn ``(B, L, K)`` over every position as RecTools' sampler does,
  RecTools' gBCE transform and BCE reduction (its own functions); ``--loss seqrec``:
  ``seqrec.nn.losses.bce_loss`` on the positions with a target (its own ``K`` negatives per target row);
  ``--loss seqrec-allpos``: ``bce_loss`` on negatives drawn as RecTools draws them (the same random
  numbers as ``--loss rectools``).
- ``--model bert4rec``: BERT4Rec's networks (RecTools' backbone with ``PreLNTransformerLayers``, or
  seqrec's ``BERT4RecModel`` network), the last ``L`` training items of each user masked in every
  batch by RecTools' rule (``--masking rectools``, numpy, as its ``_mask_session``) or by seqrec's
  ``BERT4RecModel._training_batch`` (``--masking seqrec``), scored at a mask token after the last
  ``L - 1`` history items.

Sizes, learning rate, batch and epochs come from a ``parity.py`` setting (``--setting``, default
``rectools-small``), the negatives from a loss setting (``--loss-setting gbce256`` or ``bce256``).

Validation and test NDCG@10 (papers' convention, history filtered, full catalog) on all users
after every epoch (validation) and at the end (test). Example::

    PYTHONPATH=. .venv-mix/bin/python benchmarks/loop_bisect.py --net rectools --loss rectools --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
import typing as tp
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from seqrec import Columns  # noqa: E402
from seqrec.batching import windows as batch_windows  # noqa: E402


def windows(indptr: np.ndarray, items: np.ndarray, L: int) -> list:
    out = []
    for u in range(len(indptr) - 1):
        seq = items[indptr[u]:indptr[u + 1]]
        if len(seq) >= 2:
            out.append(seq[-(L + 1):])
    return out


def right_pad(seqs: list, L: int) -> np.ndarray:
    """The last ``L`` items of each sequence, right-padded with 0: ``(len(seqs), L)``."""
    lengths = np.array([len(q) for q in seqs], dtype=np.int64)
    ends = np.cumsum(lengths)
    flat = np.concatenate(seqs).astype(np.int64) if len(seqs) else np.zeros(0, np.int64)
    return batch_windows(flat, ends - lengths, ends, L, 0, 0)


def left_pad(seqs: list, L: int) -> np.ndarray:
    """The same windows left-padded (RecTools' layout)."""
    right = right_pad(seqs, L)
    shift = L - np.minimum([len(q) for q in seqs], L)  # (B,)
    src = np.arange(L)[None, :] - shift[:, None]  # right column read by each left column
    return np.where(src >= 0, np.take_along_axis(right, src.clip(min=0), axis=1), 0)


class RecToolsNet(torch.nn.Module):
    """RecTools 0.19's backbone. SASRec (``SASRecTransformerLayers``, causal, no key mask unless
    ``key_padding_mask``): ids 0 = PAD, catalog item c = c + 1. With ``bert``, BERT4Rec's
    (``PreLNTransformerLayers``, bidirectional, key padding mask): 0 = PAD, 1 = MASK, item c = c + 2."""

    def __init__(self, n_items: int, d: int, n_blocks: int, n_heads: int, dropout: float, L: int,
                 key_padding_mask: bool = False, bert: bool = False) -> None:
        super().__init__()
        from rectools.models.nn.item_net import IdEmbeddingsItemNet, SumOfEmbeddingsConstructor
        from rectools.models.nn.transformers.net_blocks import (LearnableInversePositionalEncoding,
                                                                PreLNTransformerLayers)
        from rectools.models.nn.transformers.sasrec import SASRecTransformerLayers
        from rectools.models.nn.transformers.similarity import DistanceSimilarityModule
        from rectools.models.nn.transformers.torch_backbone import TransformerTorchBackbone
        self.n_special = 2 if bert else 1
        n_ids = n_items + self.n_special
        # built in this order (item net, positions, layers): the layers' PyTorch-initialised biases
        # come from the random stream after the others'
        item_model = SumOfEmbeddingsConstructor(n_ids, [IdEmbeddingsItemNet(d, n_ids, dropout)])
        positions = LearnableInversePositionalEncoding(True, L, d)
        layers = (PreLNTransformerLayers(n_blocks, d, n_heads, dropout, ff_factors_multiplier=4) if bert
                  else SASRecTransformerLayers(n_blocks, d, n_heads, dropout))
        self.backbone = TransformerTorchBackbone(
            n_heads=n_heads, dropout_rate=dropout, item_model=item_model, pos_encoding_layer=positions,
            transformer_layers=layers, similarity_module=DistanceSimilarityModule("dot"), use_causal_attn=not bert,
            use_key_padding_mask=bert or key_padding_mask)
        for p in self.backbone.parameters():  # RecTools' on_train_start
            if p.dim() > 1:
                torch.nn.init.xavier_normal_(p)
        self.left = True

    def forward(self, x: torch.Tensor) -> tuple:
        """x (B, L) left-padded RecTools ids -> (h (B, L, d), catalog table (n_items, d))."""
        embs = self.backbone.item_model.get_all_embeddings()  # (n_items + n_special, d)
        return self.backbone.encode_sessions({"x": x}, embs), embs[self.n_special:]


class RecToolsLayers(torch.nn.Module):
    """RecTools' ``SASRecTransformerLayers`` behind seqrec's layer interface: the right-padded input
    (zero at padding) is moved to left padding, run with RecTools' causal mask and no key mask, and
    moved back."""

    def __init__(self, n_blocks: int, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        from rectools.models.nn.transformers.sasrec import SASRecTransformerLayers
        self.layers = SASRecTransformerLayers(n_blocks, d, n_heads, dropout)
        for p in self.layers.parameters():  # RecTools' init
            if p.dim() > 1:
                torch.nn.init.xavier_normal_(p)

    def forward(self, x: torch.Tensor, attn_mask: tp.Any, is_causal: bool) -> torch.Tensor:
        B, L, _ = x.shape
        lengths = (x.abs().sum(-1) != 0).sum(1)  # (B,)
        shift = (L - lengths).unsqueeze(1)  # (B, 1)
        j = torch.arange(L).unsqueeze(0)  # (1, L)
        src = (j - shift).clamp(min=0)  # left position j reads right position j - shift
        left = x.gather(1, src.unsqueeze(-1).expand_as(x)) * (j >= shift).unsqueeze(-1)
        mask = ~torch.tril(torch.ones(L, L, dtype=torch.bool))
        out = self.layers(left, (j >= shift).unsqueeze(-1), mask, None)
        back = (j + shift).clamp(max=L - 1)  # right position j reads left position j + shift
        return out.gather(1, back.unsqueeze(-1).expand_as(out))


class SeqrecNet(torch.nn.Module):
    def __init__(self, n_items: int, d: int, n_blocks: int, n_heads: int, dropout: float, L: int,
                 rectools_layers: bool = False, padding_keys: bool = False) -> None:
        super().__init__()
        from seqrec import SASRecTransformerLayers
        from seqrec.nn.item_net import IdEmbeddingsItemNet, SumItemNet
        from seqrec.nn.transformer import TransformerNet
        self.net = TransformerNet(SumItemNet([IdEmbeddingsItemNet(n_items, d)]), d, n_blocks, n_heads, dropout, L,
                                  use_key_padding_mask=not padding_keys, layers_type=SASRecTransformerLayers)
        if rectools_layers:
            self.net.layers = RecToolsLayers(n_blocks, d, n_heads, dropout)
        self.left = False

    def forward(self, x: torch.Tensor) -> tuple:
        """x (B, L) right-padded RecTools ids (0 = PAD) -> seqrec tokens (item c -> c + 2)."""
        tokens = torch.where(x > 0, x + 1, 0)
        table = self.net.item_table()
        return self.net.encode(tokens, table), table


class SeqrecBertNet(torch.nn.Module):
    """seqrec's BERT4Rec network (``BERT4RecModel``'s: pre-LN stack, GELU, feed-forward 4 d, key mask);
    its tokens are RecTools' BERT4Rec ids (PAD 0, MASK 1, item c = c + 2), right-padded."""

    def __init__(self, n_items: int, d: int, n_blocks: int, n_heads: int, dropout: float, L: int) -> None:
        super().__init__()
        from seqrec import PreLNTransformerLayers
        from seqrec.nn.item_net import IdEmbeddingsItemNet, SumItemNet
        from seqrec.nn.transformer import MASK, N_SPECIAL, TransformerNet
        assert (MASK, N_SPECIAL) == (1, 2)
        self.net = TransformerNet(SumItemNet([IdEmbeddingsItemNet(n_items, d)]), d, n_blocks, n_heads, dropout, L,
                                  use_causal_attn=False, use_key_padding_mask=True, ff_multiplier=4,
                                  activation="gelu", layers_type=PreLNTransformerLayers)
        self.left = False

    def forward(self, x: torch.Tensor) -> tuple:
        table = self.net.item_table()
        return self.net.encode(x, table), table


def copy_rectools_weights(rt_net: "RecToolsNet", sq: tp.Any) -> None:
    """Copy RecTools' backbone weights into seqrec's ``TransformerNet`` ``sq`` of the same sizes (SASRec's
    ``SASRecTransformerLayers`` or BERT4Rec's ``PreLNTransformerLayers``; the MASK row too for BERT4Rec)."""
    from seqrec.nn.transformer import MASK
    rt, bert = rt_net.backbone, rt_net.n_special == 2
    with torch.no_grad():
        table = rt.item_model.item_net_blocks[0].ids_emb.weight
        sq.item_net.blocks[0].embedding.weight.copy_(table[rt_net.n_special:])
        if bert:
            sq.special[MASK].copy_(table[1])
        sq.pos_emb.weight.copy_(rt.pos_encoding_layer.pos_emb.weight)
        for r, s in zip(rt.transformer_layers.transformer_blocks, sq.layers.blocks):
            s.ln_attn.load_state_dict((r.layer_norm_1 if bert else r.q_layer_norm).state_dict())
            s.ln_ff.load_state_dict((r.layer_norm_2 if bert else r.ff_layer_norm).state_dict())
            s.attn.qkv.weight.copy_(r.multi_head_attn.in_proj_weight)
            s.attn.qkv.bias.copy_(r.multi_head_attn.in_proj_bias)
            s.attn.out.load_state_dict(r.multi_head_attn.out_proj.state_dict())
            s.ff[0].load_state_dict(r.feed_forward.ff_linear_1.state_dict())
            s.ff[3].load_state_dict(r.feed_forward.ff_linear_2.state_dict())
        if not bert:
            sq.layers.ln_out.load_state_dict(rt.transformer_layers.last_layernorm.state_dict())


def bert_net_with_init(init: str, n_items: int, d: int, n_blocks: int, n_heads: int, dropout: float,
                       L: int) -> "SeqrecBertNet":
    """seqrec's BERT4Rec network with (part of) RecTools' initialisation: ``all`` copies the weights of a
    RecTools backbone built here (so its random draws), ``ffbias`` re-draws the feed-forward biases as
    PyTorch's ``Linear`` does (RecTools keeps them; seqrec zeroes them), ``mask`` re-draws the MASK vector at
    the item rows' Xavier scale (RecTools: a row of its item table; seqrec: a ``(2, d)`` Xavier matrix)."""
    if init == "all":
        rt_net = RecToolsNet(n_items, d, n_blocks, n_heads, dropout, L, bert=True)
        net = SeqrecBertNet(n_items, d, n_blocks, n_heads, dropout, L)
        copy_rectools_weights(rt_net, net.net)
        return net
    net = SeqrecBertNet(n_items, d, n_blocks, n_heads, dropout, L)
    with torch.no_grad():
        if init == "ffbias":
            for block in net.net.layers.blocks:
                for lin in (block.ff[0], block.ff[3]):
                    bound = 1.0 / lin.in_features ** 0.5
                    lin.bias.uniform_(-bound, bound)
        elif init == "mask":
            from seqrec.nn.transformer import MASK
            net.net.special[MASK].normal_(0.0, (2.0 / (n_items + 2 + d)) ** 0.5)
        else:
            raise ValueError(init)
    return net


# --net names -> builders ``(n_items, d, n_blocks, n_heads, dropout, L) -> network``, per model
SASREC_NETS: tp.Dict[str, tp.Callable[..., torch.nn.Module]] = {
    "rectools": RecToolsNet, "seqrec": SeqrecNet,
    "rectools-keymask": lambda *a: RecToolsNet(*a, key_padding_mask=True),
    "seqrec-rtlayers": lambda *a: SeqrecNet(*a, rectools_layers=True),
    "seqrec-padkeys": lambda *a: SeqrecNet(*a, padding_keys=True)}
BERT_NETS: tp.Dict[str, tp.Callable[..., torch.nn.Module]] = {
    "rectools": lambda *a: RecToolsNet(*a, bert=True), "seqrec": SeqrecBertNet,
    "seqrec-rtinit": lambda *a: bert_net_with_init("all", *a),
    "seqrec-rtffbias": lambda *a: bert_net_with_init("ffbias", *a),
    "seqrec-rtmask": lambda *a: bert_net_with_init("mask", *a)}


def mask_rectools(x: np.ndarray, n_items: int, p: float = 0.15) -> tp.Tuple[np.ndarray, np.ndarray]:
    """RecTools' BERT4Rec masking (``_mask_session``) of BERT4Rec ids ``x`` ``(B, L)``: each real position
    is a target with probability ``p``; of those 80% become MASK, 10% a random catalog item, 10% stay.
    Returns the input and the targets (0: none)."""
    r = np.random.rand(*x.shape)
    masked = (x > 0) & (r < p)
    r = r / p
    random_items = np.random.randint(2, n_items + 2, size=x.shape)
    tokens = np.where(masked & (r < 0.8), 1, x)
    tokens = np.where(masked & (r >= 0.8) & (r < 0.9), random_items, tokens)
    return tokens, np.where(masked, x, 0)


def rectools_negatives(h: torch.Tensor, n_items: int, K: int) -> torch.Tensor:
    """Negatives as RecTools' sampler draws them: ``(B, L, K)`` ids in ``[1, n_items]`` for every
    position of ``h`` ``(B, L, d)``, padding included (the same random numbers for both losses that use it)."""
    B, L, _ = h.shape
    return torch.randint(1, n_items + 1, (B, L, K))


def loss_rectools(h: torch.Tensor, table: torch.Tensor, y: torch.Tensor, K: int, t: float) -> torch.Tensor:
    """RecTools' gBCE: negatives (B, L, K) over [1, n_items], its transform and reduction."""
    from rectools.models.nn.transformers.lightning import TransformerLightningModuleBase as M
    from seqrec.nn.losses import sampled_logits
    n_items = table.shape[0]
    neg = rectools_negatives(h, n_items, K)
    valid = y > 0
    cand = torch.cat([y.unsqueeze(-1), neg], dim=-1)[valid] - 1  # (N, 1 + K) catalog ids
    logits = sampled_logits(h[valid], table, cand[:, 0], cand[:, 1:])  # (N, 1 + K)
    logits = logits.unsqueeze(0).float()
    if t:  # gBCE; plain BCE (t = 0) takes the logits as they are, as RecTools does
        fake = types.SimpleNamespace(data_preparator=types.SimpleNamespace(n_negatives=K), gbce_t=t)
        logits = M._get_reduced_overconfidence_logits(fake, logits, n_items).float()
    ones = torch.ones(1, logits.shape[1])
    return M._calc_bce_loss(logits, ones, ones)


def loss_seqrec(h: torch.Tensor, table: torch.Tensor, y: torch.Tensor, K: int, t: float) -> torch.Tensor:
    from seqrec.nn.losses import bce_loss
    valid = y > 0
    return bce_loss(h[valid], table, y[valid] - 1, K, t)


def loss_seqrec_allpos(h: torch.Tensor, table: torch.Tensor, y: torch.Tensor, K: int, t: float) -> torch.Tensor:
    """seqrec's loss on negatives drawn as RecTools draws them: ``(B, L, K)`` over every position."""
    from seqrec.nn.losses import bce_loss
    neg = rectools_negatives(h, table.shape[0], K)
    valid = y > 0
    return bce_loss(h[valid], table, y[valid] - 1, K, t, negatives=neg[valid] - 1)


@torch.no_grad()
def ndcg(net: torch.nn.Module, hist: list, targets: np.ndarray, L: int, n_total: int, bs: int = 1024,
         bert: bool = False) -> float:
    """Mean NDCG@10 over ``n_total`` users (those without a known target count 0)."""
    net.eval()
    total = 0.0
    pad = left_pad if net.left else right_pad
    for s in range(0, len(hist), bs):
        chunk, tgt = hist[s:s + bs], torch.as_tensor(targets[s:s + bs])
        if bert:  # the last L - 1 items, then the mask token whose vector scores the next item
            x = torch.as_tensor(pad([np.append(c[-(L - 1):] + 2, 1) for c in chunk], L))
        else:
            x = torch.as_tensor(pad([c + 1 for c in chunk], L))
        h, table = net(x)
        last = torch.full((len(chunk),), L - 1) if net.left else ((x > 0).sum(1) - 1).clamp(min=0)
        scores = h[torch.arange(len(chunk)), last] @ table.T  # (B, n_items)
        for i, c in enumerate(chunk):
            scores[i, torch.as_tensor(c, dtype=torch.long)] = -np.inf
        ts = scores.gather(1, tgt.view(-1, 1).clamp(min=0))
        rank = (scores > ts).sum(1) + 1
        hit = (rank <= 10) & (tgt >= 0)
        total += float((hit.float() / torch.log2(rank.float() + 1)).sum())
    net.train()
    return total / n_total


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--net", choices=sorted(SASREC_NETS.keys() | BERT_NETS.keys()), required=True)
    p.add_argument("--loss", choices=["rectools", "seqrec", "seqrec-allpos"], required=True)
    p.add_argument("--model", choices=["sasrec", "bert4rec"], default="sasrec",
                   help=f"bert4rec: --net {', '.join(BERT_NETS)} (mask_prob 0.15)")
    p.add_argument("--masking", choices=["rectools", "seqrec"], default="rectools",
                   help="bert4rec: RecTools' masking or seqrec's (BERT4RecModel._training_batch; --net seqrec only)")
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--setting", default="rectools-small", help="a parity.py setting (sizes, lr, batch, epochs)")
    p.add_argument("--loss-setting", default="gbce256", choices=["gbce256", "bce256"],
                   help="a parity.py loss setting with per-position negatives")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="default: the setting's")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    from parity import DATASETS, LOSS_SETTINGS, SETTINGS, load_split
    from quality import DEFAULT_DATA_DIR
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        split = load_split(args.dataset, argparse.Namespace(data_dir=DEFAULT_DATA_DIR, val_users=0, val_seed=0),
                           Path(tmp)).split
    cfg, loss_cfg = SETTINGS[args.setting], LOSS_SETTINGS[args.loss_setting]
    L, d, bs, lr = cfg["session_max_len"], cfg["n_factors"], cfg["batch_size"], cfg["lr"]
    K, t = loss_cfg["n_negatives"], loss_cfg.get("gbce_t", 0.0)
    epochs = args.epochs if args.epochs is not None else cfg["epochs"]
    train_ds, test_ds = split["train_ds"], split["test_ds"]
    inter = train_ds.interactions
    bert = args.model == "bert4rec"
    nets = BERT_NETS if bert else SASREC_NETS
    if args.net not in nets:
        raise SystemExit(f"--model {args.model} takes --net {', '.join(nets)}")
    wins = windows(inter.indptr, inter.items, L - 1 if bert else L)  # BERT4Rec: the last L items
    catalog = np.unique(np.concatenate(wins))  # train_ds item ids
    to_cat = np.full(train_ds.n_items, -1, np.int64)
    to_cat[catalog] = np.arange(len(catalog))
    wins = [to_cat[w] for w in wins]
    n_items = len(catalog)
    ext_catalog = train_ds.item_id_map.external_ids[catalog]
    print(f"{len(wins)} windows, {n_items} catalog items", flush=True)

    def histories(ds, users_ext, target_ext):
        cat_of = {e: i for i, e in enumerate(ext_catalog)}
        rows = ds.user_id_map.to_internal(users_ext)
        ids = ds.item_id_map.external_ids
        hist, tg = [], []
        for r, te in zip(rows, target_ext):
            seq = ds.interactions.items[ds.interactions.indptr[r]:ds.interactions.indptr[r + 1]]
            c = np.array([cat_of.get(e, -1) for e in ids[seq]], np.int64)
            hist.append(c[c >= 0])
            tg.append(cat_of.get(te, -1))
        return hist, np.array(tg)

    val = split["val"][split["val"][Columns.User].isin(train_ds.user_id_map.external_ids)]
    val_h, val_t = histories(train_ds, val[Columns.User].to_numpy(), val[Columns.Item].to_numpy())
    test = split["test"]
    test_h, test_t = histories(test_ds, test[Columns.User].to_numpy(), test[Columns.Item].to_numpy())

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if args.masking == "seqrec" and not (bert and args.net.startswith("seqrec")):
        raise SystemExit("--masking seqrec needs --model bert4rec --net seqrec (right-padded windows)")
    if bert:
        from seqrec import BERT4RecModel
        masker = BERT4RecModel(mask_prob=0.15)
    net = nets[args.net](n_items, d, cfg["n_blocks"], cfg["n_heads"], cfg["dropout_rate"], L)
    loss_fn = {"rectools": loss_rectools, "seqrec": loss_seqrec, "seqrec-allpos": loss_seqrec_allpos}[args.loss]
    pad = left_pad if net.left else right_pad
    if bert:
        X = torch.as_tensor(pad([w + 2 for w in wins], L))  # masked afresh in every batch
        Y = None
    else:
        seqs = [w + 1 for w in wins]  # RecTools ids
        X, Y = torch.as_tensor(pad([s[:-1] for s in seqs], L)), torch.as_tensor(pad([s[1:] for s in seqs], L))
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.98))
    curve = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(X))
        total = 0.0
        for s in range(0, len(X), bs):
            idx = perm[s:s + bs]
            if bert and args.masking == "seqrec":
                x, y = masker._training_batch(X[idx], n_items)  # targets: catalog ids, -1 = none
                y = y + 1  # the losses read SASRec's ids (item c = c + 1, 0 = none)
            elif bert:
                x, y = (torch.as_tensor(a) for a in mask_rectools(X[idx].numpy(), n_items))
                y = torch.where(y > 0, y - 1, 0)  # the losses read SASRec's ids (item c = c + 1)
            else:
                x, y = X[idx], Y[idx]
            h, table = net(x)
            loss = loss_fn(h, table, y, K, t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss)
        v = ndcg(net, val_h, val_t, L, len(val_t), bert=bert)
        curve.append(round(v, 4))
        print(f"epoch {epoch + 1}: loss {total / (len(X) / bs):.5f} val NDCG@10 {v:.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    test_ndcg = ndcg(net, test_h, test_t, L, len(test_t), bert=bert)
    print(f"RESULT model={args.model} net={args.net} loss={args.loss} masking={args.masking} seed={args.seed} "
          f"test NDCG@10 {test_ndcg:.4f} val {curve}", flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps({"model": args.model, "net": args.net, "loss": args.loss, "masking": args.masking,
                                "seed": args.seed,
                                "dataset": args.dataset,
                                "setting": args.setting, "loss_setting": args.loss_setting, "epochs": epochs,
                                "test_ndcg10": test_ndcg, "val_curve": curve}) + "\n")


if __name__ == "__main__":
    main()
