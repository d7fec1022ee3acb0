"""The Lightning side of a job: the training Trainer built from `cfg.trainer` (the
pre-flight checks build it the same way), Lightning's output through Hydra's logging,
the torch device and the CPU float flags the apps set before any tensor work.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

if TYPE_CHECKING:
    import torch


def tidy_lightning_output() -> None:
    """Send Lightning's messages through Hydra's logging (console and <run>/train.log),
    once each, and drop its advertising tip and a known internal deprecation warning."""
    import warnings

    lightning_logger = logging.getLogger("lightning")
    for handler in list(lightning_logger.handlers):
        lightning_logger.removeHandler(handler)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "💡 Tip" not in str(record.msg)
    )
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # Wrong for vaelab's loaders: EpochPosition resumes a mid-epoch checkpoint exactly.
    warnings.filterwarnings("ignore", message=r".*checkpoint that ended before the epoch ended.*")


def use_flush_denormal(enabled: bool) -> None:
    """Flush subnormal floats to zero (x86 FTZ/DAZ) in this process.

    The flag is per thread and new threads copy it from the thread that creates them,
    so it must be set before the first parallel op starts torch's CPU thread pool:
    `train` calls this before it builds data or model."""
    import torch

    torch.set_flush_denormal(enabled)


def pick_device(name: str) -> torch.device:
    """`name` as a torch device; "auto" is the GPU where there is one, else the CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def without_disabled(callbacks: list[Any], trainer_cfg: DictConfig) -> list[Any]:
    """Drop the progress bar / checkpoint callbacks that `trainer.enable_progress_bar=false`
    or `trainer.enable_checkpointing=false` switch off. Lightning refuses the pair with an
    error; a user who types the trainer flag means "off", whatever callbacks= holds."""
    from lightning.pytorch.callbacks import Checkpoint, ProgressBar

    disabled: tuple[type, ...] = ()
    if not trainer_cfg.get("enable_progress_bar", True):
        disabled += (ProgressBar,)
    if not trainer_cfg.get("enable_checkpointing", True):
        disabled += (Checkpoint,)
    return [c for c in callbacks if not isinstance(c, disabled)]


def build_trainer(trainer_cfg: DictConfig, callbacks: list[Any], loggers: list[Any]) -> Any:
    """The Lightning Trainer of `cfg.trainer`. The VAE optimises manually, which
    Lightning's gradient clipping and accumulation refuse: `gradient_clip_val` becomes
    the `GradientClipping` callback and `accumulate_grad_batches` is the model's
    (`VAE.configure_accumulation`). With no `trainer.profiler` chosen the trainer gets
    `NullProfiler`, which costs less per step than Lightning's default pass-through, and
    callbacks' per-step hooks that do nothing are not called (`skip_unused_step_hooks`)."""
    from hydra.utils import instantiate

    from vaelab.callbacks import GradientClipping
    from vaelab.lightning.internals import skip_unused_step_hooks
    from vaelab.lightning.profiler import NullProfiler

    profiler = {} if trainer_cfg.get("profiler") else {"profiler": NullProfiler()}
    clip = trainer_cfg.get("gradient_clip_val")
    clipping = [GradientClipping(clip, trainer_cfg.get("gradient_clip_algorithm"))] if clip else []
    trainer = instantiate(
        trainer_cfg,
        callbacks=[*callbacks, *clipping],
        logger=loggers or False,
        gradient_clip_val=None,
        gradient_clip_algorithm=None,
        accumulate_grad_batches=1,  # the model accumulates (manual optimisation)
        **profiler,
    )
    skip_unused_step_hooks(trainer.callbacks)  # Lightning's own defaults included
    return trainer
