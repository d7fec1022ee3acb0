"""Ranges for arguments of code vaelab does not own, whose signatures give only types.

Here: Lightning's `Trainer` and progress bar, torch's one-cycle schedule, the submitit
launchers' queue settings and the joblib launcher's `n_jobs` and `verbose` (vaelab's own
Optuna sweeper annotates its ranges itself). A test (tests/test_schema.py) fails if
an upgrade renames or drops an argument listed here.

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


def _joblib_ranges() -> dict[str, Any]:
    # joblib's Parallel: n_jobs -1 is one job per CPU, 0 is refused; verbose is a level.
    return {
        "n_jobs": _Count | Literal[-1] | None,
        "verbose": _NonNegative,
    }


def _one_cycle_ranges() -> dict[str, Any]:
    # torch's OneCycleLR: the initial lr is max_lr / div_factor and the final one
    # initial / final_div_factor, so both divide by a positive number; pct_start is the
    # share of the cycle spent warming up. torch checks pct_start only, when built.
    return {
        "div_factor": Annotated[float, Field(gt=0)],
        "final_div_factor": Annotated[float, Field(gt=0)],
        "pct_start": Annotated[float, Field(gt=0, lt=1)],
    }


def _progress_bar_ranges() -> dict[str, Any]:
    # Lightning's TQDMProgressBar: refresh_rate 0 switches the bar off; a negative rate
    # or position is taken silently.
    return {"refresh_rate": _NonNegative, "process_position": _NonNegative}


#: (module, class) of each upstream class with ranges here, and its ranges.
UPSTREAM: tuple[tuple[str, str, Callable[[], dict[str, Any]]], ...] = (
    ("lightning.pytorch", "Trainer", _trainer_ranges),
    (
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher",
        "BaseSubmititLauncher",
        _launcher_ranges,
    ),
    ("hydra_plugins.hydra_joblib_launcher.joblib_launcher", "JoblibLauncher", _joblib_ranges),
    ("torch.optim.lr_scheduler", "OneCycleLR", _one_cycle_ranges),
    (
        "lightning.pytorch.callbacks.progress.tqdm_progress",
        "TQDMProgressBar",
        _progress_bar_ranges,
    ),
)


def ranges_for(target: Any) -> dict[str, Any]:
    """Annotations that replace `target`'s own for the keys they name (else empty).

    Classes are matched by their module and name along `target`'s MRO, not by identity:
    Hydra's plugin discovery may import a plugin module a second time, and a launcher
    class built on one copy is no subclass of the other copy's class."""
    if not isinstance(target, type):
        return {}
    lineage = {f"{c.__module__}.{c.__qualname__}" for c in target.__mro__}
    for module_name, class_name, ranges in UPSTREAM:
        names = {f"{module_name}.{class_name}"}
        module = sys.modules.get(module_name)  # not imported: target cannot be a subclass
        owner = getattr(module, class_name, None) if module is not None else None
        if isinstance(owner, type):  # where a re-exported class is defined
            names.add(f"{owner.__module__}.{owner.__qualname__}")
        if lineage & names:
            return ranges()
    return {}
