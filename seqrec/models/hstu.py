"""HSTU (Zhai et al., 2024, "Actions Speak Louder than Words"): SASRec's objective (causal, every
position predicts the next item) over a stack of STU blocks, whose pointwise attention is biased
by relative positions and by the time gaps between interactions. Every position is conditioned on
the time of the interaction it predicts: in training the target's time, at ``recommend`` the
request time, given per user by ``context`` (as in RecTools) or, without it, the user's last
interaction time.
"""

from __future__ import annotations

import typing as tp
import warnings

import numpy as np
import pandas as pd
import torch

from ..batching import history_times, last_windows
from ..columns import Columns
from ..dataset import Dataset, Interactions, check_columns
from ..nn.hstu import HSTUNet, STULayers
from ..nn.item_net import CatFeaturesItemNet, IdEmbeddingsItemNet, ItemNetBase, SumItemNet
from ..nn.transformer import N_SPECIAL, PAD
from ..validation import ValMaskFunc
from .base import TrainerFactory, TransformerModelBase, _check, _is_flag

_NS_PER_SECOND = 10**9
# the keys of RecTools' kwargs dicts that HSTU reads; anything else is refused by name
_POS_ENCODING_KWARGS = ("use_scale_factor",)
_LIGHTNING_KWARGS = ("logits_t",)


