"""The Lightning layer: one LightningModule that trains any seqrec network with any loss."""

from __future__ import annotations

import math
import typing as tp

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset as TorchDataset

from .batching import window_ends, windows
from .dataset import Interactions
from .nn.losses import Popularity, compute_loss
from .nn.transformer import N_SPECIAL, PAD, TransformerNet

# model-specific step: right-padded item windows (B, W), n_items -> input tokens (B, L), targets (B, L) (-1 = none)
TrainingBatchFn = tp.Callable[[torch.Tensor, int], tp.Tuple[torch.Tensor, torch.Tensor]]


class WindowDataset(TorchDataset):
    """Training samples, each an item window of one user; a batch of them is built in one vectorised call.

    With ``stride=None`` a sample is a user's most recent ``width`` items (one per user). With a
    ``stride``, each user's whole history is cut into windows ending ``stride`` items apart (see
    :func:`~seqrec.batching.window_ends`), so that older interactions are trained on too.
    """

    def __init__(self, interactions: Interactions, users: np.ndarray, width: int,
                 stride: tp.Optional[int] = None) -> None:
        self.indptr = interactions.indptr
        self.items = interactions.items
        self.width = width
        users = np.asarray(users, dtype=np.int64)
        if stride is None:
            self.rows, self.ends = users, self.indptr[users + 1]
        else:
            self.rows, self.ends = window_ends(self.indptr, users, stride)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices: tp.List[int]) -> torch.Tensor:
        idx = np.asarray(indices, dtype=np.int64)
        rows = self.rows[idx]
        return torch.from_numpy(windows(self.items, self.indptr[rows], self.ends[idx], self.width, N_SPECIAL, PAD))

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.__getitems__([index])[0]


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


def _identity(batch: torch.Tensor) -> torch.Tensor:
    return batch


def make_dataloader(dataset: WindowDataset, batch_size: int, shuffle: bool, seed: int,
                    num_workers: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      collate_fn=_identity, num_workers=num_workers, pin_memory=torch.cuda.is_available())


class SeqRecModule(L.LightningModule):
    """Training step: windows -> (tokens, targets) -> sequence vectors -> one loss."""

    def __init__(self, net: TransformerNet, training_batch: TrainingBatchFn, loss: str, n_negatives: int,
                 gbce_t: float, lr: float, verbose: int = 0, negative_sampling: str = "uniform",
                 item_counts: tp.Optional[np.ndarray] = None, softmax_chunk_size: tp.Optional[int] = None,
                 precision: str = "fp32", torch_compile: bool = False, lr_schedule: str = "constant") -> None:
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

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        tokens, targets = self.training_batch(batch, self.net.n_items)  # (B, L), (B, L)
        bf16 = use_bf16(self.precision, tokens.device)
        with torch.autocast(device_type=tokens.device.type, dtype=torch.bfloat16, enabled=bf16):
            table = self.net.item_table()  # (n_items, d)
            h = self.encode(tokens, table)  # (B, L, d)
            if tokens.device.type == "cpu":
                # on CPU, selecting the rows with a target costs no synchronisation and saves the
                # loss the padding rows
                has_target = targets >= 0
                h, y = h[has_target], targets[has_target]
            else:
                # on an accelerator, boolean indexing would wait for the host to learn the number of
                # rows: every position goes to the loss, padding marked by y = -1
                h, y = h.reshape(-1, h.shape[-1]), targets.reshape(-1)
            popularity = None if self.pop_cdf is None else Popularity(self.pop_cdf, self.pop_log_q)
            loss = compute_loss(self.loss, h, table, y, self.n_negatives, self.gbce_t,
                                negative_sampling=self.negative_sampling, popularity=popularity,
                                softmax_chunk_size=self.softmax_chunk_size)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(batch))
        return loss

    def on_train_epoch_end(self) -> None:
        if self.verbose > 0 and self.trainer.is_global_zero:
            loss = self.trainer.callback_metrics.get("train_loss")
            if loss is not None:
                print(f"epoch {self.current_epoch + 1}/{self.trainer.max_epochs}: train_loss={float(loss):.4f}")

    def configure_optimizers(self) -> tp.Any:
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr, betas=(0.9, 0.98))
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


def cosine_factor(step: int, total: int) -> float:
    """Learning-rate factor of step ``step`` of ``total``: 1 at the start, 0 after the last step."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
