"""Wall-clock timing of a run: time to the first training step and training time per
epoch (validation excluded), recorded in metrics.json for benchmarks and comparisons."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from typing_extensions import override


class Timing(L.Callback):
    """Collects `first_step_at` (Unix time) and `epoch_train_s` (one entry per epoch)."""

    def __init__(self) -> None:
        self.first_step_at: float | None = None
        self.epoch_train_s: list[float] = []
        self._epoch_start: float | None = None

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    @override
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.first_step_at is None:
            self.first_step_at = time.time()

    def _close_epoch(self) -> None:
        if self._epoch_start is not None:
            self.epoch_train_s.append(time.perf_counter() - self._epoch_start)
            self._epoch_start = None

    @override
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_epoch()  # validation at the end of an epoch is not training time

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_epoch()

    def summary(self) -> dict[str, Any]:
        return {
            "first_step_at": self.first_step_at,
            "epoch_train_s": [round(t, 4) for t in self.epoch_train_s],
        }