class HSTUModel(TransformerModelBase):
    """HSTU with the RecTools interface (RecTools' ``HSTUModel`` parameters and defaults).

    Parameters are those of :class:`~seqrec.SASRecModel`, with these differences:

    relative_time_attention : bias the attention by the bucketised time gap (log buckets of
        seconds) between the time each position predicts and every earlier interaction. Needs
        real times: a ``datetime`` column in the interactions (datetimes; or numbers, read as
        seconds); without one, ``fit`` raises. ``recommend`` reads the request time from
        ``context`` (``user_id``, ``datetime``; one row per user, not earlier than the user's last
        interaction), defaulting to each user's last interaction time.
    relative_pos_attention : bias the attention by the relative position ``j - i``.
    transformer_layers_type : ``STULayers`` (or a subclass).
    similarity : "cosine" by default (RecTools' HSTU default; RecTools' ``similarity_module_kwargs``
        without ``"distance"`` mean cosine too).
    use_key_padding_mask : not used (padding keys are always masked); True warns, and is stored
        as False, as in RecTools.
    transformer_layers_kwargs : RecTools' keys ``attn_dropout_rate`` (default 0.0, dropout of the
        attention output) and ``epsilon`` (1e-6, of the LayerNorms).
    pos_encoding_kwargs : RecTools' key ``use_scale_factor`` (default True: item vectors times
        ``sqrt(n_factors)`` before the positions are added).
    lightning_module_kwargs : RecTools' key ``logits_t`` (default 1.0): training logits are
        divided by it (the HSTU tutorial uses 0.05 with cosine similarity); scores are not.

    The attention is pointwise (SiLU, no softmax), divided by ``session_max_len``; see
    :mod:`seqrec.nn.hstu` for the block and for the memory it takes.
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
        relative_time_attention: bool = True,
        relative_pos_attention: bool = True,
        transformer_layers_type: tp.Type[STULayers] = STULayers,
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
        similarity: str = "cosine",
        similarity_module_type: tp.Optional[type] = None,
        similarity_module_kwargs: tp.Optional[tp.Dict[str, tp.Any]] = None,
        get_val_mask_func: tp.Optional[ValMaskFunc] = None,
        val_k: int = 10,
        early_stopping: tp.Optional[str] = None,
        early_stopping_patience: int = 5,
        get_val_mask_func_kwargs: tp.Optional[tp.Dict[str, tp.Any]] = None,
        get_trainer_func_kwargs: tp.Optional[tp.Dict[str, tp.Any]] = None,
        transformer_layers_kwargs: tp.Optional[tp.Dict[str, tp.Any]] = None,
        pos_encoding_kwargs: tp.Optional[tp.Dict[str, tp.Any]] = None,
        lightning_module_kwargs: tp.Optional[tp.Dict[str, tp.Any]] = None,
    ) -> None:
        _check(isinstance(use_key_padding_mask, (bool, np.bool_)),
               f"use_key_padding_mask must be True or False, got {use_key_padding_mask!r}")
        if use_key_padding_mask:
            warnings.warn("use_key_padding_mask is not used by HSTU (padding keys are always masked); it is set to "
                          "False, as in RecTools", UserWarning, stacklevel=2)
            use_key_padding_mask = False
        self._init_params(locals())

    _preset_prefix = "hstu"
    _default_similarity = "cosine"

    def _validate_params(self) -> None:
        super()._validate_params()
        for name in ("relative_time_attention", "relative_pos_attention"):  # the shared flags: the base class
            _check(_is_flag(getattr(self, name)), f"{name} must be True or False, got {getattr(self, name)!r}")
        layers = self.transformer_layers_type
        _check(isinstance(layers, type) and issubclass(layers, STULayers),
               f"transformer_layers_type of HSTUModel must be STULayers or a subclass, got {layers!r}")
        layer_kw = self._layer_options()  # unknown keys were refused by the base class's check_options
        rate = layer_kw["attn_dropout_rate"]
        _check(isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 <= rate < 1,
               f"transformer_layers_kwargs: attn_dropout_rate must be in [0, 1), got {rate!r}")
        eps = layer_kw["epsilon"]
        _check(isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps > 0,
               f"transformer_layers_kwargs: epsilon must be positive, got {eps!r}")
        scale = _kwargs(self, "pos_encoding_kwargs", _POS_ENCODING_KWARGS).get("use_scale_factor", True)
        _check(_is_flag(scale), f"pos_encoding_kwargs: use_scale_factor must be True or False, "
               f"got {scale!r}")
        t = _kwargs(self, "lightning_module_kwargs", _LIGHTNING_KWARGS).get("logits_t", 1.0)
        _check(isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0,
               f"lightning_module_kwargs: logits_t must be a positive number, got {t!r}")

    # ----------------------------------------------------------------- the network
    def _layer_options(self) -> tp.Dict[str, tp.Any]:
        """The layer stack's options: its defaults (``STULayers.options``) with ``transformer_layers_kwargs`` over them."""
        layers = self.transformer_layers_type
        return {**layers.options, **layers.check_options(self.transformer_layers_kwargs)}

    def _net_from_item_net(self, item_net: SumItemNet) -> HSTUNet:
        layer_kw = self._layer_options()
        return HSTUNet(
            item_net,
            n_factors=self.n_factors,
            n_blocks=self.n_blocks,
            n_heads=self.n_heads,
            dropout=self.dropout_rate,
            max_len=self.session_max_len,
            use_pos_emb=self.use_pos_emb,
            use_causal_attn=self.use_causal_attn,
            relative_time_attention=self.relative_time_attention,
            relative_pos_attention=self.relative_pos_attention,
            use_scale_factor=(self.pos_encoding_kwargs or {}).get("use_scale_factor", True),
            attn_dropout_rate=layer_kw["attn_dropout_rate"],
            epsilon=layer_kw["epsilon"],
            layers_type=self.transformer_layers_type,
        )

    # ----------------------------------------------------------------- the objective (SASRec's)
    def _train_window(self) -> int:
        # L inputs and their L next items
        return self.session_max_len + 1

    def _training_batch(self, window: tp.Any, n_items: int) -> tp.Tuple[torch.Tensor, ...]:
        # window: items (B, L + 1), right-padded, with their times (B, L + 1) when time attention is on.
        # Position t reads items 0..t and predicts item t + 1 (the user's last item is no input);
        # its query time is that of item t + 1, so the times go to the network unshifted.
        items, times = window if isinstance(window, (tuple, list)) else (window, None)
        nxt = items[:, 1:]  # (B, L)
        has_target = nxt != PAD
        tokens = torch.where(has_target, items[:, :-1], PAD)  # (B, L)
        targets = torch.where(has_target, nxt - N_SPECIAL, -1)  # (B, L)
        return (tokens, targets) if times is None else (tokens, targets, times)

    def _inference_tokens(self, indptr: np.ndarray, items: np.ndarray) -> np.ndarray:
        rows = np.arange(len(indptr) - 1)
        return last_windows(indptr, items, rows, self.session_max_len, N_SPECIAL, PAD)  # (B, L)

    # ----------------------------------------------------------------- times
    def _uses_times(self) -> bool:
        return bool(self.relative_time_attention)

    @property
    def require_recommend_context(self) -> bool:
        """True with time attention: ``recommend`` reads the request times from ``context`` (RecTools' name).

        Unlike RecTools, ``context`` may be left out: each user's last interaction time is used."""
        return bool(self.relative_time_attention)

    def _sequence_times(self, interactions: Interactions, positions: np.ndarray) -> np.ndarray:
        """Seconds of the interactions at ``positions`` (datetimes to Unix seconds, numbers as they are)."""
        if interactions.times_are_row_order:
            raise ValueError(
                f"HSTUModel with relative_time_attention=True needs interaction times, but the dataset was built "
                f"without a '{Columns.Datetime}' column (its times are row positions): add a '{Columns.Datetime}' "
                "column to interactions_df of Dataset.construct, or set relative_time_attention=False")
        times = interactions.times[positions]
        return times // _NS_PER_SECOND if interactions.times_are_datetimes else times

    def _inference_extras(self, indptr: np.ndarray, times: np.ndarray, query_times: np.ndarray
                          ) -> tp.Tuple[np.ndarray, ...]:
        return (history_times(indptr, times, query_times, self.session_max_len),)  # (B, L + 1)

    def _request_times(self, dataset: Dataset, users: np.ndarray, indptr: np.ndarray, times: np.ndarray,
                       context: tp.Optional[pd.DataFrame]) -> np.ndarray:
        last = times[indptr[1:] - 1]  # (n_users,) every user here has a history
        if context is None:
            return last
        query = _context_seconds(context, users, dataset.interactions.times_are_datetimes)
        early = query < last
        if early.any():
            raise ValueError(f"context: {int(early.sum())} user(s) have a '{Columns.Datetime}' earlier than their last "
                             f"interaction in the dataset, e.g. {list(users[early][:5])}; the request time must not "
                             "precede the history")
        return query


