"""The Lightning internals vaelab relies on, each named with the upstream code it
reads, and guarded by tests/test_lightning_internals.py, which fails when an upgrade
removes one.

- `step_uncounted`: `lightning.pytorch.core.optimizer.LightningOptimizer._on_before_step`
  and `._on_after_step`, the callbacks through which
  `lightning.pytorch.loops.optimization.manual._ManualOptimization` counts optimiser
  steps (`trainer.global_step`) in manual optimisation.
- `save_last_if_stale`: `lightning.pytorch.callbacks.ModelCheckpoint._save_last_checkpoint`,
  `._should_skip_saving_checkpoint`, `._should_save_on_train_epoch_end`,
  `._monitor_candidates` and `._last_global_step_saved`: since Lightning 2.6,
  `on_train_epoch_end` / `on_validation_end` write `last.ckpt` only when a top-k
  checkpoint was written at the same step, so a run whose monitored metric stopped
  improving keeps a stale `last.ckpt`.
- `CheapHookName`: `LightningModule._current_fx_name`, which
  `lightning.pytorch.trainer.call._call_lightning_module_hook` (and the callback and
  strategy hook callers) set before and after every hook, about 40 times a training
  step; through `nn.Module.__setattr__` each costs a measurable share of a small
  model's step on a CPU.
- `cached_signature`: `lightning.pytorch.utilities.signature_utils.is_param_in_hook_signature`,
  which the training loop calls on `training_step` every step (does it take
  `batch_idx`?); `inspect.signature` returns a function's `__signature__` when it has one.
- `publish_callback_metrics`: `lightning.pytorch.trainer.connectors.logger_connector.
  logger_connector._LoggerConnector._callback_metrics`, the dict behind
  `trainer.callback_metrics`, which `self.log` fills from its result collection and
  monitors (EarlyStopping, ModelCheckpoint) read.
- `skip_unused_step_hooks`: `lightning.pytorch.trainer.call._call_callback_hooks`, which
  calls a callback's hook only when `callable(getattr(callback, hook_name))`, and wraps
  each call in the profiler and a `trainer.lightning_module` lookup: a callback that
  leaves a per-step hook as `Callback`'s no-op still costs that every step.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def _do_nothing() -> None:
    return None


def step_uncounted(optimizer: Any) -> None:
    """`optimizer.step()` for a `LightningOptimizer` — through the strategy, the
    precision plugin (a 16-bit gradient scaler) and the `on_before_optimizer_step` hooks
    (gradient clipping, the non-finite guard) — without advancing `trainer.global_step`.

    In manual optimisation Lightning counts every optimiser's step, so a model with a
    second optimiser (FactorVAE's discriminator) would advance the global step twice a
    batch: schedules, `max_steps`, `log_every_n_steps` and checkpoint names would all
    run at double speed. The model's own optimiser is counted; this one is not."""
    before, after = optimizer._on_before_step, optimizer._on_after_step
    optimizer._on_before_step = optimizer._on_after_step = _do_nothing
    try:
        optimizer.step()
    finally:
        optimizer._on_before_step, optimizer._on_after_step = before, after


def save_last_if_stale(callback: Any, trainer: Any, at_epoch_end: bool) -> None:
    """Write `callback`'s `last.ckpt` at this step if Lightning did not.

    Called after ModelCheckpoint's own `on_train_epoch_end` (`at_epoch_end`) or
    `on_validation_end`: Lightning saves there only if the monitored metric made the top
    k, so `last.ckpt` fell behind whenever it stopped improving, and `resume=auto` then
    trained epochs again. Here it is written wherever Lightning would have saved."""
    if not callback.save_last or callback._should_skip_saving_checkpoint(trainer):
        return
    if callback._should_save_on_train_epoch_end(trainer) != at_epoch_end:
        return  # the other hook is the one that saves in this configuration
    if callback._last_global_step_saved != trainer.global_step:
        callback._save_last_checkpoint(trainer, callback._monitor_candidates(trainer))


def publish_callback_metrics(trainer: Any, values: dict[str, Any]) -> None:
    """Put `values` (0-d tensors) into `trainer.callback_metrics`, as `self.log` does
    for a value logged on this step, without `self.log`'s per-key cost (see
    `vaelab.models.vae`). The public `trainer.callback_metrics` recomputes the result
    collection's values on every read, so the dict behind it is updated directly; it is
    looked up each time, since Lightning replaces it (moving metrics to the CPU at
    teardown, resetting them between stages)."""
    trainer._logger_connector._callback_metrics.update(values)


#: The callback hooks Lightning calls on every training step.
PER_STEP_CALLBACK_HOOKS = (
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_before_zero_grad",
    "on_before_optimizer_step",
    "on_train_batch_end",
)


def skip_unused_step_hooks(callbacks: list[Any]) -> None:
    """Let Lightning skip each callback's per-step hooks that are `Callback`'s own
    no-ops, by setting them to None on the instance (Lightning calls only callable
    hooks). About ten callbacks times five hooks a step, each call a few profiler and
    property lookups: a measurable share of a small model's step (bench/speed.py)."""
    from lightning.pytorch.callbacks import Callback

    for callback in callbacks:
        for name in PER_STEP_CALLBACK_HOOKS:
            if getattr(type(callback), name, None) is getattr(Callback, name):
                setattr(callback, name, None)


class CheapHookName:
    """Mixin for a LightningModule: `_current_fx_name`, a plain string Lightning sets
    around every hook call, is stored without `nn.Module.__setattr__`'s checks for
    parameters, buffers and submodules (it is none of them)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


def cached_signature(function: F) -> F:
    """`function` with its signature computed once: Lightning inspects `training_step`'s
    signature on every step, a fixed cost per step (docs/performance.md)."""
    function.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
    return function
