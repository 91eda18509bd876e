"""What SASRec and BERT4Rec share: parameters and their checks, ``fit`` and ``recommend``.

The model files (``sasrec.py``, ``bert4rec.py``) hold what makes each model itself: how a
training batch is made from item windows and how a user's history becomes inference tokens.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import logging
import math
import os
import threading
import typing as tp
import warnings

import lightning.pytorch as L
import numpy as np
import pandas as pd
import torch

from .. import ann, config, export, persistence, training
from ..batching import keep_entries, ranks_in_runs, slice_positions, take_rows
from ..columns import Columns
from ..dataset import Dataset, DenseFeatures, IdMap, Interactions, take_feature_rows
from ..nn.item_net import DenseFeaturesItemNet, ItemNetBase, SumItemNet
from ..nn.losses import LOSSES, NEGATIVE_SAMPLING, plan_softmax
from ..nn.layers import ACTIVATIONS, check_layers_type
from ..nn.transformer import TransformerNet
from ..persistence import checkpoint_meta
from ..presets import get_preset, preset_names
from ..ranking import SIMILARITIES, DistanceSimilarityModule, rank_items, rank_users
from ..training import (LR_SCHEDULES, PRECISIONS, ValidationSamples, WindowDataset, lightning_namespace,
                        make_best_weights, make_dataloader, make_history, make_module)
from ..validation import split_validation, validation_mask

ON_UNSUPPORTED = ("raise", "warn", "ignore")
TRAIN_WINDOWS = ("last", "all")
TrainerFactory = tp.Callable[[], L.Trainer]


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit`` (a ValueError and an AttributeError, as scikit-learn's)."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _is_int(value: tp.Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: tp.Any) -> bool:
    """A finite real number (not a bool)."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value))


def _is_flag(value: tp.Any) -> bool:
    return isinstance(value, (bool, np.bool_))