def _kwargs(model: HSTUModel, name: str, allowed: tp.Tuple[str, ...]) -> tp.Dict[str, tp.Any]:
    value = getattr(model, name)
    if value is None:
        return {}
    _check(isinstance(value, dict), f"{name} must be a dict or None, got {value!r}")
    unknown = sorted(set(value) - set(allowed))
    _check(not unknown, f"{name}: unknown key(s) {unknown}; HSTUModel reads only {list(allowed)}")
    return value


def _context_seconds(context: tp.Any, users: np.ndarray, datetimes: bool) -> np.ndarray:
    """The request time of each of ``users`` ``(n,)`` from ``context`` (RecTools' checks and messages)."""
    check_columns(context, "context", [Columns.User, Columns.Datetime])
    if context[Columns.User].duplicated().any():
        raise ValueError("Duplicated user entries found in context. Each user must have exactly one context row.")
    col = context[Columns.Datetime]
    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    if datetimes:
        if numeric:
            raise ValueError(f"context: column '{Columns.Datetime}' holds numbers, but the dataset's times are "
                             "datetimes; give datetimes (or strings pandas can parse)")
        try:
            converted = pd.to_datetime(col)
        except (ValueError, TypeError) as e:
            raise ValueError(f"context: column '{Columns.Datetime}' must hold datetimes: {e}") from None
        if converted.dt.tz is not None:
            converted = converted.dt.tz_convert("UTC").dt.tz_localize(None)
        seconds = converted.to_numpy(dtype="datetime64[ns]").astype(np.int64) // _NS_PER_SECOND
    else:
        if not numeric:
            raise ValueError(f"context: column '{Columns.Datetime}' must hold numbers (seconds), as the dataset's "
                             "times do")
        seconds = col.to_numpy(dtype=np.float64).astype(np.int64) if col.dtype.kind == "f" else col.to_numpy(np.int64)
    at = pd.Index(context[Columns.User]).get_indexer(pd.Index(users))
    if (at < 0).any():
        raise ValueError(f"No context for some target users: {list(users[at < 0][:5])}")
    return seconds[at]


def get_context(df: pd.DataFrame) -> pd.DataFrame:
    """Each user's earliest row of ``df`` (by ``datetime``, ties by row order) without the item column:
    the ``context`` of ``recommend`` from, e.g., the test interactions (RecTools' ``get_context``).

    ``datetime`` is converted to datetimes (numbers stay numbers: seqrec reads numeric times as
    seconds) and a missing ``weight`` column is added (1.0), as RecTools does. ``df`` is not modified.
    """
    check_columns(df, "get_context: df", [Columns.User, Columns.Datetime])
    out = df.copy()
    if Columns.Weight not in out.columns:
        out[Columns.Weight] = 1.0
    col = out[Columns.Datetime]
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        out[Columns.Datetime] = pd.to_datetime(col)
    earliest = out.sort_values(Columns.Datetime, kind="stable").drop_duplicates(Columns.User, keep="first")
    return earliest.drop(columns=[Columns.Item], errors="ignore")
