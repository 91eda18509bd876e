"""What SASRec and BERT4Rec share: parameters and their checks, ``fit`` and ``recommend``.

The model files (``sasrec.py``, ``bert4rec.py``) hold what makes each model itself: how a
training batch is made from item windows and how a user's history becomes inference tokens.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import typing as tp
import warnings

import lightning as L
import numpy as np
import pandas as pd
import torch

from ..batching import ranks_in_runs, take_rows
from ..columns import Columns
from ..dataset import Dataset
from ..nn.item_net import ItemNetBase, SumItemNet
from ..nn.losses import LOSSES, NEGATIVE_SAMPLING
from ..nn.layers import check_layers_type
from ..nn.transformer import TransformerNet
from ..presets import get_preset, preset_names
from ..training import LR_SCHEDULES, PRECISIONS, SeqRecModule, WindowDataset, make_dataloader

ON_UNSUPPORTED = ("raise", "warn", "ignore")
TRAIN_WINDOWS = ("last", "all")
TrainerFactory = tp.Callable[[], L.Trainer]


class NotFittedError(RuntimeError):
    """Raised when a model is used before ``fit``."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _is_int(value: tp.Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class TransformerModelBase:
    """Shared machinery of the transformer models. Subclasses define ``__init__`` (their parameters),
    the network shape (``_ff_multiplier``, ``_activation``), ``_train_window``, ``_training_batch``
    and ``_inference_tokens``."""

    _ff_multiplier = 1
    _activation = "relu"
    _preset_prefix = ""  # the model's prefix in seqrec.presets ("sasrec", "bert4rec")

    # ----------------------------------------------------------------- parameters
    @classmethod
    def _param_names(cls) -> tp.List[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    @classmethod
    def from_preset(cls, dataset: str, **overrides: tp.Any) -> "TransformerModelBase":
        """A model with the tuned hyperparameters of ``seqrec.presets`` for ``dataset``.

        ``SASRecModel.from_preset("ml-1m", epochs=50)`` is ``SASRecModel(**get_preset("sasrec-ml-1m"),
        epochs=50)``: keyword arguments override the preset's values.
        """
        prefix = cls._preset_prefix + "-"
        name = prefix + dataset
        if name not in preset_names():
            datasets = [n[len(prefix):] for n in preset_names() if n.startswith(prefix)]
            raise ValueError(f"No {cls.__name__} preset for {dataset!r}; available: {datasets}")
        return cls(**{**get_preset(name), **overrides})

    def _init_params(self, values: tp.Dict[str, tp.Any]) -> None:
        """Store the constructor arguments unchanged (scikit-learn style), then check them."""
        for name in self._param_names():
            setattr(self, name, values[name])
        self._validate_params()

    def get_params(self, deep: bool = True) -> tp.Dict[str, tp.Any]:
        """Constructor parameters, as in scikit-learn."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: tp.Any) -> "TransformerModelBase":
        """Set constructor parameters (validated), as in scikit-learn."""
        allowed = self._param_names()
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(f"Unknown parameter(s) {unknown} for {type(self).__name__}; allowed: {allowed}")
        for name, value in params.items():
            setattr(self, name, value)
        self._validate_params()
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_choice(self, name: str, allowed: tp.Tuple[str, ...]) -> None:
        """A string option: its value must be one of ``allowed``."""
        value = getattr(self, name)
        _check(value in allowed, f"Unknown {name} {value!r}; allowed: {allowed}")

    def _validate_params(self) -> None:
        for name in ("n_blocks", "n_heads", "n_factors", "session_max_len", "batch_size", "epochs",
                     "recommend_batch_size", "train_min_user_interactions"):
            value = getattr(self, name)
            _check(_is_int(value) and value > 0, f"{name} must be a positive integer, got {value!r}")
        _check(self.n_factors % self.n_heads == 0,
               f"n_factors ({self.n_factors}) must be divisible by n_heads ({self.n_heads})")
        _check(self.session_max_len >= 2 or type(self).__name__ != "BERT4RecModel",
               "session_max_len must be at least 2 for BERT4Rec (history + mask token)")
        _check(isinstance(self.dropout_rate, (int, float)) and 0 <= self.dropout_rate < 1,
               f"dropout_rate must be in [0, 1), got {self.dropout_rate!r}")
        self._check_choice("loss", LOSSES)
        _check(_is_int(self.n_negatives) and self.n_negatives > 0,
               f"n_negatives must be a positive integer, got {self.n_negatives!r}")
        _check(isinstance(self.gbce_t, (int, float)) and 0 <= self.gbce_t <= 1,
               f"gbce_t must be in [0, 1], got {self.gbce_t!r}")
        _check(isinstance(self.lr, (int, float)) and self.lr > 0, f"lr must be positive, got {self.lr!r}")
        self._check_choice("negative_sampling", NEGATIVE_SAMPLING)
        _check(self.softmax_chunk_size is None or (_is_int(self.softmax_chunk_size) and self.softmax_chunk_size > 0),
               f"softmax_chunk_size must be a positive integer or None (automatic), got {self.softmax_chunk_size!r}")
        self._check_choice("precision", PRECISIONS)
        _check(isinstance(self.torch_compile, bool), f"torch_compile must be True or False, got {self.torch_compile!r}")
        self._check_choice("train_windows", TRAIN_WINDOWS)
        self._check_choice("lr_schedule", LR_SCHEDULES)
        _check(_is_int(self.verbose) and self.verbose >= 0, f"verbose must be a non-negative integer")
        _check(_is_int(self.dataloader_num_workers) and self.dataloader_num_workers >= 0,
               "dataloader_num_workers must be a non-negative integer")
        blocks = self.item_net_block_types
        _check(isinstance(blocks, (tuple, list)) and len(blocks) > 0,
               "item_net_block_types must be a non-empty tuple of item blocks, e.g. (IdEmbeddingsItemNet,)")
        for block in blocks:
            _check(inspect.isclass(block) and issubclass(block, ItemNetBase),
                   f"item_net_block_types: {block!r} is not an item block; allowed: IdEmbeddingsItemNet, "
                   "CatFeaturesItemNet or another ItemNetBase subclass")
        check_layers_type(self.transformer_layers_type)
        _check(self.random_state is None or _is_int(self.random_state),
               f"random_state must be an integer or None, got {self.random_state!r}")
        _check(self.get_trainer_func is None or callable(self.get_trainer_func),
               "get_trainer_func must be a callable returning a lightning Trainer, or None")
        if self.recommend_torch_device is not None:
            try:
                torch.device(self.recommend_torch_device)
            except (RuntimeError, TypeError) as e:
                raise ValueError(f"recommend_torch_device {self.recommend_torch_device!r} is not a torch device: {e}")

    # ----------------------------------------------------------------- model-specific hooks
    def _train_window(self) -> int:
        """Number of most recent items of a user that one training sample uses."""
        raise NotImplementedError

    def _training_batch(self, window: torch.Tensor, n_items: int) -> tp.Tuple[torch.Tensor, torch.Tensor]:
        """Right-padded item tokens ``(B, W)`` of a catalog of ``n_items`` -> input tokens ``(B, L)``, targets ``(B, L)`` (-1 = none)."""
        raise NotImplementedError

    def _inference_tokens(self, indptr: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Histories in CSR form (model item ids) -> right-padded tokens ``(B, L)`` whose last real
        token carries the user's vector."""
        raise NotImplementedError

    # ----------------------------------------------------------------- fit
    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet: call fit(dataset) first")

    def _build_net(self, dataset: Dataset) -> TransformerNet:
        item_net = SumItemNet.from_dataset(dataset, self.n_factors, tuple(self.item_net_block_types))
        return TransformerNet(
            item_net,
            n_factors=self.n_factors,
            n_blocks=self.n_blocks,
            n_heads=self.n_heads,
            dropout=self.dropout_rate,
            max_len=self.session_max_len,
            use_pos_emb=self.use_pos_emb,
            use_causal_attn=self.use_causal_attn,
            use_key_padding_mask=self.use_key_padding_mask,
            ff_multiplier=self._ff_multiplier,
            activation=self._activation,
            layers_type=self.transformer_layers_type,
        )

    def _make_trainer(self) -> L.Trainer:
        if self.get_trainer_func is not None:
            return self.get_trainer_func()
        return L.Trainer(
            max_epochs=self.epochs,
            min_epochs=self.epochs,
            deterministic=self.deterministic,
            enable_progress_bar=self.verbose > 0,
            enable_model_summary=self.verbose > 1,
            logger=False,
            enable_checkpointing=False,
            devices=1,
        )

    def fit(self, dataset: Dataset) -> "TransformerModelBase":
        """Train from scratch on ``dataset`` (a second call starts afresh)."""
        self._validate_params()
        if not isinstance(dataset, Dataset):
            raise TypeError(f"fit expects a seqrec Dataset (Dataset.construct(df)), got {type(dataset).__name__}")
        if dataset.n_items < 2:
            raise ValueError(f"The dataset has {dataset.n_items} item(s); at least 2 are needed to learn a ranking")
        for attr in ("net_", "item_id_map_"):
            self.__dict__.pop(attr, None)
        lengths = dataset.interactions.lengths
        train_users = np.flatnonzero(lengths >= max(self.train_min_user_interactions, 2))
        if len(train_users) == 0:
            raise ValueError(
                f"No user has at least {max(self.train_min_user_interactions, 2)} interactions "
                "(train_min_user_interactions): nothing to train on"
            )
        if self.random_state is not None:
            seed = int(self.random_state)
        elif self.deterministic:
            seed = 0
        else:
            seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
        with torch.random.fork_rng(devices=[]), _quiet_lightning(self.verbose):
            torch.manual_seed(seed)
            net = self._build_net(dataset)
            # training item counts: the sampling distribution of popularity negatives
            item_counts = (np.bincount(dataset.interactions.items, minlength=dataset.n_items)
                           if self.negative_sampling == "popularity" else None)
            module = SeqRecModule(net, self._training_batch, self.loss, self.n_negatives, self.gbce_t, self.lr,
                                  verbose=self.verbose, negative_sampling=self.negative_sampling,
                                  item_counts=item_counts, softmax_chunk_size=self.softmax_chunk_size,
                                  precision=self.precision, torch_compile=self.torch_compile,
                                  lr_schedule=self.lr_schedule)
            # "all": windows step back by session_max_len items, the number of targets of a window
            stride = self.session_max_len if self.train_windows == "all" else None
            samples = WindowDataset(dataset.interactions, train_users, self._train_window(), stride)
            loader = make_dataloader(samples, self.batch_size, shuffle=True, seed=seed,
                                     num_workers=self.dataloader_num_workers)
            trainer = self._make_trainer()
            trainer.fit(module, train_dataloaders=loader)
        self.net_ = net.cpu().eval()
        self.item_id_map_ = dataset.item_id_map
        return self

    # ----------------------------------------------------------------- recommend
    def _device(self) -> torch.device:
        if self.recommend_torch_device is not None:
            return torch.device(self.recommend_torch_device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _model_items_of(self, dataset: Dataset) -> np.ndarray:
        """Model item id of each dataset item id (-1 where the model does not know the item)."""
        if dataset.item_id_map == self.item_id_map_:
            return np.arange(dataset.n_items, dtype=np.int64)
        return self.item_id_map_.to_internal(dataset.item_id_map.external_ids, strict=False)

    def recommend(
        self,
        users: tp.Sequence[tp.Hashable],
        dataset: Dataset,
        k: int,
        filter_viewed: bool,
        items_to_recommend: tp.Optional[tp.Sequence[tp.Hashable]] = None,
        add_rank_col: bool = True,
        on_unsupported_targets: str = "raise",
    ) -> pd.DataFrame:
        """Top-``k`` items for each of ``users`` from their histories in ``dataset``.

        A user is supported when ``dataset`` holds at least one of their interactions with an
        item the model knows (users unseen at fit time included); the others are handled by
        ``on_unsupported_targets``: "raise" (ValueError), "warn" (dropped with a warning) or
        "ignore" (dropped). ``filter_viewed`` removes the items of each user's history in
        ``dataset``; ``items_to_recommend`` restricts the candidates (unknown ids are ignored).

        Returns a DataFrame ``user_id, item_id, score[, rank]`` with external ids, users in the
        order given, items by decreasing score (``rank`` 1..k). A user may get fewer than ``k``
        rows when fewer candidates remain.
        """
        self._check_fitted()
        if not isinstance(dataset, Dataset):
            raise TypeError(f"recommend expects a seqrec Dataset, got {type(dataset).__name__}")
        _check(_is_int(k) and k > 0, f"k must be a positive integer, got {k!r}")
        _check(on_unsupported_targets in ON_UNSUPPORTED,
               f"on_unsupported_targets must be one of {ON_UNSUPPORTED}, got {on_unsupported_targets!r}")
        users_ext = pd.unique(pd.Series(list(users) if not isinstance(users, (np.ndarray, pd.Series, pd.Index))
                                        else users))
        user_rows = dataset.user_id_map.to_internal(users_ext, strict=False)
        model_items = self._model_items_of(dataset)
        known_rows = np.where(user_rows >= 0, user_rows, 0)
        indptr, items = take_rows(dataset.interactions.indptr, dataset.interactions.items, known_rows, model_items)
        has_history = (np.diff(indptr) > 0) & (user_rows >= 0)
        if not has_history.all():
            bad = users_ext[~has_history]
            message = (f"{len(bad)} user(s) have no interactions with items known to the model in the given "
                       f"dataset, e.g. {bad[:5].tolist()}")
            if on_unsupported_targets == "raise":
                raise ValueError(message + "; pass on_unsupported_targets='warn' or 'ignore' to drop them")
            if on_unsupported_targets == "warn":
                warnings.warn(message + "; they are dropped", stacklevel=2)
            users_ext = users_ext[has_history]
            indptr, items = take_rows(indptr, items, np.flatnonzero(has_history))

        candidates = None
        if items_to_recommend is not None:
            cand = self.item_id_map_.to_internal(pd.unique(pd.Series(list(items_to_recommend))), strict=False)
            candidates = np.sort(cand[cand >= 0])
        device = self._device()
        try:
            user_idx, item_idx, scores = self._rank(self.net_.to(device), indptr, items, k, filter_viewed,
                                                    candidates, device)
        finally:
            self.net_.cpu()
        reco = pd.DataFrame({
            Columns.User: users_ext[user_idx],
            Columns.Item: self.item_id_map_.to_external(item_idx),
            Columns.Score: scores,
        })
        if add_rank_col:
            reco[Columns.Rank] = ranks_in_runs(user_idx)
        return reco

    @torch.no_grad()
    def _rank(self, net: TransformerNet, indptr: np.ndarray, items: np.ndarray, k: int, filter_viewed: bool,
              candidates: tp.Optional[np.ndarray], device: torch.device
              ) -> tp.Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k of ``net`` (already on ``device``) for histories in CSR form (model item ids).

        Batched scoring and top-k on the device; filtering is a mask, never a dense host matrix.
        Returns row in ``indptr``, model item id and score of each recommendation.
        """
        n_items = net.n_items
        n_users = len(indptr) - 1
        k_eff = min(k, n_items if candidates is None else len(candidates))
        if k_eff == 0 or n_users == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        was_training = net.training
        net.eval()
        table = net.item_table()  # (n_items, d)
        if candidates is None:
            cand_table = table
            cand_items = torch.arange(n_items, device=device)
            column_of = None
        else:
            cand_items = torch.as_tensor(candidates, device=device)
            cand_table = table[cand_items]  # (C, d)
            column_of = np.full(n_items, -1, dtype=np.int64)
            column_of[candidates] = np.arange(len(candidates))
        out_u, out_i, out_s = [], [], []
        # users sorted by history length, so that a batch's sequences have similar lengths and
        # last_vectors can cut the padding columns; the requested order is restored at the end
        by_length = np.argsort(np.diff(indptr), kind="stable")
        for start in range(0, n_users, self.recommend_batch_size):
            rows = by_length[start:start + self.recommend_batch_size]
            b_indptr, b_items = take_rows(indptr, items, rows)
            tokens = torch.from_numpy(self._inference_tokens(b_indptr, b_items)).to(device)
            user_vecs = net.last_vectors(tokens, table)  # (B, d)
            scores = user_vecs @ cand_table.T  # (B, C)
            if filter_viewed:
                seen_rows = np.repeat(np.arange(len(rows)), np.diff(b_indptr))
                seen_cols = b_items if column_of is None else column_of[b_items]
                keep = seen_cols >= 0
                scores[torch.as_tensor(seen_rows[keep], device=device),
                       torch.as_tensor(seen_cols[keep], device=device)] = float("-inf")
            top_scores, top_cols = torch.topk(scores, k_eff, dim=1)  # (B, k)
            top_items = cand_items[top_cols]
            ok = torch.isfinite(top_scores)
            row_ids = torch.as_tensor(rows, device=device).unsqueeze(1).expand_as(top_cols)
            out_u.append(row_ids[ok].cpu().numpy())
            out_i.append(top_items[ok].cpu().numpy())
            out_s.append(top_scores[ok].float().cpu().numpy())
        net.train(was_training)
        user_idx = np.concatenate(out_u)
        order = np.argsort(user_idx, kind="stable")  # requested order; ranks stay in order inside a user
        return user_idx[order], np.concatenate(out_i)[order], np.concatenate(out_s)[order]


@contextlib.contextmanager
def _quiet_lightning(verbose: int) -> tp.Iterator[None]:
    """Silence Lightning's info banners (GPU available, etc.) unless verbose > 1."""
    if verbose > 1:
        yield
        return
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning",
                                              "lightning.pytorch.utilities.rank_zero")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
            warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


