"""Dropout with a cheaper mask on CPU.

``torch.nn.Dropout`` on CPU draws its mask with ``bernoulli_``, which costs about twice as much
as ``torch.rand`` for the same number of elements (measured on torch 2.13: 4.9 against 2.4 ms
for a (128, 50, 64) tensor on one thread); in a SASRec step with one BCE negative the masks took
a fifth of the step. :class:`Dropout` keeps ``nn.Dropout``'s interface and semantics (each element
kept with probability ``1 - p`` and scaled by ``1 / (1 - p)``) and draws the mask as
``rand >= p`` on CPU; on other devices, in eval mode and for ``p = 0`` it is ``nn.Dropout``.
"""

from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose CPU mask comes from ``torch.rand`` (same distribution, cheaper draw)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        if self.p >= 1.0:
            return x * 0.0
        # float32 uniforms turned in place into the scaled mask (1 / (1 - p) where kept, P = 1 - p):
        # no boolean mask to allocate and convert (a (128, 50, 256) mask: 23 -> 14 ms, loaded machine)
        mask = torch.rand(x.shape, device=x.device).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return x * mask.to(x.dtype)  # no copy for float32 inputs
