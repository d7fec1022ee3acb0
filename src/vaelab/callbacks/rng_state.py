"""Random-number state saved in every checkpoint, so a resumed run draws what the
uninterrupted run would have drawn (Lightning restores model, optimiser and loops,
but not the RNGs)."""

from __future__ import annotations

import random
from typing import Any, cast

import lightning as L
import numpy as np
import torch
from typing_extensions import override


class RNGState(L.Callback):
    """Save the Python, NumPy, torch (CPU and CUDA) RNG states; restore them on resume."""

    @override
    def state_dict(self) -> dict[str, Any]:
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

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        name, keys, pos, has_gauss, cached = state_dict["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
