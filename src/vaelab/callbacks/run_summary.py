"""metrics.json: the run's final numbers, the source of truth for `vaelab.compare`.

W&B offline runs cannot be read back, so every run folder carries its own summary:
final validation and test metrics under the logged keys of docs/design.md, the best
checkpoint, the parameters and overrides that made the run, its wall time and the
versions of the packages it ran with.
"""

from __future__ import annotations

import functools
import math
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

from vaelab.callbacks.nonfinite_guard import NonFiniteGuard
from vaelab.callbacks.timing import Timing
from vaelab.runs.files import read_summary_file, write_json

PACKAGES = ("vaelab", "torch", "lightning", "hydra-core", "omegaconf", "torchmetrics", "wandb")


@functools.cache  # the same for every write of a run: read the metadata once
def _installed_versions() -> tuple[tuple[str, str], ...]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return tuple(versions.items())


def package_versions() -> dict[str, str]:
    return dict(_installed_versions())  # a fresh dict: callers may add to it


def hydra_context() -> dict[str, Any]:
    """The overrides and group choices of the running Hydra job, if there is one."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {"overrides": [], "choices": {}}
    hydra_cfg = HydraConfig.get()
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra/")}
    return {"overrides": list(hydra_cfg.overrides.task), "choices": dict(choices)}


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


class RunSummary(L.Callback):
    """Collect the final val metrics (fit end) and test metrics (test end) into `path`.

    `params`: the run's headline parameters (beta, latent_dim, seed, ...), recorded as
    given so that comparisons need not parse overrides: plain values, each one a column
    of `python -m vaelab.compare`.
    """

    def __init__(
        self, path: str, params: dict[str, str | int | float | bool | None] | None = None
    ) -> None:
        self.path = Path(path)
        self.params = dict(params or {})
        self.started = time.time()
        self.summary: dict[str, Any] = {"status": "running", "metrics": {}}

    def _collect(self, trainer: L.Trainer, prefix: str) -> None:
        for key, value in trainer.callback_metrics.items():
            if key.startswith(prefix):
                self.summary["metrics"][key] = _finite_or_none(float(value))

    def _earlier_metrics(self, prefix: str) -> dict[str, Any]:
        earlier, _ = read_summary_file(self.path)
        if earlier is None:
            return {}
        return {k: v for k, v in earlier["metrics"].items() if k.startswith(prefix)}

    @rank_zero_only
    def write(self, trainer: L.Trainer, status: str) -> None:
        # set by Lightning's callback connector; Trainer does not declare it
        callbacks: list[Callback] = cast(Any, trainer).callbacks
        checkpoint = next((cb for cb in callbacks if isinstance(cb, ModelCheckpoint)), None)
        best = None
        if checkpoint is not None and checkpoint.best_model_path:
            score = checkpoint.best_model_score
            best = {
                "path": checkpoint.best_model_path,
                "monitor": checkpoint.monitor,
                "score": None if score is None else _finite_or_none(float(score)),
            }
        # set by Lightning's data connector; Trainer does not declare it
        datamodule: L.LightningDataModule | None = cast(Any, trainer).datamodule
        if datamodule is not None:
            # e.g. MNIST's binarisation: part of what the numbers mean.
            self.summary["data"] = {
                "class": type(datamodule).__name__,
                **{
                    k: v
                    for k, v in datamodule.hparams.items()
                    if isinstance(v, str | int | float | bool)
                },
            }
        model: Any = trainer.lightning_module
        if hasattr(model, "kl_estimate"):
            # What the logged `kl` is: analytic, or the single-sample log q(z|x) − log p(z).
            self.summary["latent"] = {
                "structure": type(model.latents).__name__,
                "groups": model.latents.group_sizes,
                "prior": type(model.prior).__name__,
                "posterior": model.posterior_family,
                "kl": model.kl_estimate,
                # the labels a conditional model reads, with their levels (None: none)
                "conditional": model.label_sizes or None,
            }
        guard = next((cb for cb in callbacks if isinstance(cb, NonFiniteGuard)), None)
        if guard is not None:
            self.summary["skipped_steps"] = guard.skipped  # non-finite losses, not trained on
        timing = next((cb for cb in callbacks if isinstance(cb, Timing)), None)
        if timing is not None:
            self.summary["timing"] = timing.summary()
        self.summary.update(
            {
                "status": status,
                "params": self.params,
                **hydra_context(),
                "best_checkpoint": best,
                "epochs": trainer.current_epoch,
                "global_step": trainer.global_step,
                "world_size": trainer.world_size,
                "wall_time_s": round(time.time() - self.started, 3),
                "versions": package_versions(),
            }
        )
        write_json(self.path, self.summary)

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path and not self.summary["metrics"]:
            # Resumed: the val/ numbers of the fit so far stay unless this fit replaces
            # them (a finished fit resumed only to test again trains no epoch).
            self.summary["metrics"] = self._earlier_metrics("val/")
        # Marks the folder as a run in progress (`compare` says "still running" rather
        # than "no metrics.json"); a resumed run goes back to this state.
        self.write(trainer, "running")

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._collect(trainer, "val/")
        self.write(trainer, "fitted")

    @override
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._collect(trainer, "test/")
        self.write(trainer, "finished")

    @override
    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        from vaelab.callbacks.interruption import RunInterrupted

        self.summary["error"] = f"{type(exception).__name__}: {exception}"
        stopped = (RunInterrupted, SIGTERMException, KeyboardInterrupt)
        self.write(trainer, "interrupted" if isinstance(exception, stopped) else "failed")