class TransformerModelBase:
    """Shared machinery of the transformer models. Subclasses define ``__init__`` (their parameters),
    the network shape (``_ff_multiplier``, ``_activation``), ``_train_window``, ``_training_batch``
    and ``_inference_tokens``."""

    _ff_multiplier = 1
    _activation = "relu"
    _preset_prefix = ""  # the model's prefix in seqrec.presets ("sasrec", "bert4rec")
    _default_similarity = "dot"  # what RecTools' similarity_module_kwargs without "distance" mean
    # the names under which the losses are logged (RecTools' attributes)
    train_loss_name = "train_loss"
    val_loss_name = "val_loss"

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

    def get_params(self, deep: bool = True, simple_types: bool = False, sep: str = ".") -> tp.Dict[str, tp.Any]:
        """Constructor parameters: as in scikit-learn by default (``cls(**model.get_params())`` clones);
        with ``simple_types=True`` as in RecTools: the flat config (nested keys joined by ``sep``,
        ``"cls"`` included) with JSON-able values."""
        if simple_types:
            return config.flatten(self.get_config(simple_types=True), sep)
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: tp.Any) -> "TransformerModelBase":
        """Set constructor parameters (validated), as in scikit-learn."""
        allowed = self._param_names()
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(f"Unknown parameter(s) {unknown} for {type(self).__name__}; allowed: {allowed}")
        old = {name: getattr(self, name) for name in params}
        for name, value in params.items():
            setattr(self, name, value)
        try:
            self._validate_params()
        except Exception:
            # a refused value is not left set: the model stays as it was
            for name, value in old.items():
                setattr(self, name, value)
            raise
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
        _check(_is_number(self.dropout_rate) and 0 <= self.dropout_rate < 1,
               f"dropout_rate must be in [0, 1), got {self.dropout_rate!r}")
        self._check_choice("loss", LOSSES)
        _check(_is_int(self.n_negatives) and self.n_negatives > 0,
               f"n_negatives must be a positive integer, got {self.n_negatives!r}")
        _check(_is_number(self.gbce_t) and 0 <= self.gbce_t <= 1,
               f"gbce_t must be in [0, 1], got {self.gbce_t!r}")
        _check(_is_number(self.lr) and self.lr > 0, f"lr must be a positive finite number, got {self.lr!r}")
        self._check_choice("negative_sampling", NEGATIVE_SAMPLING)
        _check(self.softmax_chunk_size is None or (_is_int(self.softmax_chunk_size) and self.softmax_chunk_size > 0),
               f"softmax_chunk_size must be a positive integer or None (automatic), got {self.softmax_chunk_size!r}")
        self._check_choice("precision", PRECISIONS)
        for name in ("torch_compile", "deterministic", "use_pos_emb", "use_causal_attn", "use_key_padding_mask"):
            _check(_is_flag(getattr(self, name)), f"{name} must be True or False, got {getattr(self, name)!r}")
        self._check_choice("train_windows", TRAIN_WINDOWS)
        self._check_choice("lr_schedule", LR_SCHEDULES)
        _check(_is_int(self.verbose) and self.verbose >= 0, f"verbose must be a non-negative integer, got {self.verbose!r}")
        _check(_is_int(self.dataloader_num_workers) and self.dataloader_num_workers >= 0,
               f"dataloader_num_workers must be a non-negative integer, got {self.dataloader_num_workers!r}")
        blocks = self.item_net_block_types
        _check(isinstance(blocks, (tuple, list)) and len(blocks) > 0,
               f"item_net_block_types must be a non-empty tuple of item blocks, e.g. (IdEmbeddingsItemNet,), got "
               f"{blocks!r}")
        for block in blocks:
            _check(inspect.isclass(block) and issubclass(block, ItemNetBase),
                   f"item_net_block_types: {block!r} is not an item block; allowed: IdEmbeddingsItemNet, "
                   "CatFeaturesItemNet or another ItemNetBase subclass")
        check_layers_type(self.transformer_layers_type)
        self.transformer_layers_type.check_options(self.transformer_layers_kwargs)
        _check(self.random_state is None or (_is_int(self.random_state) and self.random_state >= 0),
               f"random_state must be a non-negative integer or None, got {self.random_state!r}")
        _check(self._activation in ACTIVATIONS,
               f"{type(self).__name__}._activation {self._activation!r} is unknown; allowed: {tuple(ACTIVATIONS)}")
        _check(self.get_trainer_func is None or callable(self.get_trainer_func),
               f"get_trainer_func must be a callable returning a lightning Trainer, or None, got {self.get_trainer_func!r}")
        self._check_choice("similarity", SIMILARITIES)
        if self.similarity_module_type is not None or self.similarity_module_kwargs:
            _check(self.similarity_module_type in (None, DistanceSimilarityModule),
                   f"similarity_module_type must be DistanceSimilarityModule (or None), got "
                   f"{self.similarity_module_type!r}; other similarity modules are not supported")
            kwargs = self.similarity_module_kwargs or {}
            _check(isinstance(kwargs, dict) and set(kwargs) <= {"distance"},
                   f"similarity_module_kwargs must be a dict with the only key 'distance', got {kwargs!r}")
            distance = kwargs.get("distance", self._default_similarity)
            _check(distance in SIMILARITIES, f"similarity_module_kwargs: unknown distance {distance!r}; "
                   f"allowed: {SIMILARITIES}")
            _check(self.similarity in (self._default_similarity, distance),
                   f"similarity={self.similarity!r} contradicts similarity_module_kwargs distance {distance!r}")
        _check(self.get_val_mask_func is None or callable(self.get_val_mask_func),
               f"get_val_mask_func must be a callable (interactions DataFrame -> boolean mask), or None, got "
               f"{self.get_val_mask_func!r}")
        for name in ("get_val_mask_func_kwargs", "get_trainer_func_kwargs"):
            value = getattr(self, name)
            _check(value is None or (isinstance(value, dict) and all(isinstance(k, str) for k in value)),
                   f"{name} must be a dict of keyword arguments or None, got {value!r}")
        _check(_is_int(self.val_k) and self.val_k > 0, f"val_k must be a positive integer, got {self.val_k!r}")
        monitors = ("val_loss", f"val_ndcg@{self.val_k}", f"val_hr@{self.val_k}")
        _check(self.early_stopping is None or self.early_stopping in monitors,
               f"Unknown early_stopping {self.early_stopping!r}; allowed: None or one of {monitors}")
        _check(_is_int(self.early_stopping_patience) and self.early_stopping_patience > 0,
               f"early_stopping_patience must be a positive integer, got {self.early_stopping_patience!r}")
        if self.recommend_torch_device is not None:
            _check(isinstance(self.recommend_torch_device, (str, torch.device)),
                   f"recommend_torch_device must be a device name (e.g. 'cpu', 'cuda:0'), a torch.device or None, "
                   f"got {self.recommend_torch_device!r}")
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

    # models whose network reads interaction times (HSTU) override these; the others never compute times
    def _uses_times(self) -> bool:
        """Whether the network reads interaction times (then windows and inference inputs carry them)."""
        return False

    def _sequence_times(self, interactions: Interactions, positions: np.ndarray) -> np.ndarray:
        """The times the network reads of the interactions at CSR ``positions``, ``(n,)`` int64."""
        return interactions.times[positions]

    def _inference_extras(self, indptr: np.ndarray, times: np.ndarray, query_times: np.ndarray
                          ) -> tp.Tuple[np.ndarray, ...]:
        """Inputs of the network after the tokens for histories (CSR ``indptr`` with the ``times`` of
        their entries) asked at ``query_times`` ``(B,)``; none unless the model uses times."""
        return ()

    def _request_times(self, dataset: Dataset, users: np.ndarray, indptr: np.ndarray, times: np.ndarray,
                       context: tp.Optional[pd.DataFrame]) -> np.ndarray:
        """The time of each recommendation request ``(B,)``, from ``context`` (models that use times)."""
        raise NotImplementedError

    def _logits_t(self) -> float:
        """Training logits are divided by this: RecTools' ``lightning_module_kwargs={"logits_t": t}``
        for a model that takes that parameter (HSTU), else 1."""
        return float((getattr(self, "lightning_module_kwargs", None) or {}).get("logits_t", 1.0))

    @property
    def require_recommend_context(self) -> bool:
        """Whether ``recommend`` reads ``context`` (RecTools' name): False, except HSTU with time attention."""
        return False

    # ----------------------------------------------------------------- fit
    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet: call fit(dataset) first")

    @property
    def torch_model(self) -> TransformerNet:
        """The trained network (RecTools' name)."""
        self._check_fitted()
        return self.net_

    def _similarity(self) -> str:
        """The similarity in force: ``similarity``, or what RecTools' spelling
        (``similarity_module_type=DistanceSimilarityModule, similarity_module_kwargs={"distance": ...}``) says."""
        if self.similarity_module_type is None and not self.similarity_module_kwargs:
            return self.similarity
        return (self.similarity_module_kwargs or {}).get("distance", self._default_similarity)

    def _build_net(self, dataset: Dataset) -> TransformerNet:
        item_net = SumItemNet.from_dataset(dataset, self.n_factors, tuple(self.item_net_block_types))
        return self._net_from_item_net(item_net)

    def _net_from_item_net(self, item_net: SumItemNet) -> TransformerNet:
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
            layers_options=self.transformer_layers_kwargs,
        )

    def _make_trainer(self, max_epochs: tp.Optional[int] = None, min_epochs: tp.Optional[int] = None) -> tp.Any:
        """The trainer of one fit: ``get_trainer_func()`` or seqrec's default (no logger, no
        checkpoints, progress bar with ``verbose``); ``max_epochs``/``min_epochs`` set for fit_partial."""
        template = self.__dict__.get("_trainer")
        if template is not None or self.get_trainer_func is not None:
            # RecTools users may also assign a trainer to `_trainer`: each fit trains a copy of it
            trainer = (copy.deepcopy(template) if template is not None
                       else self.get_trainer_func(**(self.get_trainer_func_kwargs or {})))
            ns = lightning_namespace(trainer)
            if not isinstance(trainer, ns.Trainer):
                raise TypeError(f"get_trainer_func must return a lightning Trainer (lightning.pytorch.Trainer or "
                                f"pytorch_lightning.Trainer), got {type(trainer).__name__}")
            if max_epochs is not None:
                trainer.fit_loop.max_epochs = max_epochs
                trainer.fit_loop.min_epochs = min_epochs if min_epochs is not None else max_epochs
            return trainer
        epochs = self.epochs if max_epochs is None else max_epochs
        stopping = self.early_stopping is not None
        return L.Trainer(
            max_epochs=epochs,
            # early stopping may only stop a trainer that has no (larger) minimum
            min_epochs=1 if stopping else (epochs if min_epochs is None else min_epochs),
            deterministic=self.deterministic,
            enable_progress_bar=self.verbose > 0,
            enable_model_summary=self.verbose > 1,
            logger=False,
            enable_checkpointing=False,
            num_sanity_val_steps=0,
            devices=1,
        )

    def _new_seed(self) -> int:
        if self.random_state is not None:
            return int(self.random_state)
        if self.deterministic:
            return 0
        return int(np.random.SeedSequence().generate_state(1)[0] >> 1)

    def _check_dataset(self, dataset: tp.Any, what: str) -> None:
        if not isinstance(dataset, Dataset):
            raise TypeError(f"{what} expects a seqrec Dataset (Dataset.construct(df)), got {type(dataset).__name__}")

    def fit(self, dataset: Dataset, checkpoint_dir: tp.Optional[tp.Union[str, "os.PathLike[str]"]] = None,
            resume: bool = False) -> "TransformerModelBase":
        """Train from scratch on ``dataset`` (a second call starts afresh) for ``epochs`` epochs, or
        what the trainer of ``get_trainer_func`` says.

        With ``checkpoint_dir``, a checkpoint of the run is written atomically to
        ``checkpoint_dir/last.ckpt`` after every epoch (``load_from_checkpoint`` reads it). With
        ``resume=True`` as well, a run that was interrupted continues from that file, if there is
        one, for the epochs left: the same command after a crash or preemption gives the model an
        uninterrupted run would have (same seed; identical on CPU).
        """
        self._validate_params()
        self._check_dataset(dataset, "fit")
        path = training.checkpoint_path(checkpoint_dir, resume, self.early_stopping, self.lr_schedule)
        self._reset()
        with _quiet_lightning(self.verbose):
            trainer = self._make_trainer()
        if resume and os.path.exists(path):
            persistence.restore_checkpoint(self, path)
            if not training.continue_trainer(trainer, self.epochs_done_):
                return self  # the checkpoint is of the finished run
        self._train(dataset, trainer, path)
        return self

    def fit_partial(self, dataset: Dataset, min_epochs: tp.Optional[int] = None,
                    max_epochs: tp.Optional[int] = None,
                    checkpoint_dir: tp.Optional[tp.Union[str, "os.PathLike[str]"]] = None) -> "TransformerModelBase":
        """Continue training from the current weights and optimizer state for ``max_epochs`` epochs
        (default 1; at least ``min_epochs``, default ``max_epochs``, unless early stopping stops it).

        On an unfitted model the first call initialises it as ``fit`` does. Epoch ``e`` of the whole
        run sees the same shuffling and random draws however the epochs are split between calls,
        so ``fit_partial`` for 2 epochs then 1 equals ``fit`` with ``epochs=3`` (same seed, CPU).
        The catalog stays the one of the first fit: items ``dataset`` adds are not learned.
        ``checkpoint_dir`` writes ``checkpoint_dir/last.ckpt`` after every epoch, as in ``fit``.
        """
        self._validate_params()
        self._check_dataset(dataset, "fit_partial")
        path = training.checkpoint_path(checkpoint_dir)
        max_epochs = 1 if max_epochs is None else max_epochs
        _check(_is_int(max_epochs) and max_epochs > 0, f"max_epochs must be a positive integer, got {max_epochs!r}")
        min_epochs = max_epochs if min_epochs is None else min_epochs
        _check(_is_int(min_epochs) and 0 < min_epochs <= max_epochs,
               f"min_epochs must be a positive integer <= max_epochs ({max_epochs}), got {min_epochs!r}")
        if not hasattr(self, "net_"):
            self._reset()
        trainer = self.__dict__.get("fit_trainer")
        if trainer is not None:
            # as RecTools: the trainer of the last fit goes on, its epoch count with it
            trainer.fit_loop.max_epochs = trainer.current_epoch + max_epochs
            trainer.fit_loop.min_epochs = trainer.current_epoch + min_epochs
        else:
            with _quiet_lightning(self.verbose):
                trainer = self._make_trainer(max_epochs=max_epochs, min_epochs=min_epochs)
        self._train(dataset, trainer, path)
        return self

    def _reset(self) -> None:
        for attr in _FITTED_ATTRS:
            self.__dict__.pop(attr, None)

    def _training_data(self, dataset: Dataset, mask: tp.Optional[np.ndarray]
                       ) -> tp.Tuple[Interactions, np.ndarray]:
        """What training reads: the interactions of the users trained on (validation rows removed),
        in model item ids, and the model item of each dataset item (-1: unknown to the model).

        The model's catalog, chosen at the first fit, is the set of items of the training samples
        (with ``train_windows="last"`` each user's last ``_train_window()`` items, as in RecTools):
        an item seen only where training never looks is unknown to the model.
        """
        inter = dataset.interactions
        indptr, kept = inter.indptr, None
        if mask is not None:
            indptr, kept = keep_entries(indptr, np.arange(len(inter)), ~mask)  # CSR positions kept
        lengths = np.diff(indptr)
        if self.train_min_user_interactions < 2:
            warnings.warn(f"train_min_user_interactions={self.train_min_user_interactions}: a user needs 2 interactions "
                          "to give a training sample (an item to read and one to predict); users with fewer are not "
                          "trained on, as with 2", UserWarning, stacklevel=4)
        min_len = max(self.train_min_user_interactions, 2)
        users = np.flatnonzero(lengths >= min_len)
        if len(users) == 0:
            raise ValueError(f"No user has at least {min_len} training interactions "
                             "(train_min_user_interactions): nothing to train on")
        if self.train_windows == "last":
            # only the most recent items of a user are ever read: keep just those
            starts = np.maximum(indptr[users], indptr[users + 1] - self._train_window())
            sub_indptr, positions = slice_positions(starts, indptr[users + 1] - starts)
        else:
            sub_indptr, positions = slice_positions(indptr[users], lengths[users])
        if kept is not None:
            positions = kept[positions]  # positions in dataset.interactions
        sub_items = inter.items[positions]
        if hasattr(self, "item_id_map_"):
            model_of = self._model_items_of(dataset)
        else:
            catalog = np.unique(sub_items)  # dataset item ids, in the dataset's order
            model_of = np.full(dataset.n_items, -1, dtype=np.int64)
            model_of[catalog] = np.arange(len(catalog))
        sub_items = model_of[sub_items]
        known = sub_items >= 0
        sub_indptr, sub_items = keep_entries(sub_indptr, sub_items, known)
        # times only for a model that reads them (HSTU); the others carry zeros
        times = (self._sequence_times(inter, positions[known]) if self._uses_times()
                 else np.zeros(len(sub_items), np.int64))
        train = Interactions(indptr=sub_indptr, items=sub_items, weights=np.ones(len(sub_items), np.float32),
                             times=times)
        return train, model_of

    def _catalog_dataset(self, dataset: Dataset, catalog: np.ndarray, train: Interactions) -> Dataset:
        """``dataset`` seen from the model's catalog (dataset item ids in model order): the item
        blocks are built from it."""
        return Dataset(
            user_id_map=IdMap(np.arange(train.n_users)),
            item_id_map=IdMap(dataset.item_id_map.to_external(catalog)),
            interactions=train,
            item_features=take_feature_rows(dataset.item_features, catalog, drop_unused_columns=True),
        )

    def _validation_samples(self, dataset: Dataset, mask: np.ndarray, model_of: np.ndarray
                            ) -> tp.Optional[ValidationSamples]:
        inter = dataset.interactions
        rows, target_pos, n_history = split_validation(inter.indptr, mask)
        targets = model_of[inter.items[target_pos]]
        # the history: the user's training interactions before the target, in model item ids
        train_indptr, train_pos = keep_entries(inter.indptr, np.arange(len(inter)), ~mask)
        h_indptr, positions = slice_positions(train_indptr[rows], n_history)
        h_pos = train_pos[positions]  # positions in dataset.interactions
        h_items = model_of[inter.items[h_pos]]
        known = h_items >= 0  # items unknown to the model are dropped
        h_indptr, h_items = keep_entries(h_indptr, h_items, known)
        h_pos = h_pos[known]
        ok = (targets >= 0) & (np.diff(h_indptr) > 0)  # a known target and a history to predict it from
        if not ok.any():
            return None
        ok_rows = np.flatnonzero(ok)
        _, h_pos = take_rows(h_indptr, h_pos, ok_rows)
        h_indptr, h_items = take_rows(h_indptr, h_items, ok_rows)
        tokens = self._inference_tokens(h_indptr, h_items)
        extras: tp.Tuple[np.ndarray, ...] = ()
        if self._uses_times():
            # the history's times, asked at the time of the validation target
            extras = self._inference_extras(h_indptr, self._sequence_times(inter, h_pos),
                                            self._sequence_times(inter, target_pos[ok_rows]))
        return ValidationSamples(tokens, targets[ok], h_indptr, h_items, extras)

    def _softmax_plan(self, trainer: tp.Any, n_items: int) -> tp.Any:
        """The full-softmax path of this fit (None for the other losses), chosen once for the largest
        step (a training batch of ``batch_size`` windows of ``session_max_len`` positions, or a
        validation batch), so that free memory changing during the run cannot switch the path."""
        if self.loss != "softmax":
            return None
        try:
            device = torch.device(trainer.strategy.root_device)
        except (AttributeError, RuntimeError, TypeError):
            device = torch.device("cpu")
        max_rows = max(self.batch_size * self.session_max_len, self.recommend_batch_size)
        return plan_softmax(max_rows, n_items, device, self.softmax_chunk_size)

    def _train(self, dataset: Dataset, trainer: tp.Any, checkpoint: tp.Optional[str] = None) -> None:
        training.check_launcher(trainer)
        mask = None
        if self.get_val_mask_func is not None:
            mask = validation_mask(dataset, functools.partial(self.get_val_mask_func,
                                                              **(self.get_val_mask_func_kwargs or {})))
        elif self.early_stopping is not None:
            raise ValueError("early_stopping needs validation targets: pass get_val_mask_func "
                             "(e.g. seqrec.leave_one_out_mask)")
        fresh = not hasattr(self, "net_")
        dense_used = (isinstance(dataset.item_features, DenseFeatures)
                      and any(issubclass(b, DenseFeaturesItemNet) for b in self.item_net_block_types))
        if fresh and not dense_used:
            _warn_numeric_item_features(dataset)
        train, model_of = self._training_data(dataset, mask)
        if fresh:
            self.train_seed_ = self._new_seed()
            self.epochs_done_ = 0
            self.optimizer_state_ = None
            self.history_ = pd.DataFrame()
            n_catalog = int((model_of >= 0).sum())
            if n_catalog < 2:
                raise ValueError(f"The training data has {n_catalog} item(s); at least 2 are needed to learn a ranking")
        seed = self.train_seed_
        ns = lightning_namespace(trainer)
        # epochs trained before this trainer's first: a reused trainer (fit_partial) counts them itself
        offset = self.epochs_done_ - trainer.current_epoch
        with torch.random.fork_rng(devices=[]), _quiet_lightning(self.verbose):
            torch.manual_seed(seed)
            if fresh:
                catalog = np.flatnonzero(model_of >= 0)[np.argsort(model_of[model_of >= 0])]
                net = self._build_net(self._catalog_dataset(dataset, catalog, train))
                item_id_map = IdMap(dataset.item_id_map.to_external(catalog))
            else:
                net, item_id_map = self.net_, self.item_id_map_
            net.train()  # the fitted network is kept in eval mode; Lightning keeps the mode it finds
            # training item counts: the sampling distribution of popularity negatives
            item_counts = (np.bincount(train.items, minlength=net.n_items)
                           if self.negative_sampling == "popularity" else None)
            plan = None if fresh or self.softmax_chunk_size is not None else self.__dict__.get("softmax_plan_")
            # continued training keeps the path of the first fit
            self.softmax_plan_ = plan if plan is not None and self.loss == "softmax" else (
                self._softmax_plan(trainer, net.n_items))
            module = make_module(
                ns, net, self._training_batch, self.loss, self.n_negatives, self.gbce_t, self.lr,
                verbose=self.verbose, negative_sampling=self.negative_sampling, item_counts=item_counts,
                softmax_chunk_size=self.softmax_plan_.chunk if self.softmax_plan_ else None, precision=self.precision,
                torch_compile=self.torch_compile, lr_schedule=self.lr_schedule, similarity=self._similarity(),
                val_k=self.val_k, seed=seed, epoch_offset=offset, optimizer_state=self.optimizer_state_,
                logits_t=self._logits_t(),
                checkpoint_meta=functools.partial(checkpoint_meta, self, net, item_id_map),
            )
            # "all": windows step back by session_max_len items, the number of targets of a window
            stride = self.session_max_len if self.train_windows == "all" else None
            samples = WindowDataset(train, np.arange(train.n_users), self._train_window(), stride,
                                    with_times=self._uses_times())
            loader = make_dataloader(samples, self.batch_size, shuffle=True, seed=seed,
                                     num_workers=self.dataloader_num_workers, offset=offset)
            val_loader = None
            if mask is not None:
                val = self._validation_samples(dataset, mask, model_of)
                if val is None:
                    raise ValueError("get_val_mask_func: no validation target is an item known to the model "
                                     "with a training history before it")
                val_loader = make_dataloader(val, self.recommend_batch_size, shuffle=False, seed=seed)
            history = make_history(ns, offset)
            callbacks = [history]
            stopper = None
            if self.early_stopping is not None:
                stopper = make_best_weights(ns, self.early_stopping, self.early_stopping_patience, offset)
                callbacks.append(stopper)
            if checkpoint is not None:
                callbacks.append(training.make_epoch_checkpoint(ns, checkpoint))
            trainer.callbacks.extend(callbacks)
            try:
                trainer.fit(module, train_dataloaders=loader, val_dataloaders=val_loader)
            finally:
                for cb in callbacks:
                    trainer.callbacks.remove(cb)
        self.net_ = net.cpu().eval()
        self.item_id_map_ = item_id_map
        self.optimizer_state_ = module.optimizer_state
        self.epochs_done_ += module.epochs_run
        self.history_ = pd.concat([self.history_, history.frame()], ignore_index=True)
        self.best_epoch_ = None if stopper is None else stopper.best_epoch
        self.fit_trainer = trainer
        self.lightning_model = module

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

    def _handle_unsupported(self, bad: np.ndarray, what: str, on_unsupported_targets: str) -> None:
        if len(bad) == 0:
            return
        message = f"{len(bad)} {what}, e.g. {list(bad[:5])}"
        if on_unsupported_targets == "raise":
            raise ValueError(message + "; pass on_unsupported_targets='warn' or 'ignore' to drop them")
        if on_unsupported_targets == "warn":
            warnings.warn(message + "; they are dropped", stacklevel=3)

    def _check_reco_args(self, dataset: tp.Any, k: tp.Any, on_unsupported_targets: str, what: str,
                         **flags: tp.Any) -> None:
        self._check_fitted()
        self._check_dataset(dataset, what)
        _check(_is_int(k) and k > 0, f"k must be a positive integer, got {k!r}")
        _check(isinstance(on_unsupported_targets, str) and on_unsupported_targets in ON_UNSUPPORTED,
               f"on_unsupported_targets must be one of {ON_UNSUPPORTED}, got {on_unsupported_targets!r}")
        for name, value in flags.items():
            if not _is_flag(value):
                raise TypeError(f"{name} must be True or False, got {value!r}")

    def _histories(self, dataset: Dataset, users_ext: np.ndarray, item_map: tp.Optional[np.ndarray] = None
                   ) -> tp.Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The histories ``recommend`` reads for ``users_ext``: CSR ``indptr`` (one row per user, empty
        for users absent from ``dataset``), the model item ids of the entries (items unknown to the
        model skipped) and their positions in ``dataset.interactions``. ``item_map`` maps dataset
        item ids to other ids instead (-1: skipped), e.g. rows of a table with cold items."""
        user_rows = dataset.user_id_map.to_internal(users_ext, strict=False)
        inter = dataset.interactions
        known_rows = np.where(user_rows >= 0, user_rows, 0)
        lengths = np.where(user_rows >= 0, inter.lengths[known_rows], 0)
        indptr, pos = slice_positions(inter.indptr[known_rows], lengths)  # positions in dataset.interactions
        items = (self._model_items_of(dataset) if item_map is None else item_map)[inter.items[pos]]
        known = items >= 0  # items unknown to the model are not read
        indptr, items = keep_entries(indptr, items, known)
        return indptr, items, pos[known]

    @contextlib.contextmanager
    def _inference_net(self) -> tp.Iterator[TransformerNet]:
        """The fitted network on the scoring device in eval mode, for the duration of one recommend call.

        Calls from several threads share it: the first moves it to the device (and to eval mode),
        the last puts it back on the CPU in its former mode, so no call sees another move or
        switch it while it scores."""
        lock = self.__dict__.setdefault("_inference_lock", threading.Lock())
        device = self._device()
        with lock:
            users = self.__dict__.get("_inference_users", 0)
            if users == 0:
                self._inference_mode = self.net_.training
                self.net_.eval().to(device)
            self._inference_users = users + 1
        try:
            yield self.net_
        finally:
            with lock:
                self._inference_users -= 1
                if self._inference_users == 0:
                    self.net_.cpu().train(self._inference_mode)

    def recommend(
        self,
        users: tp.Sequence[tp.Hashable],
        dataset: Dataset,
        k: int,
        filter_viewed: bool,
        items_to_recommend: tp.Optional[tp.Sequence[tp.Hashable]] = None,
        add_rank_col: bool = True,
        on_unsupported_targets: str = "raise",
        context: tp.Optional[pd.DataFrame] = None,
        retrieval: str = "exact",
    ) -> pd.DataFrame:
        """Top-``k`` items for each of ``users`` from their histories in ``dataset``.

        A user is supported when ``dataset`` holds at least one of their interactions with an
        item the model knows (users unseen at fit time included); the others are handled by
        ``on_unsupported_targets``: "raise" (ValueError), "warn" (dropped with a warning) or
        "ignore" (dropped). ``filter_viewed`` removes the items of each user's history in
        ``dataset``; ``items_to_recommend`` restricts the candidates (unknown ids are ignored; a
        warning when none is known). Cold items (in ``dataset``'s item features, unknown to the
        model) named in ``items_to_recommend`` are candidates too when the model has a feature
        block that embeds them (``CatFeaturesItemNet``, ``DenseFeaturesItemNet``), scored by their
        content vectors as in :meth:`recommend_to_items`; without ``items_to_recommend`` the
        candidates are the model's items, as in RecTools. Calls from several threads at once are safe.

        Returns a DataFrame ``user_id, item_id, score[, rank]`` with external ids, users in the
        order given, items by decreasing score (``rank`` 1..k). A user may get fewer than ``k``
        rows when fewer candidates remain. ``context`` (request-time data, RecTools' HSTU) is read
        only by a model whose ``require_recommend_context`` is True; the others warn that they
        ignore it.

        ``retrieval``: "exact" (every candidate scored) or "ann" (an approximate nearest-neighbour
        index of the item table, faiss, extra ``seqrec[ann]``; built once and cached on the model,
        filters honoured by over-fetching, see :mod:`seqrec.ann`; not for models that read request
        times).
        """
        self._check_reco_args(dataset, k, on_unsupported_targets, "recommend", filter_viewed=filter_viewed,
                              add_rank_col=add_rank_col)
        ann.check_retrieval(retrieval)
        if retrieval == "ann" and self._uses_times():
            raise ValueError(f"retrieval='ann' is not available for {type(self).__name__} with relative time "
                             "attention: its user vectors depend on the request time; use retrieval='exact'")
        if context is not None and not self.require_recommend_context:
            warnings.warn(f"{type(self).__name__} does not use context (as in RecTools, it is ignored)", stacklevel=2)
        users_ext = _unique_ids(users, "users")
        inter = dataset.interactions
        indptr, items, pos = self._histories(dataset, users_ext)
        has_history = np.diff(indptr) > 0
        if not has_history.all():
            self._handle_unsupported(users_ext[~has_history], "user(s) have no interactions with items known to the "
                                     "model in the given dataset" + _type_hint(users_ext, dataset.user_id_map),
                                     on_unsupported_targets)
            users_ext = users_ext[has_history]
            _, pos = take_rows(indptr, pos, np.flatnonzero(has_history))
            indptr, items = take_rows(indptr, items, np.flatnonzero(has_history))
        extras_fn = None
        if self._uses_times():
            times = self._sequence_times(inter, pos)  # (nnz,) aligned with items
            query = self._request_times(dataset, users_ext, indptr, times, context)  # (n_users,)

            def extras_fn(rows: np.ndarray) -> tp.Tuple[np.ndarray, ...]:
                b_indptr, b_times = take_rows(indptr, times, rows)
                return self._inference_extras(b_indptr, b_times, query[rows])
        candidates = whitelist = None
        if items_to_recommend is not None:
            whitelist = _unique_ids(items_to_recommend, "items_to_recommend")
            cand = self.item_id_map_.to_internal(whitelist, strict=False)
            candidates = np.sort(cand[cand >= 0])
            if len(candidates) == len(whitelist):
                whitelist = None  # every candidate is in the model's table: no cold item to look up
        with self._inference_net() as net:
            score_table = seen = None
            external = self.item_id_map_.external_ids
            if whitelist is not None:
                # items_to_recommend names items the model does not know: cold items with features it
                # can embed are scored by their content vectors, the others ignored
                with torch.no_grad():
                    score_table, row_of, external = self._table_with_cold_items(net, dataset)  # (n_rows, d)
                rows = row_of(whitelist)
                candidates = np.unique(rows[rows >= 0])
                _warn_no_candidates(whitelist, candidates, dataset.item_id_map)
                if retrieval == "ann" and (candidates >= self.net_.n_items).any():
                    raise ValueError("retrieval='ann' searches the model's item table; items_to_recommend names cold "
                                     "items (scored from their features): use retrieval='exact'")
                if filter_viewed:
                    seen = self._histories(dataset, users_ext, row_of(dataset.item_id_map.external_ids))[:2]
            if retrieval == "ann":
                user_idx, item_idx, scores = ann.rank_users_ann(self, net, indptr, items, k, filter_viewed,
                                                                candidates, self._device(), self.recommend_batch_size)
            else:
                user_idx, item_idx, scores = rank_users(net, self._inference_tokens, indptr, items, k,
                                                        filter_viewed, candidates, self._device(),
                                                        self.recommend_batch_size, self._similarity(), extras_fn,
                                                        score_table, seen)
        reco = pd.DataFrame({
            Columns.User: users_ext[user_idx],
            Columns.Item: external[item_idx] if score_table is not None else self.item_id_map_.to_external(item_idx),
            Columns.Score: scores,
        })
        if add_rank_col:
            reco[Columns.Rank] = ranks_in_runs(user_idx)
        return reco

    def recommend_to_items(
        self,
        target_items: tp.Sequence[tp.Hashable],
        dataset: Dataset,
        k: int,
        filter_itself: bool = True,
        items_to_recommend: tp.Optional[tp.Sequence[tp.Hashable]] = None,
        add_rank_col: bool = True,
        on_unsupported_targets: str = "raise",
    ) -> pd.DataFrame:
        """The ``k`` items most similar to each of ``target_items`` (dot product or cosine of their
        item vectors, as ``similarity`` says), as in RecTools.

        Items the model knows are scored from its item table. Items of ``dataset`` it does not
        know (cold items: in the item features only, or seen only where training never looked)
        get vectors from their categorical features when the model has ``CatFeaturesItemNet``
        and the features have (feature, value) pairs it learned, or from their dense features
        when it has ``DenseFeaturesItemNet``; such items can be targets and candidates. Other targets are unsupported: "raise", "warn" (dropped) or "ignore".
        ``filter_itself`` removes the target from its own list; ``items_to_recommend`` restricts
        the candidates.

        Returns a DataFrame ``target_item_id, item_id, score[, rank]`` with external ids, targets
        in the order given.
        """
        self._check_reco_args(dataset, k, on_unsupported_targets, "recommend_to_items", filter_itself=filter_itself,
                              add_rank_col=add_rank_col)
        targets_ext = _unique_ids(target_items, "target_items")
        with self._inference_net() as net:
            with torch.no_grad():
                table, row_of, external = self._table_with_cold_items(net, dataset)  # (n_rows, d)
            rows = row_of(targets_ext)
            if (rows < 0).any():
                self._handle_unsupported(targets_ext[rows < 0], "target item(s) are unknown to the model and have no "
                                         "features it can embed"
                                         + _type_hint(targets_ext, dataset.item_id_map), on_unsupported_targets)
                targets_ext, rows = targets_ext[rows >= 0], rows[rows >= 0]
            candidates = None
            if items_to_recommend is not None:
                whitelist = _unique_ids(items_to_recommend, "items_to_recommend")
                cand = row_of(whitelist)
                candidates = np.unique(cand[cand >= 0])
                _warn_no_candidates(whitelist, candidates, dataset.item_id_map)
            target_idx, item_idx, scores = rank_items(table, rows, k, filter_itself, candidates,
                                                      self.recommend_batch_size, self._similarity())
        reco = pd.DataFrame({
            Columns.TargetItem: targets_ext[target_idx],
            Columns.Item: external[item_idx],
            Columns.Score: scores,
        })
        if add_rank_col:
            reco[Columns.Rank] = ranks_in_runs(target_idx)
        return reco

    def _table_with_cold_items(self, net: TransformerNet, dataset: Dataset
                               ) -> tp.Tuple[torch.Tensor, tp.Callable[[np.ndarray], np.ndarray], np.ndarray]:
        """The model's item table with the cold items of ``dataset`` it can embed appended; a map of
        external ids to rows (-1: neither known nor embeddable) and the external id of every row."""
        table = net.item_table()  # net is in eval mode (_inference_net)
        known = self._model_items_of(dataset)
        cold = np.flatnonzero(known < 0)  # dataset items the model does not know
        external = self.item_id_map_.external_ids
        embedded = net.item_net.cold_vectors(dataset, cold) if len(cold) else None
        if embedded is not None:
            vectors, ok = embedded
            if ok.any():
                table = torch.cat([table, vectors[torch.as_tensor(np.flatnonzero(ok), device=table.device)]], dim=0)
                cold_ids = dataset.item_id_map.to_external(cold[ok])
                external, cold_ids = np.asarray(external), np.asarray(cold_ids)
                same = external.dtype == cold_ids.dtype  # else object: numpy would turn mixed ids into strings
                external = np.concatenate([external, cold_ids] if same else
                                          [external.astype(object), cold_ids.astype(object)])
        index = pd.Index(external)

        def row_of(ids: np.ndarray) -> np.ndarray:
            return index.get_indexer(pd.Index(ids)).astype(np.int64)

        return table, row_of, np.asarray(external)

    def export_onnx(self, path: tp.Union[str, "os.PathLike[str]"]) -> "export.OnnxExport":
        """Write the encoder to ``path`` (ONNX: tokens ``(batch, session_max_len)`` -> user vectors
        ``(batch, d)``) and the item vectors and ids to ``path + ".items.npz"``; see :mod:`seqrec.export`."""
        return export.export_onnx(self, path)

    # ----------------------------------------------------------------- configs and files
    def get_config(self, mode: str = "dict", simple_types: bool = False) -> tp.Dict[str, tp.Any]:
        """The model's parameters with a ``"cls"`` key naming the class, as in RecTools.

        ``simple_types=True`` gives JSON-able values: classes and functions by registered name.
        """
        return config.get_config(self, mode, simple_types)

    @classmethod
    def from_config(cls, config_: tp.Dict[str, tp.Any]) -> "TransformerModelBase":
        """The model a config describes (``"cls"`` optional; unknown keys are an error)."""
        return config.from_config(cls, config_)

    @classmethod
    def from_params(cls, params: tp.Dict[str, tp.Any], sep: str = ".") -> "TransformerModelBase":
        """The model of flat parameters (nested keys joined by ``sep``, as ``get_params(simple_types=True)`` gives)."""
        return config.from_params(cls, params, sep)

    def save(self, f: tp.Union[str, "os.PathLike[str]", tp.BinaryIO]) -> int:
        """Write the model (fitted or not) to a path or a binary file object; returns the bytes written.

        The file is a zip archive of JSON (config, metadata, ids) and safetensors (weights,
        optimizer state): loading it runs no code. A path is written atomically.
        """
        return persistence.save_model(self, f)

    @classmethod
    def load(cls, f: tp.Union[str, "os.PathLike[str]", tp.BinaryIO],
             map_location: tp.Union[str, torch.device, None] = None) -> "TransformerModelBase":
        """Read a model written by :meth:`save`; it must be of this class."""
        return persistence.load_model(f, map_location=map_location, expected=cls)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: tp.Union[str, "os.PathLike[str]"],
                             map_location: tp.Union[str, torch.device, None] = None) -> "TransformerModelBase":
        """A fitted model rebuilt from a Lightning checkpoint written while it trained."""
        return persistence.load_from_checkpoint(cls, checkpoint_path, map_location)

    def load_weights_from_checkpoint(self, checkpoint_path: tp.Union[str, "os.PathLike[str]"]) -> None:
        """Replace the fitted network's weights by those of a Lightning checkpoint of this model."""
        self._check_fitted()
        persistence.load_weights_from_checkpoint(self, checkpoint_path)

    def __getstate__(self) -> tp.Dict[str, tp.Any]:
        # the trainer and Lightning module of the last fit are not part of the model
        state = self.__dict__.copy()
        state.pop("fit_trainer", None)
        state.pop("lightning_model", None)
        for name in ("_inference_lock", "_inference_users", "_inference_mode"):  # per-process state of recommend
            state.pop(name, None)
        state.pop(ann.CACHE_ATTR, None)  # the ANN index is rebuilt on demand
        return state


_FITTED_ATTRS = ("net_", "item_id_map_", "train_seed_", "epochs_done_", "optimizer_state_", "history_",
                 "best_epoch_", "fit_trainer", "lightning_model", "softmax_plan_", "_ann_index")


def _warn_numeric_item_features(dataset: Dataset) -> None:
    """Without DenseFeaturesItemNet the item blocks embed categorical features only: numeric ones
    are named in a warning."""
    feats = dataset.item_features
    if feats is None:
        return
    if isinstance(feats, DenseFeatures):
        numeric = list(feats.names)
    else:
        numeric = sorted({str(name[0]) for name, cat in zip(feats.names, feats.cat_columns) if not cat})
    if numeric:
        warnings.warn(f"Numeric item features {numeric} are not used: the item blocks embed only the categorical "
                      "features (cat_item_features of Dataset.construct); add DenseFeaturesItemNet to "
                      "item_net_block_types for dense numeric features", UserWarning, stacklevel=4)


def _unique_ids(values: tp.Any, name: str) -> np.ndarray:
    """The distinct ids of ``values`` in order of first appearance; TypeError for a single id or a
    string (which would be read as a sequence of characters), ValueError for missing ids."""
    if isinstance(values, (str, bytes)) or not isinstance(values, tp.Iterable):
        raise TypeError(f"{name} must be a sequence of ids (a list, array or Series), got {type(values).__name__} "
                        f"{values!r}")
    if isinstance(values, pd.DataFrame):
        raise TypeError(f"{name} must be a sequence of ids, got a DataFrame; pass one of its columns")
    if not isinstance(values, (np.ndarray, pd.Series, pd.Index)):
        values = list(values)
    ids = pd.Series(values)
    if ids.isna().any():
        raise ValueError(f"{name} has missing values (NaN/None) at position(s) "
                         f"{np.flatnonzero(ids.isna().to_numpy())[:5].tolist()}")
    return pd.unique(ids)


def _type_hint(given: np.ndarray, id_map: IdMap) -> str:
    """When none of the ``given`` ids is known: what the known ids look like (ints given for string ids...)."""
    if len(given) == 0 or (id_map.to_internal(given, strict=False) >= 0).any() or id_map.size == 0:
        return ""
    return (f" (none of the given ids is known; given ids of type {type(given[0]).__name__}, the dataset's are like "
            f"{id_map.external_ids[:3].tolist()} of type {type(id_map.external_ids[0]).__name__})")


def _warn_no_candidates(whitelist: np.ndarray, candidates: np.ndarray, id_map: IdMap) -> None:
    """items_to_recommend: unknown ids are ignored (as in RecTools); when none is known, a warning."""
    if len(whitelist) and len(candidates) == 0:
        warnings.warn(f"items_to_recommend: none of the {len(whitelist)} item(s) is known to the model, e.g. "
                      f"{whitelist[:5].tolist()}{_type_hint(whitelist, id_map)}; the result is empty", UserWarning,
                      stacklevel=3)


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
            warnings.filterwarnings("ignore", message=".*validation_step` but have no `val_dataloader.*")
            warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


