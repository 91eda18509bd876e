"""Hyperparameter presets per (model, dataset), the settings behind the benchmark rows.

``get_preset("sasrec-ml-1m")`` returns a fresh dict of constructor arguments:
``SASRecModel(**get_preset("sasrec-ml-1m"))``, or in one step ``SASRecModel.from_preset("ml-1m")``
(keyword arguments override the preset). Change ``epochs`` (an upper bound when early stopping is
used) or any other key freely; the dict is a copy.

Sources (see ``../shared/BENCHMARKS.md`` of the project):

- ``sasrec-ml-1m``: the sizes of SASRec+ of Klenitskiy & Vasilev (RecSys 2023): d=64, 2 blocks,
  1 head, dropout 0.1, length 200, batch 128, full softmax, item ids only (tied input/output
  embeddings), with two changes that raised our test NDCG@10 from 0.1756 to 0.1852 on ML-1M
  (``docs/benchmarks.md``): Adam lr 2e-3 instead of 1e-3, and ``train_windows="all"`` (the
  interactions older than the last 200 of long histories are trained on too).
- ``sasrec-ml-1m-gbce``: SASRec with gBCE (256 uniform negatives, t=0.75, the gSASRec loss) and
  the sizes above, dropout 0 (as in gSASRec's reference configuration), lr 2e-3, all windows; our
  best test NDCG@10 with it (0.1794) came at epoch 34 of a run with validation early stopping.
- ``bert4rec-ml-1m``: the same paper's BERT4Rec (softmax CE, mask probability 0.2), with the
  SASRec+ sizes (d=64, 2 blocks, length 200), 2 heads and Adam lr 2e-3 (test NDCG@10 0.1644);
  BERT4Rec needs more epochs.
- ``sasrec-beauty`` / ``bert4rec-beauty``: short sequences (length 50), stronger dropout (0.5) as
  in the SASRec paper's sparse Amazon sets; mask probability 0.6 for BERT4Rec (BERT4Rec paper's
  choice for Beauty).
- ``sasrec-beauty-features``: ``sasrec-beauty`` with the items' categorical features summed into
  the item vectors (``CatFeaturesItemNet``; on Beauty its attribute ids, categories and brands),
  for Amazon-style data whose item table has them; without item features in the dataset the
  block is skipped with a warning (ids only). Its rate decays to 0 over its 50 epochs
  (``lr_schedule="cosine"``): with features the validation NDCG@10 of a constant rate stops rising
  by epoch 30, and the decay lifted it on each seed tried. On Beauty, three seeds: test NDCG@10
  0.0605 ± 0.0003 against 0.0573 ± 0.0007 without features (``docs/benchmarks.md``).
- ``*-ml-latest-small``: small and fast settings for the embedded data set (610 users).

The SASRec and BERT4Rec presets name ``PreLNTransformerLayers`` with ``final_norm=True`` and
``output_dropout=False``: the standard pre-LN stack, the block every one of their figures was
measured with. SASRecModel's default became ``SASRecTransformerLayers`` (RecTools' block, better
at RecTools' settings) and ``PreLNTransformerLayers``' defaults became RecTools' stack (no final
LayerNorm, dropout on each block's output) since; rerunning the presets with those is a new
experiment. For the same reason they set ``use_key_padding_mask=True``: their figures were
measured before causal models without a key mask attended to RecTools' padding keys
(SASRecModel's default since then, see ``seqrec.nn.transformer``).
- ``sasrec-ml-1m-esasrec`` / ``sasrec-beauty-esasrec``: eSASRec (Tikhonovich et al., "eSASRec:
  Enhancing Transformer-based Recommendations in a Modular Fashion", RecSys 2025): SASRec's
  training objective, LiGR layers (SwiGLU feed-forward of width 4d, gated residuals) and sampled
  softmax with 256 uniform negatives, Adam lr 1e-3. The values are those of the authors'
  benchmark code (github.com/blondered/transformer_benchmark, built on RecTools' SASRecModel):
  ML-1M from ``configs/paper/loo/ml_1m.yaml`` and its README's hyperparameter table (d=64,
  2 blocks, 1 head, dropout 0.1, length 200, 100 epochs); Beauty from
  ``configs/paper/loo/s3_beauty_ligr.yaml`` (d=256, 1 block, 1 head, dropout 0.2, length 50, 200
  epochs; that README's table lists d=64 for Beauty, we follow the run's config). Ours: batch
  size 128 (their configs leave RecTools' default, which is 128), item ids only (their data has
  no item features), ``train_windows="last"`` (RecTools' behaviour), and a fixed number of epochs
  where the authors stopped early on validation recall@10 (patience 50) and kept the best
  epoch; ``use_key_padding_mask=True`` as in their configs (no padding keys). Not yet
  benchmarked with seqrec.
"""

from __future__ import annotations

import copy
import typing as tp

from .nn.item_net import CatFeaturesItemNet, IdEmbeddingsItemNet
from .nn.layers import LiGRLayers, PreLNTransformerLayers

