"""`trainer.gradient_clip_val` / `trainer.gradient_clip_algorithm` for manual optimisation.

Lightning clips gradients itself only under automatic optimisation, and refuses the two
Trainer flags otherwise. The VAE optimises manually (see `vaelab.models.vae`), so the
training app turns the flags into this callback instead: it clips with the module's
public `clip_gradients` in `on_before_optimizer_step`, the point where Lightning's own
clipping runs, after the precision plugin has unscaled 16-bit gradients. Their ranges
are the Trainer's (`vaelab.config.upstream_ranges`), checked before a run starts.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from typing_extensions import override


class GradientClipping(L.Callback):
    """Clip every optimiser's gradients to `value`: their total norm ("norm") or each
    element ("value"), before each step."""

    def __init__(self, value: float, algorithm: Literal["norm", "value"] | None = "norm") -> None:
        self.value = float(value)
        self.algorithm = algorithm or "norm"

    @override
    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        pl_module.clip_gradients(
            optimizer, gradient_clip_val=self.value, gradient_clip_algorithm=self.algorithm
        )
