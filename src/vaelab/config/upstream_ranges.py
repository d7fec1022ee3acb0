"""Ranges for arguments of code vaelab does not own, whose signatures give only types.

Here: Lightning's `Trainer` and the submitit launchers' queue settings (vaelab's own
Optuna sweeper annotates its ranges itself). A test (tests/test_schema.py) fails if an
upgrade renames or drops an argument listed here.

`vaelab.config.schema` reads every argument's rule from its target's signature. Lightning's
`Trainer` types its arguments (`max_epochs: Optional[int]`) but does not say that
`max_epochs` is >= -1 or `log_every_n_steps` >= 1; some it checks only once training
starts, some never (a negative `log_every_n_steps` is taken silently). The bounds it
documents are added here, the one place, keyed by the class they belong to. Types are
still Lightning's own: these replace an annotation only for the keys listed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field

_NonNegative = Annotated[int, Field(ge=0)]
_Count = Annotated[int, Field(ge=1)]
#: A count of batches, or a fraction of the split (Lightning's limit_*_batches).
_Batches = _NonNegative | Annotated[float, Field(ge=0, le=1)] | None


def _trainer_ranges() -> dict[str, Any]:
    # Lightning's docs: max_epochs -1 means "no limit", max_steps -1 likewise,
    # num_sanity_val_steps -1 means "the whole validation set".
    return {
        "max_epochs": Annotated[int, Field(ge=-1)] | None,
        "min_epochs": _NonNegative | None,
        "max_steps": Annotated[int, Field(ge=-1)],
        "min_steps": _NonNegative | None,
        "log_every_n_steps": _Count | None,
        "check_val_every_n_epoch": _Count | None,
        "num_nodes": _Count,
        "num_sanity_val_steps": Annotated[int, Field(ge=-1)] | None,
        "accumulate_grad_batches": _Count,
        "gradient_clip_val": Annotated[float, Field(gt=0)] | None,
        "gradient_clip_algorithm": Literal["norm", "value"] | None,
        "limit_train_batches": _Batches,
        "limit_val_batches": _Batches,
        "limit_test_batches": _Batches,
        "limit_predict_batches": _Batches,
        "devices": Annotated[int, Field(ge=-1)] | list[_NonNegative] | str,
    }


def _launcher_ranges() -> dict[str, Any]:
    # submitit's queue settings (hydra_submitit_launcher.config.BaseQueueConf and
    # SlurmQueueConf): Hydra types them, nothing bounds them before sbatch sees them.
    return {
        "timeout_min": _Count,
        "cpus_per_task": _Count | None,
        "gpus_per_node": _NonNegative | None,
        "tasks_per_node": _Count,
        "mem_gb": _Count | None,
        "nodes": _Count,
        "signal_delay_s": _NonNegative,
        "max_num_timeout": _NonNegative,
        "array_parallelism": _Count,
    }


#: (module, class) of each upstream class with ranges here, and its ranges.
UPSTREAM: tuple[tuple[str, str, Callable[[], dict[str, Any]]], ...] = (
    ("lightning.pytorch", "Trainer", _trainer_ranges),
    (
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher",
        "BaseSubmititLauncher",
        _launcher_ranges,
    ),
)


def ranges_for(target: Any) -> dict[str, Any]:
    """Annotations that replace `target`'s own for the keys they name (else empty)."""
    if not isinstance(target, type):
        return {}
    for module_name, class_name, ranges in UPSTREAM:
        module = sys.modules.get(module_name)  # not imported: target cannot be a subclass
        owner = getattr(module, class_name, None) if module is not None else None
        if owner is not None and issubclass(target, owner):
            return ranges()
    return {}
