"""Lightning's `WandbLogger`, made to outlive W&B's service process.

A signal to a whole SLURM job (`scontrol requeue`, `scancel`, pre-emption) reaches every
process of the job, W&B's service (wandb-core) among them, which then exits. Each later
call into the W&B run raises `ConnectionResetError` or `BrokenPipeError`, and a logging
call inside the training loop would turn an interruption that writes a checkpoint into
a failed job. Here the first such error is reported in one warning and the logger stops
sending: the CSV history, metrics.json and the checkpoint carry on, and the job that
resumes from the checkpoint continues the same W&B run (its id is kept in the run
folder, `vaelab.tracking.setup.RUN_ID_FILE`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def _while_service_lives(method: F) -> F:
    @functools.wraps(method)
    def guarded(self: WandbLogger, *args: Any, **kwargs: Any) -> Any:
        if self.service_lost:
            return None
        try:
            return method(self, *args, **kwargs)
        except OSError as exc:  # the service's socket is closed
            self.service_lost = True
            log.warning(
                "W&B's service process stopped (%s); this job logs nothing more to W&B, "
                "its CSV history and metrics.json go on",
                exc,
            )
            return None

    return guarded  # type: ignore[return-value]


class WandbLogger(LightningWandbLogger):
    """`WandbLogger` whose calls do nothing once W&B's service has gone."""

    service_lost = False

    log_metrics = _while_service_lives(LightningWandbLogger.log_metrics)
    log_hyperparams = _while_service_lives(LightningWandbLogger.log_hyperparams)
    log_image = _while_service_lives(LightningWandbLogger.log_image)
    log_table = _while_service_lives(LightningWandbLogger.log_table)
    after_save_checkpoint = _while_service_lives(LightningWandbLogger.after_save_checkpoint)
    finalize = _while_service_lives(LightningWandbLogger.finalize)

    def finish(self, exit_code: int) -> None:
        """End the W&B run (a later job of a sweep starts a new one)."""
        if self._experiment is not None:
            self._finish_run(exit_code)

    @_while_service_lives
    def _finish_run(self, exit_code: int) -> None:
        self.experiment.finish(exit_code=exit_code)

    @_while_service_lives
    def update_summary(self, values: dict[str, float]) -> None:
        """Set values in the W&B run's summary (its final numbers)."""
        self.experiment.summary.update(values)
