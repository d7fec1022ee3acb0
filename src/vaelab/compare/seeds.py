"""Seeds as error bars: `vaelab.compare` folds runs that differ only in `seed` into
one row per setting, each metric the mean ± standard deviation over its n runs.

Only the standard library (statistics): the comparison stays import-light.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vaelab.compare.reading import Run

SEED = "seed"


@dataclass(frozen=True)
class Spread:
    """A metric over the runs of one setting: mean, sample standard deviation (0 for a
    single run) and how many runs had a value."""

    mean: float
    std: float
    n: int


@dataclass
class SeedGroup:
    """The runs of one setting (every swept parameter but the seed equal)."""

    runs: list[Run]
    spreads: dict[str, Spread] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def seeds(self) -> list[Any]:
        return [run.value(SEED) for run in self.runs]


def spread(values: Sequence[float]) -> Spread:
    """Mean and sample standard deviation (n − 1 in the denominator) of `values`."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return Spread(mean, std, len(values))


def group_by_seed(runs: Sequence[Run], swept: Sequence[str]) -> list[SeedGroup] | None:
    """Runs grouped by their values of every swept parameter but `seed`, in the order
    of each group's first run; None when `seed` is not swept or no two runs share a
    setting (nothing to fold)."""
    if SEED not in swept:
        return None
    keys = [k for k in swept if k != SEED]
    groups: dict[tuple[str, ...], SeedGroup] = {}
    for run in runs:
        setting = tuple(repr(run.value(k)) for k in keys)
        groups.setdefault(setting, SeedGroup([])).runs.append(run)
    if all(g.n == 1 for g in groups.values()):
        return None
    for group in groups.values():
        names = {key for run in group.runs for key in run.metrics}
        for key in names:
            values = [v for run in group.runs if (v := run.metrics.get(key)) is not None]
            if values:
                group.spreads[key] = spread(values)
    return list(groups.values())


def group_rows(groups: Sequence[SeedGroup]) -> list[Run]:
    """One row per group, shaped like a run for the table: the group's first run with
    its metrics replaced by their means and its name saying how many runs it holds."""
    rows = []
    for group in groups:
        first = group.runs[0]
        seeds = ",".join(str(s) for s in group.seeds)
        name = first.name if group.n == 1 else f"{first.name} (+{group.n - 1}: seeds {seeds})"
        means: dict[str, float | None] = {k: s.mean for k, s in group.spreads.items()}
        rows.append(replace(first, name=name, metrics=means))
    return rows


def spread_cell(value: Spread, decimals: int) -> str:
    """'mean ± std' with the column's decimals (a single run shows its value alone)."""
    if value.n == 1:
        return f"{value.mean:.{decimals}f}"
    return f"{value.mean:.{decimals}f} ± {value.std:.{decimals}f}"
