"""Lightning's ModelCheckpoint with its `state_key` computed once, and a run folder that
can be moved or copied.

Lightning formats `callback.state_key` into a profiler label on every callback hook
call, several per training step; ModelCheckpoint's builds the repr of a dict of its
settings each time. The settings do not change after construction, so the key is
cached. The class keeps Lightning's name, so the key, and the checkpoint entry
stored under it, are the same as Lightning's: checkpoints move freely between the two.

A checkpoint remembers the folder its files were in. Resumed in a run folder that was
moved or copied since, Lightning's callback drops what it knew (the best score, the
last checkpoint) and, finding a `last.ckpt` it did not write, saves `last-v1.ckpt`
beside it; every later resume then starts again from the stale `last.ckpt`. Here the
paths of the old folder are read as the same files in the new one, so the run keeps
writing its own `last.ckpt` and `best.ckpt`.

The same happens on resuming from `best.ckpt` (`resume=intact` when `last.ckpt` is
damaged): Lightning writes `best.ckpt` before `last.ckpt` in the same hook, so its state
names no last checkpoint yet, and the existing `last.ckpt` of this very run would look
foreign. A resumed run's own `last.ckpt` is taken as the one it writes.

Lightning 2.6 writes `last.ckpt` only on steps where the monitored metric made the top
k; here it is written at every epoch's save point, so it always holds the newest epoch
(`vaelab.lightning.internals.save_last_if_stale`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from typing_extensions import override

from vaelab.lightning.internals import save_last_if_stale

#: The entries of Lightning's ModelCheckpoint state that hold a path in its folder.
PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")


class ModelCheckpoint(LightningModelCheckpoint):
    """`lightning.pytorch.callbacks.ModelCheckpoint`, same arguments and behaviour."""

    _cached_state_key: str | None = None

    @override
    @property
    def state_key(self) -> str:
        if self._cached_state_key is None:
            self._cached_state_key = super().state_key
        return self._cached_state_key

    @override
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        save_last_if_stale(self, trainer, at_epoch_end=True)

    @override
    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_validation_end(trainer, pl_module)
        save_last_if_stale(self, trainer, at_epoch_end=False)

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_in = state_dict.get("dirpath")
        if saved_in and self.dirpath and not _same_folder(saved_in, self.dirpath):
            state_dict = moved_state(state_dict, str(saved_in), str(self.dirpath))
        super().load_state_dict(state_dict)
        if self.save_last and self.dirpath and not self.last_model_path:
            last = self.format_checkpoint_name({}, self.CHECKPOINT_NAME_LAST)
            if os.path.isfile(last):
                self.last_model_path = last


def _same_folder(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def moved_state(state: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """ModelCheckpoint's state with each path under folder `old` put under `new`."""

    def move(path: Any) -> Any:
        if not isinstance(path, str) or not path:
            return path
        try:
            return str(Path(new) / Path(path).relative_to(old))
        except ValueError:  # not in the old folder: left as it is
            return path

    moved = {**state, "dirpath": new}
    for key in PATH_KEYS:
        if key in moved:
            moved[key] = move(moved[key])
    moved["best_k_models"] = {move(k): v for k, v in (state.get("best_k_models") or {}).items()}
    return moved
