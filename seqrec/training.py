"""The Lightning layer: the training samples and their sampler, one LightningModule that trains any
seqrec network with any loss (and validates it), and the callbacks of ``fit``: per-epoch history,
early stopping that restores the best weights, and an atomic checkpoint after every epoch.

Under DDP (several processes, ``torch.distributed`` initialised by Lightning) the sampler shards
the epoch's permutation by rank, each rank draws its own dropout masks and negatives, the
validation metrics are weighted means gathered over the ranks (padding samples weigh nothing),
and early stopping decides once for all ranks.

The module and callbacks are written once, as mixins, and made into classes of the Lightning
namespace of the trainer they run in: ``lightning.pytorch`` (seqrec's own) or ``pytorch_lightning``
(the one RecTools users import), so a trainer from either works.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import types
import typing as tp

import lightning.pytorch as L
import numpy as np
import pandas as pd
import torch
from torchmetrics import MeanMetric
from torch.utils.data import DataLoader, Dataset as TorchDataset, DistributedSampler, Sampler

from .batching import take_rows, window_ends, windows
from .dataset import Interactions
from .nn.losses import PER_SEQUENCE_SAMPLING, Popularity, compute_loss
from .nn.transformer import N_SPECIAL, PAD, TransformerNet
from .ranking import similarity_vectors

# model-specific step: right-padded item windows (B, W) (with their times (B, W) for a model that reads times),
# n_items -> input tokens (B, L), targets (B, L) (-1 = none), then any further inputs of the network's encode
TrainingBatchFn = tp.Callable[[tp.Any, int], tp.Tuple[torch.Tensor, ...]]


class WindowDataset(TorchDataset):
    """Training samples, each an item window of one user; a batch of them is built in one vectorised call.

    With ``stride=None`` a sample is a user's most recent ``width`` items (one per user). With a
    ``stride``, each user's whole history is cut into windows ending ``stride`` items apart (see
    :func:`~seqrec.batching.window_ends`), so that older interactions are trained on too.

    A batch is the item windows ``(B, width)``; with ``with_times`` it is the pair (item windows,
    time windows ``(B, width)`` of ``interactions.times``, 0 at padding), cut by the same indexing.
    """

    def __init__(self, interactions: Interactions, users: np.ndarray, width: int,
                 stride: tp.Optional[int] = None, with_times: bool = False) -> None:
        self.indptr = interactions.indptr
        self.items = interactions.items
        self.times = interactions.times if with_times else None
        self.width = width
        users = np.asarray(users, dtype=np.int64)
        if stride is None:
            self.rows, self.ends = users, self.indptr[users + 1]
        else:
            self.rows, self.ends = window_ends(self.indptr, users, stride)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices: tp.List[int]) -> tp.Union[torch.Tensor, tp.Tuple[torch.Tensor, torch.Tensor]]:
        # an index i >= len(self) is a padding copy of sample i - len(self) (see EpochSampler)
        idx = np.asarray(indices, dtype=np.int64) % len(self.rows)
        starts, ends = self.indptr[self.rows[idx]], self.ends[idx]
        items = torch.from_numpy(windows(self.items, starts, ends, self.width, N_SPECIAL, PAD))  # (B, W)
        if self.times is None:
            return items
        return items, torch.from_numpy(windows(self.times, starts, ends, self.width, 0, 0))  # (B, W), (B, W)

    def __getitem__(self, index: int) -> tp.Union[torch.Tensor, tp.Tuple[torch.Tensor, torch.Tensor]]:
        batch = self.__getitems__([index])
        return batch[0] if self.times is None else (batch[0][0], batch[1][0])


PRECISIONS = ("auto", "fp32", "bf16")
LR_SCHEDULES = ("constant", "cosine")


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether the training step runs under bf16 autocast: "bf16" always, "auto" on a CUDA device
    that supports bf16, "fp32" never."""
    if precision == "bf16":
        return True
    if precision == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    return False


