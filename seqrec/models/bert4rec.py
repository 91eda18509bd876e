"""BERT4Rec (Sun et al., 2019): bidirectional self-attention; random positions are masked and
the model predicts the original items there; at inference a mask token is appended after the
history and its vector scores the next item."""

from __future__ import annotations

import typing as tp

import numpy as np
import torch

from ..batching import last_windows
from ..nn.item_net import CatFeaturesItemNet, IdEmbeddingsItemNet, ItemNetBase
from ..nn.layers import PreLNTransformerLayers, TransformerLayersBase
from ..nn.transformer import MASK, N_SPECIAL, PAD
from ..validation import ValMaskFunc
from .base import TrainerFactory, TransformerModelBase, _check


class BERT4RecModel(TransformerModelBase):
    """BERT4Rec with the RecTools interface.

    Parameters are those of :class:`~seqrec.SASRecModel` (with bidirectional attention and a
    key padding mask by default), plus ``mask_prob``: the fraction of positions masked in
    training (of those, 80% get the mask token, 10% a random item, 10% stay unchanged).
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
        use_key_padding_mask: bool = True,
        use_causal_attn: bool = False,
        transformer_layers_type: tp.Type[TransformerLayersBase] = PreLNTransformerLayers,
        item_net_block_types: tp.Sequence[tp.Type[ItemNetBase]] = (IdEmbeddingsItemNet, CatFeaturesItemNet),
        get_trainer_func: tp.Optional[TrainerFactory] = None,
        recommend_batch_size: int = 256,
        recommend_torch_device: tp.Optional[str] = None,
        random_state: tp.Optional[int] = None,
        mask_prob: float = 0.15,
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

    # BERT's feed-forward: four times wider than the embeddings, GELU
    _ff_multiplier = 4
    _activation = "gelu"
    _preset_prefix = "bert4rec"

    def _validate_params(self) -> None:
        super()._validate_params()
        _check(isinstance(self.mask_prob, (int, float)) and 0 < self.mask_prob < 1,
               f"mask_prob must be in (0, 1), got {self.mask_prob!r}")

    def _train_window(self) -> int:
        return self.session_max_len

    def _training_batch(self, window: torch.Tensor, n_items: int) -> tp.Tuple[torch.Tensor, torch.Tensor]:
        # window (B, L), right-padded item tokens; all random draws happen on window's device
        valid = window != PAD
        masked = valid & (torch.rand(window.shape, device=window.device) < self.mask_prob)  # (B, L)
        # a sequence with no masked position gets its last item masked, the inference situation
        last = (valid.sum(dim=1) - 1).clamp(min=0)  # (B,)
        none = ~masked.any(dim=1)  # (B,)
        # a mask, not boolean indexing: no host synchronisation on an accelerator
        at_last = torch.arange(window.shape[1], device=window.device).unsqueeze(0) == last.unsqueeze(1)  # (B, L)
        masked |= none.unsqueeze(1) & at_last
        masked &= valid
        targets = torch.where(masked, window - N_SPECIAL, -1)  # (B, L)
        # of the masked positions: 80% mask token, 10% random item, 10% unchanged
        choice = torch.rand(window.shape, device=window.device)
        random_items = torch.randint(N_SPECIAL, N_SPECIAL + n_items, window.shape, device=window.device)
        tokens = torch.where(masked & (choice < 0.8), MASK, window)
        tokens = torch.where(masked & (choice >= 0.8) & (choice < 0.9), random_items, tokens)
        return tokens, targets

    def _inference_tokens(self, indptr: np.ndarray, items: np.ndarray) -> np.ndarray:
        # the last L - 1 items, then the mask token whose vector scores the next item
        L = self.session_max_len
        rows = np.arange(len(indptr) - 1)
        tokens = np.zeros((len(rows), L), dtype=np.int64)
        tokens[:, : L - 1] = last_windows(indptr, items, rows, L - 1, N_SPECIAL, PAD)
        lengths = np.minimum(np.diff(indptr), L - 1)
        tokens[rows, lengths] = MASK
        return tokens
