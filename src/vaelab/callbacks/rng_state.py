"""Random-number state saved in every checkpoint, so a resumed run draws what the
uninterrupted run would have drawn (Lightning restores model, optimiser and loops,
but not the RNGs).

Lightning loads callback states first, before the model builds its optimisers and
schedulers and before the sanity check; anything drawn there would shift the stream.
So the saved states are applied at `on_train_start`, just before the first training
batch, where the interrupted run took the next one.
"""

from __future__ import annotations

import random
from typing import Any, cast

import lightning as L
import numpy as np
import torch
from typing_extensions import override


class RNGState(L.Callback):
    """Save the Python, NumPy, torch (CPU and CUDA) RNG states; restore them on resume."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    @override
    def state_dict(self) -> dict[str, Any]:
        return rng_states()

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is not None:
            state_dict, self._pending = self._pending, None
            set_rng_states(state_dict)


def rng_states() -> dict[str, Any]:
    """The states of the global Python, NumPy and torch (CPU and CUDA) generators."""
    # Tensors and plain tuples only: Lightning loads checkpoints with weights_only.
    # the legacy tuple of the global MT19937 generator (a dict only with legacy=False)
    state_tuple = cast("tuple[str, np.ndarray, int, int, float]", np.random.get_state())
    name, keys, pos, has_gauss, cached = state_tuple
    state = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state_dict: dict[str, Any]) -> None:
    """Set the global generators to the states `rng_states` returned."""
    random.setstate(state_dict["python"])
    name, keys, pos, has_gauss, cached = state_dict["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state_dict["torch"])
    if "cuda" in state_dict and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state_dict["cuda"])
