"""The Lightning layer: one LightningModule that trains any seqrec network with any loss."""

from __future__ import annotations

import typing as tp

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset as TorchDataset

from .batching import last_windows
from .dataset import Interactions
from .nn.losses import compute_loss
from .nn.transformer import N_SPECIAL, PAD, TransformerNet

# model-specific step: right-padded item windows (B, W), n_items -> input tokens (B, L), targets (B, L) (-1 = none)
TrainingBatchFn = tp.Callable[[torch.Tensor, int], tp.Tuple[torch.Tensor, torch.Tensor]]


class WindowDataset(TorchDataset):
    """Training users; a batch of them is turned into item windows in one vectorised call."""

    def __init__(self, interactions: Interactions, users: np.ndarray, width: int) -> None:
        self.indptr = interactions.indptr
        self.items = interactions.items
        self.users = users
        self.width = width

    def __len__(self) -> int:
        return len(self.users)

    def __getitems__(self, indices: tp.List[int]) -> torch.Tensor:
        rows = self.users[np.asarray(indices, dtype=np.int64)]
        return torch.from_numpy(last_windows(self.indptr, self.items, rows, self.width, N_SPECIAL, PAD))

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.__getitems__([index])[0]


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
                 gbce_t: float, lr: float, verbose: int = 0) -> None:
        super().__init__()
        self.net = net
        self.training_batch = training_batch
        self.loss = loss
        self.n_negatives = n_negatives
        self.gbce_t = gbce_t
        self.lr = lr
        self.verbose = verbose

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        tokens, targets = self.training_batch(batch, self.net.n_items)  # (B, L), (B, L)
        table = self.net.item_table()  # (n_items, d)
        h = self.net.encode(tokens, table)  # (B, L, d)
        has_target = targets >= 0
        loss = compute_loss(self.loss, h[has_target], table, targets[has_target], self.n_negatives, self.gbce_t)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(batch))
        return loss

    def on_train_epoch_end(self) -> None:
        if self.verbose > 0 and self.trainer.is_global_zero:
            loss = self.trainer.callback_metrics.get("train_loss")
            if loss is not None:
                print(f"epoch {self.current_epoch + 1}/{self.trainer.max_epochs}: train_loss={float(loss):.4f}")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.lr, betas=(0.9, 0.98))
