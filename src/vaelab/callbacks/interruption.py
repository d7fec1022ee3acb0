"""SIGTERM and SIGINT stop a run where it is, resumably, and say so.

On either signal the run finishes the batch it is in, writes `last.ckpt` at that step
(a checkpoint `resume=auto` continues from, with `EpochPosition` so the epoch goes on
where it stopped), and ends with `RunInterrupted`: metrics.json says "interrupted", one
line on stderr says how to continue, and the exit code is 128 + the signal (143 for
SIGTERM, 130 for Ctrl+C). A second Ctrl+C stops at once, as usual.

Under DDP the ranks must stop at the same step: SIGTERM is left to Lightning's own
handler, which raises `received_sigterm`, broadcasts it from rank 0 and turns it into a
`SIGTERMException` on every rank at the start of the next batch; the checkpoint is
written then, by all ranks together. Ctrl+C under DDP takes Lightning's KeyboardInterrupt
path. The handlers Lightning, submitit or SLURM installed for SIGTERM keep running (they
are called first), so SLURM's requeue path is unchanged: `scontrol requeue` sends SIGTERM,
the job exits 143 without a result, and the requeued job resumes from this `last.ckpt`.

Under submitit (the SLURM launcher), the signal it sets for a time-out or pre-emption
(`SUBMITIT_PREEMPT_SIGNAL`, USR2 unless set) is handled the same way, and submitit's own
handler, which requeues the job and exits, runs only after the checkpoint is written, so
the requeued job continues from the step the signal came at instead of an older one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

import lightning as L
from typing_extensions import override

from vaelab.errors import VaelabError

if TYPE_CHECKING:
    from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)

HANDLED = (signal.SIGTERM, signal.SIGINT)


def submitit_requeue_signal() -> signal.Signals | None:
    """The signal submitit requeues a time-out or pre-empted job on, in a job it runs
    (`SUBMITIT_FOLDER` is set by its job runner); None outside submitit."""
    if not os.environ.get("SUBMITIT_FOLDER"):
        return None
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2").upper()
    return signal.Signals[name if name.startswith("SIG") else "SIG" + name]


class RunInterrupted(VaelabError):
    """The run was stopped by a signal after writing a checkpoint it can resume from."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


#: Exit codes of a run stopped by a signal (SIGINT, SIGTERM, submitit's requeue signal):
#: such a job must leave its process as a signal's exit, not as a failure or a result,
#: so that a basic sweep stops as asked and a SLURM job is requeued, not reported done.
INTERRUPTED_CODES = frozenset(
    128 + s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
)


#: The interruption of this process's last run, for the entry point to report (a
#: `SIGTERMException` from Lightning's DDP path carries no message of its own).
last_interruption: RunInterrupted | None = None


def _last_checkpoint_path(trainer: L.Trainer) -> Path | None:
    callback = trainer.checkpoint_callback
    dirpath = getattr(callback, "dirpath", None)
    if callback is None or dirpath is None:
        return None
    # a checkpoint callback with a dirpath: a ModelCheckpoint, which names its files so
    checkpoint = cast("ModelCheckpoint", callback)
    return Path(dirpath) / f"{checkpoint.CHECKPOINT_NAME_LAST}{checkpoint.FILE_EXTENSION}"


class Interruption(L.Callback):
    """Turn SIGTERM / SIGINT into a checkpoint at the current step and `RunInterrupted`."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._requeue_signal: int | None = None
        self._previous: dict[int, Any] = {}
        self._trainer: L.Trainer | None = None

    # ------------------------------------------------------------ handlers
    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        global last_interruption
        last_interruption = None
        self._trainer = trainer
        requeue = submitit_requeue_signal()
        self._requeue_signal = requeue
        for signum in (*HANDLED, *([requeue] if requeue else [])):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: leave signals to the default handling
                return

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        several = self._trainer is not None and self._trainer.world_size > 1
        if signum == signal.SIGINT and (several or self.signum == signal.SIGINT):
            # A second Ctrl+C stops now; under DDP, Ctrl+C takes Lightning's own path
            # (KeyboardInterrupt, graceful shutdown) as the ranks cannot agree on a step.
            raise KeyboardInterrupt
        previous = self._previous.get(signum)
        if signum == signal.SIGTERM and callable(previous):
            # Lightning's notifier (it sets trainer.received_sigterm, which the DDP ranks
            # act on together), and submitit's or SLURM's handlers before it.
            previous(signum, frame)
        if signum == self._requeue_signal and several:
            # The ranks stop together through Lightning's SIGTERM path; submitit's
            # requeue runs after their checkpoint (`_stop`).
            notify = self._previous.get(signal.SIGTERM)
            if callable(notify):
                notify(signal.SIGTERM, frame)
        self.signum = self.signum or signum

    def _restore_handlers(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()

    # ------------------------------------------------------------ stopping
    @override
    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.signum is not None and trainer.world_size == 1:
            raise self._stop(trainer)

    @override
    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException) and trainer.training:
            self._stop(trainer)  # DDP: every rank is here, at the same step
        self._restore_handlers()

    def _stop(self, trainer: L.Trainer) -> RunInterrupted:
        global last_interruption
        signum = self.signum or signal.SIGTERM
        path = _last_checkpoint_path(trainer)
        if path is not None:
            trainer.save_checkpoint(path)
        name = signal.Signals(signum).name
        saved = f"wrote {path} at step {trainer.global_step}" if path else "no checkpoint"
        # Also into the run's own log (<run>/train.log): SLURM truncates a requeued job's
        # stderr, and the log is where the next attempt's "continuing from" line goes.
        log.warning("%s: %s", name, saved)
        run_dir = path.parent.parent if path is not None else "<run folder>"
        if signum == self._requeue_signal:
            self._requeue_through_submitit(signum)
            message = (
                f"timed out or pre-empted ({name} from SLURM): {saved}; submitit requeued "
                "the job, which continues from it"
            )
        else:
            message = (
                f"interrupted by {name}: {saved}; continue with python src/train.py "
                f"hydra.run.dir={run_dir} resume=auto (and the same overrides)"
            )
        last_interruption = RunInterrupted(message, signum)
        return last_interruption

    def _requeue_through_submitit(self, signum: int) -> None:
        """Run submitit's handler now that the checkpoint is written: on rank 0 it
        requeues the job (or raises when it may not: too many time-outs) and exits."""
        handler = self._previous.get(signum)
        if not callable(handler):
            return
        # Requeued, it exits: the job ends as an interrupted run instead, which its
        # record and metrics.json say, and leaves no result for the launcher to take.
        with contextlib.suppress(SystemExit):
            handler(signum, None)
