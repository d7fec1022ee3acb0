"""Where in its epoch a checkpoint was written, so that a run resumed from a mid-epoch
checkpoint (a SIGTERM, a pre-emption) carries on with the very next batch.

Lightning restores the loops' counters but cannot know where a plain iterable was in
its epoch. This callback records the epoch and the number of training batches finished
(`batch_idx + 1` of the last `on_train_batch_end`) in every checkpoint, and on resume
tells the data module to start that epoch's permutation after them: the resumed run
sees the batches the uninterrupted one would have seen, in the same order.
"""

from __future__ import annotations

from typing import Any, cast

import lightning as L
from typing_extensions import override


class EpochPosition(L.Callback):
    """Save (epoch, training batches done in it) in checkpoints; resume from there."""

    def __init__(self) -> None:
        self.epoch = 0
        self.batches_done = 0

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch != self.epoch:
            self.epoch, self.batches_done = trainer.current_epoch, 0

    @override
    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.epoch, self.batches_done = trainer.current_epoch, batch_idx + 1

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batches_done": self.batches_done}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epoch = int(state_dict["epoch"])
        self.batches_done = int(state_dict["batches_done"])

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After the checkpoint's callback states are restored, before the first training
        # batch: the loader, built earlier or later, asks the data module at its first
        # pass and skips what the interrupted epoch had already done.
        # set by Lightning's data connector (Trainer does not declare it); duck-typed:
        # any data module with a `resume_epoch_at`
        datamodule = cast(Any, trainer).datamodule
        if self.batches_done and hasattr(datamodule, "resume_epoch_at"):
            datamodule.resume_epoch_at(self.epoch, self.batches_done)
