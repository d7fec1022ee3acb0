"""Lightning's TQDM progress bar, showing the training loss the VAE last logged.

The VAE sends its step values straight to the loggers instead of through `self.log`
(see `VAE._log_train_step`), so they are not in `trainer.progress_bar_metrics`; this
bar reads them from `pl_module.last_train_step`. It also redraws once per refresh
where Lightning's bar redraws twice (once for the count, once for the values): a
redraw is a visible share of a small model's step (docs/performance.md).
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from typing_extensions import override


class ProgressBar(TQDMProgressBar):
    """`TQDMProgressBar` (same arguments) with the VAE's latest `loss` in its values."""

    @override
    def get_metrics(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        metrics = super().get_metrics(trainer, pl_module)
        loss = getattr(pl_module, "last_train_step", {}).get("train/loss")
        if loss is not None:
            metrics["loss"] = loss
        return metrics

    @override
    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        bar = self.train_progress_bar
        n = batch_idx + 1
        if not self.is_enabled or bar.disable or (n % self.refresh_rate and n != bar.total):
            return
        bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
        bar.n = n
        bar.refresh()