__all__ = ["PRESETS", "get_preset", "preset_names"]

_IDS_ONLY = (IdEmbeddingsItemNet,)
# the standard pre-LN stack every preset figure was measured with (PreLNTransformerLayers' defaults
# became RecTools': no final LayerNorm, dropout on each block's output)
_STANDARD_PRE_LN = dict(transformer_layers_type=PreLNTransformerLayers,
                        transformer_layers_kwargs={"final_norm": True, "output_dropout": False})

_SASREC_BEAUTY = dict(
    n_factors=64, n_blocks=2, n_heads=1, dropout_rate=0.5, session_max_len=50, batch_size=128, lr=1e-3,
    loss="softmax", epochs=200, item_net_block_types=_IDS_ONLY,
    **_STANDARD_PRE_LN,
    use_key_padding_mask=True,
)

PRESETS: tp.Dict[str, tp.Dict[str, tp.Any]] = {
    "sasrec-ml-1m": dict(
        n_factors=64, n_blocks=2, n_heads=1, dropout_rate=0.1, session_max_len=200, batch_size=128, lr=2e-3,
        loss="softmax", epochs=100, item_net_block_types=_IDS_ONLY, train_windows="all",
        **_STANDARD_PRE_LN,
        use_key_padding_mask=True,
    ),
    "sasrec-ml-1m-gbce": dict(
        n_factors=64, n_blocks=2, n_heads=1, dropout_rate=0.0, session_max_len=200, batch_size=128, lr=2e-3,
        loss="gBCE", n_negatives=256, gbce_t=0.75, epochs=100, item_net_block_types=_IDS_ONLY, train_windows="all",
        **_STANDARD_PRE_LN,
        use_key_padding_mask=True,
    ),
    "bert4rec-ml-1m": dict(
        n_factors=64, n_blocks=2, n_heads=2, dropout_rate=0.1, session_max_len=200, batch_size=128, lr=2e-3,
        loss="softmax", mask_prob=0.2, epochs=200, item_net_block_types=_IDS_ONLY, **_STANDARD_PRE_LN,
    ),
    "sasrec-beauty": _SASREC_BEAUTY,
    # sasrec-beauty with the items' categorical attributes (category and brand ids on Beauty), and
    # Adam's rate decaying to 0 over 50 epochs (with features the constant rate plateaus by epoch 30)
    "sasrec-beauty-features": dict(_SASREC_BEAUTY, item_net_block_types=(IdEmbeddingsItemNet, CatFeaturesItemNet),
                                   lr_schedule="cosine", epochs=50),
    "bert4rec-beauty": dict(
        n_factors=64, n_blocks=2, n_heads=2, dropout_rate=0.5, session_max_len=50, batch_size=128, lr=1e-3,
        loss="softmax", mask_prob=0.6, epochs=200, item_net_block_types=_IDS_ONLY, **_STANDARD_PRE_LN,
    ),
    "sasrec-ml-1m-esasrec": dict(
        n_factors=64, n_blocks=2, n_heads=1, dropout_rate=0.1, session_max_len=200, batch_size=128, lr=1e-3,
        loss="sampled_softmax", n_negatives=256, epochs=100, item_net_block_types=_IDS_ONLY,
        transformer_layers_type=LiGRLayers, transformer_layers_kwargs={"ff_multiplier": 4},
        use_key_padding_mask=True,
    ),
    "sasrec-beauty-esasrec": dict(
        n_factors=256, n_blocks=1, n_heads=1, dropout_rate=0.2, session_max_len=50, batch_size=128, lr=1e-3,
        loss="sampled_softmax", n_negatives=256, epochs=200, item_net_block_types=_IDS_ONLY,
        transformer_layers_type=LiGRLayers, transformer_layers_kwargs={"ff_multiplier": 4},
        use_key_padding_mask=True,
    ),
    "sasrec-ml-latest-small": dict(
        n_factors=64, n_blocks=2, n_heads=1, dropout_rate=0.2, session_max_len=100, batch_size=64, lr=1e-3,
        loss="softmax", epochs=50, item_net_block_types=_IDS_ONLY,
        **_STANDARD_PRE_LN,
        use_key_padding_mask=True,
    ),
    "bert4rec-ml-latest-small": dict(
        n_factors=64, n_blocks=2, n_heads=2, dropout_rate=0.2, session_max_len=100, batch_size=64, lr=1e-3,
        loss="softmax", mask_prob=0.2, epochs=100, item_net_block_types=_IDS_ONLY, **_STANDARD_PRE_LN,
    ),
}


def preset_names() -> tp.List[str]:
    """Names of the presets, ``"<model>-<dataset>"``."""
    return sorted(PRESETS)


def get_preset(name: str) -> tp.Dict[str, tp.Any]:
    """A fresh copy of the preset ``name`` (constructor arguments of the model it names)."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; available: {preset_names()}")
    return copy.deepcopy(PRESETS[name])  # a preset's dicts (transformer_layers_kwargs) are copied too