def _identity(batch: tp.Any) -> tp.Any:
    return batch


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of epoch ``epoch`` of a training run seeded with ``seed`` (shuffling, dropout,
    negatives); process ``rank`` > 0 of a distributed run gets its own (rank 0 that of one process)."""
    key = [int(seed), int(epoch)] if rank == 0 else [int(seed), int(epoch), int(rank)]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def distributed_rank() -> tp.Tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` unless ``torch.distributed`` is initialised."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochSampler(DistributedSampler):
    """Shuffles ``n`` samples with a permutation that depends only on ``(seed, epoch)``, and gives
    each process of a distributed run its share of it.

    ``epoch = offset + e``, where ``e`` is the epoch Lightning passes to ``set_epoch`` (counted
    from 0 in each ``trainer.fit``) and ``offset`` the epochs trained before: so ``fit_partial``
    twice sees the same data order as one ``fit`` over all the epochs.

    Under ``torch.distributed`` (read when iterated, so Lightning's DDP set-up is seen) the
    permutation is padded to a multiple of the world size ``W`` and rank ``r`` takes its positions
    ``r, r + W, ...``: every rank gets ``ceil(n / W)`` samples, and together they see the whole
    permutation. A padding position carries index ``n + i`` for a copy of sample ``i``: the
    datasets read ``index % n``, and the validation samples give such a copy weight 0. It is a
    ``DistributedSampler`` subclass only so that Lightning uses it as it is instead of wrapping it
    (``use_distributed_sampler``); its parent's constructor is not called, since it needs no
    process group at construction.
    """

    def __init__(self, n: int, seed: int, offset: int = 0, shuffle: bool = True,
                 num_replicas: tp.Optional[int] = None, rank: tp.Optional[int] = None) -> None:
        Sampler.__init__(self)
        self.n, self.seed, self.offset, self.shuffle = n, seed, offset, shuffle
        self._num_replicas, self._rank = num_replicas, rank
        self.epoch = offset

    def _world(self) -> tp.Tuple[int, int]:
        rank, world = distributed_rank()
        return (rank if self._rank is None else self._rank,
                world if self._num_replicas is None else self._num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = self.offset + int(epoch)

    def __len__(self) -> int:
        _, world = self._world()
        return -(-self.n // world)

    def __iter__(self) -> tp.Iterator[int]:
        rank, world = self._world()
        if self.shuffle:
            g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        if world == 1:
            return iter(order.tolist())
        n_padded = -(-self.n // world) * world
        # padding: copies of the first samples of the permutation, marked by + n
        order = torch.cat([order, order[:n_padded - self.n] + self.n])
        return iter(order[rank::world].tolist())


def make_dataloader(dataset: TorchDataset, batch_size: int, shuffle: bool, seed: int,
                    num_workers: int = 0, offset: int = 0) -> DataLoader:
    sampler = EpochSampler(len(dataset), seed, offset, shuffle)
    # its own generator: creating an iterator draws a worker seed, which must not move the global
    # RNG (Lightning may create the first iterator before or after the epoch's seeding)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=_identity,
                      num_workers=num_workers, pin_memory=torch.cuda.is_available(), generator=generator)


class ValidationSamples(TorchDataset):
    """One validation sample per user: inference tokens ``(L,)`` of the history, the target (model
    item id), the history's items (filtered from the ranking) and a weight (1; 0 for the padding
    copies a distributed sampler adds); batches come as dicts of tensors. ``extras`` are further
    network inputs, one row per sample (HSTU: the times ``(L + 1,)``)."""

    def __init__(self, tokens: np.ndarray, targets: np.ndarray, seen_indptr: np.ndarray,
                 seen_items: np.ndarray, extras: tp.Sequence[np.ndarray] = ()) -> None:
        self.tokens, self.targets = tokens, targets
        self.seen_indptr, self.seen_items = seen_indptr, seen_items
        self.extras = tuple(extras)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitems__(self, indices: tp.List[int]) -> tp.Dict[str, torch.Tensor]:
        raw = np.asarray(indices, dtype=np.int64)
        idx = raw % len(self.targets)  # an index >= len(self) is a padding copy (see EpochSampler)
        indptr, items = take_rows(self.seen_indptr, self.seen_items, idx)
        lengths = np.diff(indptr)
        seen = np.full((len(idx), max(1, int(lengths.max()) if len(idx) else 1)), -1, dtype=np.int64)
        seen[np.repeat(np.arange(len(idx)), lengths), np.arange(len(items)) - np.repeat(indptr[:-1], lengths)] = items
        batch = {"tokens": torch.from_numpy(self.tokens[idx]), "target": torch.from_numpy(self.targets[idx]),
                 "seen": torch.from_numpy(seen),
                 "weight": torch.from_numpy((raw < len(self.targets)).astype(np.float32))}
        if self.extras:
            batch["extras"] = [torch.from_numpy(e[idx]) for e in self.extras]
        return batch

    def __getitem__(self, index: int) -> tp.Dict[str, tp.Any]:
        return {k: ([e[0] for e in v] if k == "extras" else v[0]) for k, v in self.__getitems__([index]).items()}


# ----------------------------------------------------------------- the Lightning module
class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names the epoch and the step."""


