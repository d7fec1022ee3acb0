"""Lightning's ModelCheckpoint with its `state_key` computed once.

Lightning formats `callback.state_key` into a profiler label on every callback hook
call, several per training step; ModelCheckpoint's builds the repr of a dict of its
settings each time. The settings do not change after construction, so the key is
cached. The class keeps Lightning's name, so the key, and the checkpoint entry
stored under it, are the same as Lightning's: checkpoints move freely between the two.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint


class ModelCheckpoint(LightningModelCheckpoint):
    """`lightning.pytorch.callbacks.ModelCheckpoint`, same arguments and behaviour."""

    _cached_state_key: str | None = None

    @property
    def state_key(self) -> str:
        if self._cached_state_key is None:
            self._cached_state_key = super().state_key
        return self._cached_state_key
