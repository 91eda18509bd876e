"""SASRec (Kang & McAuley, 2018): causal self-attention over the history; the vector at every
position predicts the next item (shifted sequence); the last position is the user's vector."""

from __future__ import annotations

import typing as tp

import numpy as np
import torch

from ..batching import last_windows
from ..nn.item_net import CatFeaturesItemNet, IdEmbeddingsItemNet, ItemNetBase
from ..nn.layers import SASRecTransformerLayers, TransformerLayersBase
from ..nn.transformer import N_SPECIAL, PAD
from ..validation import ValMaskFunc
from .base import TrainerFactory, TransformerModelBase, _check


class SASRecModel(TransformerModelBase):
    """Self-attentive sequential recommendation with the RecTools interface.

    Parameters
    ----------
    n_blocks
        transformer depth.
    n_heads
        attention heads.
    n_factors
        embedding size.
    dropout_rate
        dropout of embeddings, attention and feed-forward layers.
    session_max_len
        number of most recent items the model reads.
    train_min_user_interactions
        users with fewer interactions are not trained on.
    loss
        "softmax" (full catalog), "BCE" or "gBCE" (``n_negatives`` uniform negatives, ``gbce_t``),
        or "sampled_softmax" (softmax over the positive and ``n_negatives`` sampled negatives).
    lr
        Adam learning rate.
    batch_size
        users per batch.
    epochs
        passes over the data.
    deterministic
        deterministic algorithms and, without ``random_state``, seed 0.
    verbose
        0 silent; 1 progress bar and per-epoch loss; 2 also Lightning's messages.
    item_net_block_types
        item blocks whose tables are summed (ids and/or categorical features).
    use_pos_emb
        add position embeddings.
    use_causal_attn
        causal attention (each position sees only earlier ones); ``False`` is refused: each position
        would see its own target, unless a subclass overrides ``_training_batch``.
    use_key_padding_mask
        False (RecTools' SASRec default): as in RecTools, each query also attends to the
        ``session_max_len - length`` padding positions before the history (keys that carry only a
        position: see :mod:`seqrec.nn.transformer`); this decided a fifth of NDCG@10 at RecTools'
        settings on Amazon Beauty. True: padding is never attended to (the presets' setting).
    recommend_batch_size
        users per scoring batch.
    recommend_torch_device
        scoring device (None: CUDA when available).
    get_trainer_func
        optional callable returning a configured ``lightning.Trainer``.
    random_state
        seed of initialisation, shuffling and sampling.
    negative_sampling
        negatives of "sampled_softmax": "uniform" over the catalog (each position its own, as
        in RecTools), "uniform_sequence" (uniform, one draw per sequence shared by its positions:
        the same distribution per position at a fraction of the cost of a step), "popularity"
        (proportional to the training counts, with logQ correction) or "in_batch" (drawn from the
        batch's positives, logQ by their in-batch frequency).
    softmax_chunk_size
        catalog items per chunk of the "softmax" loss; None chooses from the free
        memory: the full logits while they fit, else a chunked loss that never materialises them.
    precision
        "auto" (bf16 autocast on a CUDA device that supports it, float32 otherwise),
        "fp32" or "bf16".
    torch_compile
        compile the network with ``torch.compile`` for training.
    train_windows
        "last" (one sample per user: the most recent ``session_max_len`` items, as in
        RecTools) or "all" (each history cut into consecutive windows, so that every interaction
        is a training target once; more samples per epoch).
    lr_schedule
        "constant" (Adam at ``lr`` throughout, as in RecTools) or "cosine" (decays per
        step from ``lr`` to 0 over the trainer's planned epochs, ``epochs`` unless a custom trainer
        says otherwise; with early stopping the run may end before the decay does).
    transformer_layers_type
        the layer stack: ``SASRecTransformerLayers`` (the original SASRec block, RecTools'
        default and ours: it measured better than the pre-LN block at RecTools' settings in four
        of five comparisons), ``PreLNTransformerLayers`` (RecTools' pre-LN stack; with
        ``{"final_norm": True, "output_dropout": False}`` the presets' block), ``LiGRLayers``
        (eSASRec) or a ``TransformerLayersBase`` subclass.
    transformer_layers_kwargs
        a dict of the layer stack's options (those in its ``options``, e.g. ``{"ff_multiplier": 2}``
        for ``LiGRLayers``; RecTools' ``ff_factors_multiplier``/``ff_activation`` accepted); unknown
        keys are errors.
    """

    def __init__(
        self,
        n_blocks: int = 2,
        n_heads: int = 4,
        n_factors: int = 256,
        dropout_rate: float = 0.2,
        session_max_len: int = 100,
        train_min_user_interactions: int = 2,
        loss: str = "softmax",
        n_negatives: int = 1,
        gbce_t: float = 0.2,
        lr: float = 0.001,
        batch_size: int = 128,
        epochs: int = 3,
        deterministic: bool = False,
        verbose: int = 0,
        dataloader_num_workers: int = 0,
        use_pos_emb: bool = True,
        use_key_padding_mask: bool = False,
        use_causal_attn: bool = True,
        transformer_layers_type: tp.Type[TransformerLayersBase] = SASRecTransformerLayers,
        item_net_block_types: tp.Sequence[tp.Type[ItemNetBase]] = (IdEmbeddingsItemNet, CatFeaturesItemNet),
        get_trainer_func: tp.Optional[TrainerFactory] = None,
        recommend_batch_size: int = 256,
        recommend_torch_device: tp.Optional[str] = None,
        random_state: tp.Optional[int] = None,
        negative_sampling: str = "uniform",
        softmax_chunk_size: tp.Optional[int] = None,
        precision: str = "auto",
        torch_compile: bool = False,
        train_windows: str = "last",
        lr_schedule: str = "constant",
        similarity: str = "dot",
        similarity_module_type: tp.Optional[type] = None,
        similarity_module_kwargs: tp.Optional[tp.Dict[str, tp.Any]] = None,
        get_val_mask_func: tp.Optional[ValMaskFunc] = None,
        val_k: int = 10,
        early_stopping: tp.Optional[str] = None,
        early_stopping_patience: int = 5,
        get_val_mask_func_kwargs: tp.Optional[tp.Dict[str, tp.Any]] = None,
        get_trainer_func_kwargs: tp.Optional[tp.Dict[str, tp.Any]] = None,
        transformer_layers_kwargs: tp.Optional[tp.Dict[str, tp.Any]] = None,
    ) -> None:
        self._init_params(locals())

    # SASRec's feed-forward is point-wise with the same width as the embeddings
    _ff_multiplier = 1
    _activation = "relu"
    _preset_prefix = "sasrec"

    def _validate_params(self) -> None:
        super()._validate_params()
        # bidirectional attention lets position t read item t + 1, its own target: the shifted
        # objective would be learnt by copying. A subclass with its own objective may want it.
        _check(self.use_causal_attn or type(self)._training_batch is not SASRecModel._training_batch,
               "use_causal_attn=False: SASRec's next-item objective would let each position see its own target "
               "(the next item); use BERT4RecModel for bidirectional attention, or override _training_batch")

    def _train_window(self) -> int:
        # L inputs and their L next items
        return self.session_max_len + 1

    def _training_batch(self, window: torch.Tensor, n_items: int) -> tp.Tuple[torch.Tensor, torch.Tensor]:
        # window (B, L + 1), right-padded. Position t reads items 0..t and predicts item t + 1; the
        # user's last item has no next item, so it is not an input (and its position 0 is kept
        # for the vector that predicts, as at inference).
        nxt = window[:, 1:]  # (B, L)
        has_target = nxt != PAD
        tokens = torch.where(has_target, window[:, :-1], PAD)  # (B, L)
        targets = torch.where(has_target, nxt - N_SPECIAL, -1)  # (B, L)
        return tokens, targets

    def _inference_tokens(self, indptr: np.ndarray, items: np.ndarray) -> np.ndarray:
        rows = np.arange(len(indptr) - 1)
        return last_windows(indptr, items, rows, self.session_max_len, N_SPECIAL, PAD)  # (B, L)