# on an accelerator the loss is checked on the host every this many steps (and at the end of each
# epoch), to avoid a synchronisation per step; on the CPU every step is checked
NONFINITE_CHECK_EVERY = 50


class _ModuleCore:
    """Training step: windows -> (tokens, targets) -> sequence vectors -> one loss; validation step:
    the loss and full-ranking HR@k / NDCG@k of each validation target (history filtered)."""

    def __init__(self, net: TransformerNet, training_batch: TrainingBatchFn, loss: str, n_negatives: int,
                 gbce_t: float, lr: float, verbose: int = 0, negative_sampling: str = "uniform",
                 item_counts: tp.Optional[np.ndarray] = None, softmax_chunk_size: tp.Optional[int] = None,
                 precision: str = "fp32", torch_compile: bool = False, lr_schedule: str = "constant",
                 similarity: str = "dot", val_k: int = 10, seed: int = 0, epoch_offset: int = 0,
                 optimizer_state: tp.Optional[tp.Dict[str, tp.Any]] = None,
                 checkpoint_meta: tp.Optional[tp.Callable[[], tp.Optional[torch.Tensor]]] = None,
                 logits_t: float = 1.0) -> None:
        super().__init__()
        self.net = net
        self.training_batch = training_batch
        self.loss = loss
        self.n_negatives = n_negatives
        self.gbce_t = gbce_t
        self.lr = lr
        self.verbose = verbose
        self.negative_sampling = negative_sampling
        self.softmax_chunk_size = softmax_chunk_size
        self.precision = precision
        self.lr_schedule = lr_schedule
        self.similarity = similarity
        self.val_k = val_k
        self.seed = seed
        self.epoch_offset = epoch_offset
        self.optimizer_state = optimizer_state
        # what rebuilds the estimator from a checkpoint: built at the first checkpoint, not at every fit
        self._checkpoint_meta_fn = checkpoint_meta
        self._checkpoint_meta: tp.Optional[torch.Tensor] = None
        self.epochs_run = 0
        self.logits_t = logits_t  # logits / logits_t in every loss (RecTools' HSTU tutorial: 0.05 with cosine)
        self._bad_step: tp.Optional[torch.Tensor] = None  # first global step whose loss was not finite (-1: none)
        # validation means of an epoch (states in float64, not in the state dict); not
        # nan_strategy="disable", which ignores the weights in torchmetrics 1.9
        self.val_metrics = torch.nn.ModuleDict({name: MeanMetric(nan_strategy="warn").set_dtype(torch.float64)
                                                for name in ("loss", "hr", "ndcg")})
        # the compiled function shares the network's parameters; the network itself stays plain
        self.encode = torch.compile(net.encode) if torch_compile else net.encode
        if loss == "sampled_softmax" and negative_sampling == "popularity":
            if item_counts is None:
                raise ValueError("negative_sampling='popularity' needs the training item counts")
            pop = Popularity.from_counts(torch.as_tensor(np.asarray(item_counts)))
            # buffers move with the module: negatives are drawn on the training device
            self.register_buffer("pop_cdf", pop.cdf, persistent=False)
            self.register_buffer("pop_log_q", pop.log_q, persistent=False)
        else:
            self.pop_cdf = self.pop_log_q = None

    def _loss(self, h: torch.Tensor, table: torch.Tensor, y: torch.Tensor, n_sequences: int) -> torch.Tensor:
        h, table = similarity_vectors(h, self.similarity), similarity_vectors(table, self.similarity)
        if self.logits_t != 1.0:
            h = h / self.logits_t  # scales every logit h . item
        popularity = None if self.pop_cdf is None else Popularity(self.pop_cdf, self.pop_log_q)
        return compute_loss(self.loss, h, table, y, self.n_negatives, self.gbce_t,
                            negative_sampling=self.negative_sampling, popularity=popularity,
                            softmax_chunk_size=self.softmax_chunk_size, n_sequences=n_sequences)

    def on_train_epoch_start(self) -> None:
        # dropout, masking and negatives of an epoch depend only on (seed, epoch): fit_partial in
        # pieces trains exactly as one fit; under DDP each rank draws its own
        torch.manual_seed(epoch_seed(self.seed, self.epoch_offset + self.current_epoch, self.global_rank))
        self._bad_step = None

    def _check_loss(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Stop at a NaN or infinite loss: at once on the CPU (before the optimizer step, so the
        weights stay those of the last good step), every NONFINITE_CHECK_EVERY steps elsewhere."""
        if loss.device.type == "cpu":
            if not bool(torch.isfinite(loss)):
                self._raise_nonfinite(str(float(loss.detach())), batch_idx)
            return
        bad = ~torch.isfinite(loss.detach())
        if self._bad_step is None:
            self._bad_step = torch.full((), -1, dtype=torch.long, device=loss.device)
        self._bad_step = torch.where(bad & (self._bad_step < 0), torch.as_tensor(batch_idx, device=loss.device),
                                     self._bad_step)
        if batch_idx % NONFINITE_CHECK_EVERY == 0:
            self.raise_if_nonfinite()

    def raise_if_nonfinite(self) -> None:
        """Raise :class:`NonFiniteLossError` if a step of this epoch had a non-finite loss."""
        if self._bad_step is not None and int(self._bad_step) >= 0:
            self._raise_nonfinite("nan or inf", int(self._bad_step))

    def _raise_nonfinite(self, value: str, batch_idx: int) -> None:
        raise NonFiniteLossError(
            f"train_loss is {value} at epoch {self.epoch_offset + self.current_epoch + 1} (1-based), step "
            f"{batch_idx} of the epoch (0-based): training stopped. Lower lr, check the data or use "
            "precision='fp32'; the checkpoint of fit(checkpoint_dir=...) still holds the last completed epoch")

    def training_step(self, batch: tp.Any, batch_idx: int) -> torch.Tensor:
        # extra: further inputs of encode after the item table (HSTU: times (B, L + 1)); none for the others
        tokens, targets, *extra = self.training_batch(batch, self.net.n_items)  # (B, L), (B, L)
        bf16 = use_bf16(self.precision, tokens.device)
        with torch.autocast(device_type=tokens.device.type, dtype=torch.bfloat16, enabled=bf16):
            table = self.net.item_table()  # (n_items, d)
            h = self.encode(tokens, table, *extra)  # (B, L, d)
            if tokens.device.type == "cpu" and self.negative_sampling not in PER_SEQUENCE_SAMPLING:
                # on CPU, selecting the rows with a target costs no synchronisation and saves the
                # loss the padding rows
                has_target = targets >= 0
                h, y = h[has_target], targets[has_target]
            else:
                # on an accelerator, boolean indexing would wait for the host to learn the number of
                # rows (and per-sequence negatives need the batch's shape): every position goes to
                # the loss, padding marked by y = -1
                h, y = h.reshape(-1, h.shape[-1]), targets.reshape(-1)
            loss = self._loss(h, table, y, len(tokens))
        self._check_loss(loss, batch_idx)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(tokens),
                 sync_dist=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        for metric in self.val_metrics.values():
            metric.reset()

    def validation_step(self, batch: tp.Dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        tokens, target, seen = batch["tokens"], batch["target"], batch["seen"]  # (B, L), (B,), (B, S)
        weight = batch["weight"]  # (B,) 1, or 0 for a padding copy of a distributed sampler
        table = self.net.item_table()  # (n_items, d)
        h = self.net.last_vectors(tokens, table, *batch.get("extras", ()))  # (B, d)
        real = weight > 0
        # the loss's random draws (negatives) are seeded per batch, and do not move the training RNG
        with torch.random.fork_rng(devices=[h.device] if h.device.type == "cuda" else []):
            torch.manual_seed(epoch_seed(self.seed, batch_idx))
            if bool(real.all()):
                loss = self._loss(h, table, target, len(target))  # one row per sequence
            elif bool(real.any()):
                loss = self._loss(h[real], table, target[real], int(real.sum()))
            else:
                loss = torch.zeros((), device=h.device)
        scores = similarity_vectors(h, self.similarity) @ similarity_vectors(table, self.similarity).T  # (B, n)
        target_score = scores.gather(1, target.unsqueeze(1))  # (B, 1)
        # the history is filtered, the target itself kept; padding (-1) points at the target column
        seen = torch.where(seen >= 0, seen, target.unsqueeze(1))
        scores = scores.scatter(1, seen, float("-inf")).scatter(1, target.unsqueeze(1), target_score)
        rank = (scores > target_score).sum(dim=1) + 1  # (B,) 1-based, ties counted in the target's favour
        hit = (rank <= self.val_k).float()
        ndcg = hit / torch.log2(rank.float() + 1.0)
        # weighted means over the epoch, summed over all ranks at its end (torchmetrics): every user
        # counts once, padding copies not at all, whatever the shards
        self.val_metrics["loss"].update(loss.detach(), weight=real.sum())
        self.val_metrics["hr"].update(hit, weight=weight)
        self.val_metrics["ndcg"].update(ndcg, weight=weight)
        self.log("val_loss", self.val_metrics["loss"], on_step=False, on_epoch=True)
        self.log(f"val_hr@{self.val_k}", self.val_metrics["hr"], on_step=False, on_epoch=True)
        self.log(f"val_ndcg@{self.val_k}", self.val_metrics["ndcg"], on_step=False, on_epoch=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self.raise_if_nonfinite()
        self.epochs_run += 1
        if self.verbose > 0 and self.trainer.is_global_zero:
            metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items()
                       if k == "train_loss" or k.startswith("val_")}
            text = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
            print(f"epoch {self.epoch_offset + self.current_epoch + 1}: {text}")

    def on_train_end(self) -> None:
        # Adam's moments travel with the estimator: fit_partial continues from them
        optimizers = self.trainer.optimizers
        if optimizers:
            self.optimizer_state = _to_cpu(copy.deepcopy(optimizers[0].state_dict()))

    def on_save_checkpoint(self, checkpoint: tp.Dict[str, tp.Any]) -> None:
        if self._checkpoint_meta is None and self._checkpoint_meta_fn is not None:
            self._checkpoint_meta = self._checkpoint_meta_fn()
            self._checkpoint_meta_fn = None
        if self._checkpoint_meta is not None:
            checkpoint["seqrec"] = self._checkpoint_meta
            checkpoint["seqrec_epochs_done"] = self.epoch_offset + _epochs_finished(self.trainer)

    def configure_optimizers(self) -> tp.Any:
        # foreach: one batched update over all tensors, the same numbers as torch's per-tensor
        # loop (its default on CPU) at a third of the time (1.5 against 4.4 ms a step for eSASRec's
        # 0.8 M parameters, one thread)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr, betas=(0.9, 0.98), foreach=True)
        if self.optimizer_state is not None:
            optimizer.load_state_dict(self.optimizer_state)
        if self.lr_schedule == "constant":
            return optimizer
        # "cosine": per step from lr down to 0 at the last step the trainer plans (max_epochs)
        planned = self.trainer.estimated_stepping_batches
        if not math.isfinite(planned):
            raise ValueError("lr_schedule='cosine' needs a trainer with a finite max_epochs or max_steps "
                             "(the schedule decays to 0 at the last planned step)")
        total = max(int(planned), 1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_factor(step, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _epochs_finished(trainer: tp.Any) -> int:
    """Epochs of this trainer whose batches all ran, at the time a checkpoint is written: in
    on_validation_end (ModelCheckpoint with a monitor), on_train_epoch_end or on_train_end alike."""
    progress = trainer.fit_loop.epoch_progress.current
    done = progress.processed
    batches = trainer.fit_loop.epoch_loop.batch_progress.current
    if progress.started > done and batches.ready >= trainer.num_training_batches:
        done += 1  # validation at the end of an epoch runs before Lightning counts the epoch
    return done


def _to_cpu(obj: tp.Any) -> tp.Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def cosine_factor(step: int, total: int) -> float:
    """Learning-rate factor of step ``step`` of ``total``: 1 at the start, 0 after the last step."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


# ----------------------------------------------------------------- callbacks of fit
class _HistoryCore:
    """Collects ``train_loss`` and the validation metrics of every epoch."""

    def __init__(self, epoch_offset: int = 0) -> None:
        self.epoch_offset = epoch_offset
        self.rows: tp.List[tp.Dict[str, float]] = []

    def on_train_epoch_end(self, trainer: tp.Any, pl_module: tp.Any) -> None:
        row = {"epoch": self.epoch_offset + trainer.current_epoch + 1}
        for key, value in trainer.callback_metrics.items():
            if key == "train_loss" or key.startswith("val_"):
                row[key] = float(value)
        self.rows.append(row)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def state_dict(self) -> tp.Dict[str, tp.Any]:
        # stored in checkpoints (plain values: readable with weights_only=True); load_from_checkpoint
        # gives the model its history back
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state: tp.Dict[str, tp.Any]) -> None:
        self.rows = [dict(r) for r in state.get("rows", [])]


