"""Learning-rate schedules: what `model.scheduler` builds, stepped once per optimiser step.

`model.scheduler` is null (a constant learning rate) or a `_target_` config of a
`torch.optim.lr_scheduler.LRScheduler` class, built on the VAE's optimiser (not on an
objective's own, e.g. FactorVAE's discriminator). Every schedule steps once per
optimiser step, so its counts (`warmup_steps`, `StepLR.step_size`, ...) are optimiser
steps, as `trainer.max_steps` and the global step are. A class that takes `total_steps`
(vaelab's `WarmupCosine`, torch's `OneCycleLR`) gets the run's planned number of
optimiser steps unless the config sets it. A resumed run continues the checkpoint's
schedule state (Lightning saves and restores it with the optimiser's).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from torch.optim.lr_scheduler import LambdaLR, LRScheduler
from typing_extensions import override

from vaelab.config.constraints import Fraction, NonNegativeInt, PositiveInt
from vaelab.errors import ConfigError


def warmup_cosine_factor(
    total_steps: int, warmup_steps: int = 0, final_lr_fraction: float = 0.0
) -> Callable[[int], float]:
    """The factor on the learning rate at optimiser step `step` (0 = the first step):
    (step + 1) / warmup_steps during the warm-up, so the first step already trains; then
    a half cosine from 1 at the end of the warm-up to `final_lr_fraction` at
    `total_steps`, and that fraction after it."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_lr_fraction + (1 - final_lr_fraction) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )

    return factor


class WarmupCosine(LambdaLR):
    """Linear warm-up over `warmup_steps`, then cosine decay of the optimiser's learning
    rate to `final_lr_fraction` of it at `total_steps` (the run's optimiser steps unless
    set). The factor is a closure, not state: a resumed run takes `warmup_steps` and
    `final_lr_fraction` from its config and the step count from its checkpoint."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: PositiveInt,
        warmup_steps: NonNegativeInt = 0,
        final_lr_fraction: Fraction = 0.0,
        last_epoch: int = -1,
    ) -> None:
        super().__init__(
            optimizer,
            warmup_cosine_factor(total_steps, warmup_steps, final_lr_fraction),
            last_epoch,
        )

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # The optimiser's saved rate was set by the schedule it was saved under; a run
        # resumed with a longer one (more max_epochs) takes this schedule's rate at once.
        # Lightning restores the optimiser first, then its scheduler.
        super().load_state_dict(state_dict)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr


def takes_total_steps(config: Mapping[str, Any] | None) -> bool:
    """Whether the scheduler of `config` is sized by the run's length and the config
    leaves that to the run (`total_steps` unset)."""
    if not config:
        return False
    parameters = inspect.signature(get_class(config["_target_"])).parameters
    return "total_steps" in parameters and config.get("total_steps") is None


def build_scheduler(
    config: Mapping[str, Any] | None,
    optimizer: torch.optim.Optimizer,
    total_steps: Callable[[], int | float],
) -> LRScheduler | None:
    """The scheduler of `model.scheduler` on `optimizer` (None for a constant rate).
    `total_steps` is called only for a class that needs the run's length."""
    if not config:
        return None
    extra: dict[str, Any] = {}
    if takes_total_steps(config):
        steps = total_steps()
        if not math.isfinite(steps):
            raise ConfigError(
                f"model.scheduler={config['_target_']} is sized by the run's length, and this "
                "run has none: set trainer.max_steps=<steps> or trainer.max_epochs=<epochs>, "
                "or model.scheduler.total_steps=<steps>"
            )
        extra["total_steps"] = max(1, int(steps))
    try:
        # Plain lists, not ListConfigs: torch's schedulers do arithmetic on list values.
        scheduler: LRScheduler = instantiate(
            dict(config), optimizer=optimizer, _convert_="all", **extra
        )
    except InstantiationException as exc:
        cause = exc.__cause__
        if not isinstance(cause, ValueError):
            raise
        # torch's own range checks: "Expected float between 0 and 1 pct_start, but got 2"
        raise ConfigError(f"model.scheduler: {cause}") from None
    return scheduler


def check_scheduler(
    config: Mapping[str, Any] | None, optimizer: torch.optim.Optimizer, trainer_cfg: Any
) -> None:
    """Build the scheduler before anything else is created, so its own range checks
    and a run with no length to size it by fail first, in one line."""
    max_steps = trainer_cfg.get("max_steps", -1)
    endless = max_steps == -1 and trainer_cfg.get("max_epochs", -1) == -1
    # The exact count needs the data loader; any finite count exercises the checks.
    planned = math.inf if endless else max_steps if max_steps > 0 else 1000
    build_scheduler(config, optimizer, lambda: planned)
