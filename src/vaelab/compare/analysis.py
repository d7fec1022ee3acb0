"""Analysis: which parameters were swept and which are shared, which metrics to show
and in what order, and the runs sorted by any column."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from vaelab.compare.reading import CompareError, Run, natural_key
from vaelab.metrics.names import SCORE_KEYS, SUPERVISED_SCORES

DEFAULT_METRICS = ("val/nelbo", "test/nelbo", "test/recon", "test/kl")


OPTIONAL_METRICS = (
    "test/bpd",
    "test/nll_iwae",
    "test/active_units",
    *(f"test/{k}" for k in SUPERVISED_SCORES),
)


# Within a stage, metrics in the order a reader expects them; others follow by name.
METRIC_ORDER = (
    "nelbo",
    "recon",
    "kl",
    "loss",
    "beta",
    "bpd",
    "nll_iwae",
    "active_units",
    *SCORE_KEYS,
)


STAGE_ORDER = ("val", "test", "train")


def _same(value: Any) -> Any:
    """A hashable stand-in under which 2 and 2.0 are equal."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value if isinstance(value, str | bool | type(None)) else json.dumps(value)


def parameter_columns(runs: Sequence[Run]) -> tuple[list[str], dict[str, Any]]:
    """(swept keys, {constant key: value}) over the runs' params and group choices.

    A key is swept when its value differs between runs; keys only implied by a group's
    default (choices) count only when they differ, so the defaults do not clutter the
    summary.
    """
    ordered: dict[str, bool] = {}  # key -> typed by a user (override or recorded param)
    for run in runs:
        for key in run.params:
            ordered.setdefault(key, True)
    for run in runs:
        for key in run.choices:
            if not key.startswith("hydra"):
                ordered.setdefault(key, False)
    swept, constants = [], {}
    for key, typed in ordered.items():
        values = [run.value(key) for run in runs]
        if len({_same(v) for v in values}) > 1:
            swept.append(key)
        elif typed and values and values[0] is not None:
            constants[key] = values[0]
    return swept, constants


def metric_sort_key(key: str) -> tuple[int, int, list[Any]]:
    """val before test, nelbo/recon/kl first within a stage, kl_dim/2 before kl_dim/10."""
    stage, _, name = key.partition("/")
    stage_rank = STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)
    name_rank = METRIC_ORDER.index(name) if name in METRIC_ORDER else len(METRIC_ORDER)
    return (stage_rank, name_rank, natural_key(name))


def available_metrics(runs: Sequence[Run]) -> list[str]:
    """Every metric any run recorded, in reading order."""
    return sorted({key for run in runs for key in run.metrics}, key=metric_sort_key)


def default_metrics(runs: Sequence[Run]) -> list[str]:
    """The headline columns present in at least one run.

    Runs fitted without a test stage have only val/ metrics; then the val/
    reconstruction and KL stand in for the test ones.
    """
    present = set(available_metrics(runs))
    wanted = list(DEFAULT_METRICS)
    if not any(key.startswith("test/") for key in present):
        wanted = ["val/nelbo", "val/recon", "val/kl", "val/bpd"]
    return [key for key in (*wanted, *OPTIONAL_METRICS) if key in present]


def choose_metrics(runs: Sequence[Run], requested: Sequence[str] | None) -> list[str]:
    available = available_metrics(runs)
    if not requested:
        return default_metrics(runs)
    chosen: list[str] = []
    for item in requested:
        for key in (k.strip() for k in item.split(",")):
            if key == "all":
                chosen += [k for k in available if k not in chosen]
            elif key and key not in available:
                raise CompareError(
                    f"no run recorded the metric '{key}'; choose from: {', '.join(available)}"
                )
            elif key and key not in chosen:
                chosen.append(key)
    return chosen


def _order_token(value: Any) -> tuple[int, float, str]:
    """Numbers numerically, then text; missing and non-finite values sort last."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (2, 0.0, "")
    if isinstance(value, int | float):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _cell(run: Run, key: str) -> Any:
    """A run's value in a table column: `run`, a metric, or a parameter."""
    if key == "run":
        return run.name
    if key in run.metrics:
        return run.metrics[key]
    return run.value(key)


def sort_runs(runs: Sequence[Run], keys: Sequence[str], descending: bool = False) -> list[Run]:
    """Runs ordered by `keys` (first key first), numbers numerically; missing last.

    The sort is stable: runs equal on every key keep their order.
    """
    ordered = list(runs)
    for key in reversed(keys):
        present = [r for r in ordered if _order_token(_cell(r, key))[0] < 2]
        missing = [r for r in ordered if _order_token(_cell(r, key))[0] == 2]

        def token(r: Run, k: str = key) -> tuple[int, float, str]:
            return _order_token(_cell(r, k))

        present.sort(key=token, reverse=descending)
        ordered = present + missing
    return ordered