class _BestWeightsCore:
    """Early stopping on a logged validation quantity with ``patience``, then the best weights back.

    "val_loss" is minimised, the ranking metrics maximised. The best ``state_dict`` is kept on the
    CPU; at the end of training the network gets it back (``best_epoch`` says which).
    """

    def __init__(self, monitor: str, patience: int, epoch_offset: int = 0) -> None:
        self.monitor, self.patience, self.epoch_offset = monitor, patience, epoch_offset
        self.sign = -1.0 if monitor.endswith("loss") else 1.0
        self.best: tp.Optional[float] = None
        self.best_state: tp.Optional[tp.Dict[str, torch.Tensor]] = None
        self.best_epoch: tp.Optional[int] = None
        self.wait = 0

    def on_validation_end(self, trainer: tp.Any, pl_module: tp.Any) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        # the monitored value is reduced over the ranks (see the module), so every rank takes the
        # same decisions; the stop is still agreed explicitly, as Lightning's EarlyStopping does
        value = self.sign * float(trainer.callback_metrics[self.monitor])
        stop = False
        if self.best is None or value > self.best:
            self.best, self.wait = value, 0
            self.best_epoch = self.epoch_offset + trainer.current_epoch + 1
            self.best_state = {k: v.detach().cpu().clone() for k, v in pl_module.net.state_dict().items()}
        else:
            self.wait += 1
            stop = self.wait >= self.patience
        if trainer.strategy.reduce_boolean_decision(stop, all=False):
            trainer.should_stop = True

    def on_train_end(self, trainer: tp.Any, pl_module: tp.Any) -> None:
        if self.best_state is not None:
            pl_module.net.load_state_dict(self.best_state)


