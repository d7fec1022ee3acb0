"""The VAE's optimiser config: as it is instantiated, and what resuming does with it.

- `optimizer_arguments`: the presets' `fused: true` asks for the one-kernel
  implementation where the optimiser has one (Adam, AdamW, SGD), so
  `model.optimizer._target_=...RMSprop` alone works, without also removing the key.
  The pre-flight checks build the optimiser from the same arguments.
- `apply_config_to_saved_optimizer`: resuming trains with the config's optimiser
  settings, not the checkpoint's (the resume policy `VAE.on_load_checkpoint` applies).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Annotated, Any

from hydra.utils import get_class

from vaelab.config.schema import Prepared, TargetConfig

log = logging.getLogger(__name__)

#: Optimiser arguments that choose an implementation of the same algorithm.
IMPLEMENTATION_FLAGS = ("fused", "foreach", "capturable", "differentiable")


def optimizer_arguments(config: Mapping[str, Any]) -> dict[str, Any]:
    """The optimiser config as it is instantiated (`fused` dropped where the class has
    no such argument)."""
    config = dict(config)
    optimizer_class = get_class(config["_target_"])
    if "fused" in config and "fused" not in inspect.signature(optimizer_class).parameters:
        del config["fused"]
    return config


#: The VAE's `optimizer` argument: a `_target_` config, checked as `optimizer_arguments`
#: leaves it.
OptimizerConfig = Annotated[TargetConfig, Prepared(optimizer_arguments)]


def _as_list(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def apply_config_to_saved_optimizer(
    checkpoint: dict[str, Any], config: Mapping[str, Any], scheduled: bool
) -> None:
    """Write the optimiser settings of `config` (the VAE's `optimizer` hyperparameter)
    into the checkpoint's saved parameter groups, before Lightning loads them.

    Lightning restores the optimiser's state dict, whose parameter groups carry the
    settings it was saved with (lr, betas, ...); the run would train with those while
    its hyperparameters record the config's. Each change is logged. The implementation
    flags (`IMPLEMENTATION_FLAGS`: how a step is computed, not what) stay as saved, with
    the state they shaped. With a learning-rate schedule (`scheduled`) the schedule owns
    the rate: its state (restored by Lightning) continues from the checkpoint's, and so
    does the rate it set. (Another optimiser class is refused before training starts:
    its state would not fit.)"""
    wanted = optimizer_arguments(config)
    for key in ("_target_", *IMPLEMENTATION_FLAGS):
        wanted.pop(key, None)
    if scheduled:
        lr = wanted.pop("lr", None)
        saved = checkpoint.get("hyper_parameters", {}).get("optimizer", {}).get("lr")
        if lr is not None and saved is not None and saved != lr:
            log.warning(
                "resume: model.optimizer.lr=%s is not applied; the learning-rate "
                "schedule continues from the checkpoint's (model.optimizer.lr=%s)",
                lr,
                saved,
            )
    for state in checkpoint.get("optimizer_states", [])[:1]:  # the VAE's; then the objective's
        for group in state.get("param_groups", []):
            for key, value in wanted.items():
                if key in group and _as_list(group[key]) != _as_list(value):
                    log.info(
                        "resume: model.optimizer.%s=%s (the checkpoint had %s): applied",
                        key,
                        value,
                        group[key],
                    )
                    group[key] = tuple(value) if isinstance(group[key], tuple) else value
