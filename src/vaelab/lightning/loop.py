"""The mechanics of the VAE's manual optimisation step, apart from the model.

Lightning's automatic optimisation (its closure layers) costs a small model a real
share of each CPU step, and it refuses gradient accumulation and clipping with manual
optimisation; so the VAE writes its step out as a hand loop would (zero_grad, backward,
step), and these pieces do the bookkeeping Lightning would otherwise do:

- `AccumulationWindow`: where a batch falls in a group of `accumulate_grad_batches`
  (the model's own accumulation: the optimiser steps on the mean gradient of a group,
  a short last group of the epoch included);
- `send_step_values`: a step's `train/*` values to every logger, as Lightning's logger
  connector writes step values (same keys, same step number, plus `epoch`), without
  `LightningModule.log`, whose per-key, per-step cost docs/performance.md describes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class AccumulationWindow:
    """A batch's place in its group of `batches` accumulated batches."""

    opens: bool  # the first batch of a group: gradients start from zero
    closes: bool  # the last batch of a group (or of the epoch): the optimiser steps
    batches: int

    @classmethod
    def at(cls, batch_idx: int, batches: int, batches_per_epoch: float) -> AccumulationWindow:
        if batches == 1:
            return cls(opens=True, closes=True, batches=1)
        last_of_epoch = batch_idx + 1 >= batches_per_epoch
        return cls(
            opens=batch_idx % batches == 0,
            closes=(batch_idx + 1) % batches == 0 or last_of_epoch,
            batches=batches,
        )

    def share(self, loss: Tensor) -> Tensor:
        """The part of `loss` whose gradient this batch adds: 1/n of it, so the step
        follows the mean over the group."""
        return loss if self.batches == 1 else loss / self.batches


def send_step_values(
    loggers: Iterable[Any], values: dict[str, Tensor], step: int, epoch: int
) -> dict[str, float]:
    """Log the 0-d tensors `values` at `step` to every logger (one host transfer for
    all of them) and return them as floats."""
    floats = dict(zip(values, torch.stack(list(values.values())).tolist(), strict=True))
    for logger in loggers:
        logger.log_metrics({**floats, "epoch": epoch}, step=step)
        logger.save()
    return floats