class _EpochCheckpointCore:
    """Writes a Lightning checkpoint of the run to ``path`` at the end of every epoch, atomically:
    a temporary file in the same folder, flushed to disk, then ``os.replace``. An interrupted
    write, or a NaN stopping the run, leaves the previous epoch's file whole.

    The checkpoint is the trainer's own (weights, Adam's state, loops, the history), with the
    seqrec entry that lets ``load_from_checkpoint`` rebuild the model; under DDP every rank joins
    the save and rank 0 writes.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_epoch_end(self, trainer: tp.Any, pl_module: tp.Any) -> None:
        pl_module.raise_if_nonfinite()  # an accelerator's deferred check comes before the file
        tmp = os.path.join(os.path.dirname(self.path), "." + os.path.basename(self.path) + ".tmp")
        trainer.save_checkpoint(tmp)  # collective; only global rank 0 writes
        if trainer.is_global_zero:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        trainer.strategy.barrier("seqrec_checkpoint")


_CLASSES: tp.Dict[tp.Tuple[str, str], type] = {}


def lightning_namespace(trainer: tp.Any = None) -> types.ModuleType:
    """``pytorch_lightning`` for a trainer of that package, ``lightning.pytorch`` otherwise."""
    if trainer is not None and type(trainer).__module__.split(".")[0] == "pytorch_lightning":
        return sys.modules["pytorch_lightning"]
    return L


def _make_class(kind: str, ns: types.ModuleType) -> type:
    key = (kind, ns.__name__)
    if key not in _CLASSES:
        core, base = {"module": (_ModuleCore, ns.LightningModule), "history": (_HistoryCore, ns.Callback),
                      "best_weights": (_BestWeightsCore, ns.Callback),
                      "checkpoint": (_EpochCheckpointCore, ns.Callback)}[kind]
        name = {"module": "SeqRecModule", "history": "HistoryCallback", "best_weights": "BestWeightsCallback",
                "checkpoint": "EpochCheckpointCallback"}[kind]
        _CLASSES[key] = type(name, (core, base), {"__module__": __name__})
    return _CLASSES[key]


def make_module(ns: types.ModuleType, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
    """The seqrec LightningModule of namespace ``ns`` (see :func:`lightning_namespace`)."""
    return _make_class("module", ns)(*args, **kwargs)


def make_history(ns: types.ModuleType, epoch_offset: int = 0) -> tp.Any:
    return _make_class("history", ns)(epoch_offset)


def make_best_weights(ns: types.ModuleType, monitor: str, patience: int, epoch_offset: int = 0) -> tp.Any:
    return _make_class("best_weights", ns)(monitor, patience, epoch_offset)


def make_epoch_checkpoint(ns: types.ModuleType, path: str) -> tp.Any:
    return _make_class("checkpoint", ns)(path)


CHECKPOINT_NAME = "last.ckpt"


def checkpoint_path(checkpoint_dir: tp.Any, resume: bool = False, early_stopping: tp.Optional[str] = None,
                    lr_schedule: str = "constant") -> tp.Optional[str]:
    """The checkpoint file of ``fit(checkpoint_dir=..., resume=...)`` (the folder is created), or None."""
    if not isinstance(resume, (bool, np.bool_)):  # numpy's booleans too, as every flag of the models
        raise TypeError(f"resume must be True or False, got {resume!r}")
    resume = bool(resume)
    if checkpoint_dir is None:
        if resume:
            raise ValueError("resume=True needs checkpoint_dir: the folder the interrupted run wrote its checkpoint to")
        return None
    if not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise TypeError(f"checkpoint_dir must be a path (str or os.PathLike) or None, got "
                        f"{type(checkpoint_dir).__name__} {checkpoint_dir!r}")
    folder = os.fspath(checkpoint_dir)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"checkpoint_dir {folder!r} exists and is not a folder")
    if resume and early_stopping is not None:
        raise ValueError(f"resume=True is not supported with early_stopping={early_stopping!r}: the stopping state "
                         "(best weights, patience) is not in the checkpoint; resume with "
                         "load_from_checkpoint and fit_partial instead")
    if resume and lr_schedule != "constant":
        raise ValueError(f"resume=True is not supported with lr_schedule={lr_schedule!r}: the schedule would start "
                         "again over the epochs left; use lr_schedule='constant'")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, CHECKPOINT_NAME)


def continue_trainer(trainer: tp.Any, epochs_done: int) -> bool:
    """Set a fresh trainer to train only the epochs a resumed run has left; False when none are."""
    planned = trainer.fit_loop.max_epochs
    if planned is None or planned < 0:
        raise ValueError("resume=True needs a trainer with a finite max_epochs (the epochs of the whole run)")
    remaining = planned - epochs_done
    if remaining <= 0:
        return False
    trainer.fit_loop.max_epochs = remaining
    trainer.fit_loop.min_epochs = min(trainer.fit_loop.min_epochs or 0, remaining)
    return True


def check_launcher(trainer: tp.Any) -> None:
    """Refuse strategies whose worker processes would train a copy of the model that never comes
    back whole (``ddp_spawn``, ``ddp_notebook``: only the weights return, not Adam's state, the
    history or the best epoch)."""
    launcher = getattr(trainer.strategy, "launcher", None)
    if launcher is not None and type(launcher).__name__ == "_MultiProcessingLauncher":
        raise ValueError(f"strategy {type(trainer.strategy).__name__} with start method "
                         f"{getattr(launcher, '_start_method', '?')!r} is not supported: its worker processes "
                         "train copies of the model whose state does not come back. Use strategy='ddp' and "
                         "start the processes with torchrun (or let Lightning start them from a script); see "
                         "docs/guide/distributed.md")


# seqrec's own module class, for direct use (tests, custom loops)
SeqRecModule = _make_class("module", L)
