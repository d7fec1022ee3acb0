"""Output as text: the aligned table printed on stdout, `comparison.csv` (one row a run,
full precision) and `comparison_seeds.csv` (one row a setting, over its seeds)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaelab.compare.analysis import available_metrics, metric_sort_key
from vaelab.compare.reading import Run
from vaelab.compare.seeds import SeedGroup, spread_cell
from vaelab.metrics.names import SCORE_KEYS

MISSING = "-"


# Metrics that count things: shown as whole numbers.
COUNT_METRICS = ("active_units",)


CSV_NAME = "comparison.csv"


SEEDS_CSV_NAME = "comparison_seeds.csv"


def format_param(value: Any) -> str:
    """A parameter value as typed: 0.5, 4, 1e-3, mlp."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def column_decimals(values: Sequence[float]) -> int:
    """Decimals that show five significant digits of the column's largest value."""
    finite = [abs(v) for v in values if math.isfinite(v)]
    largest = max(finite, default=0.0)
    if largest == 0.0:
        return 1
    return max(0, min(6, 4 - math.floor(math.log10(largest))))


def format_metric_column(values: Sequence[float | None], count: bool = False) -> list[str]:
    """One column's metric cells with a shared number of decimals, so points line up.

    `count`: the metric counts something (active units); whole numbers show no decimals.
    """
    present = [v for v in values if v is not None]
    if count and all(math.isfinite(v) and float(v).is_integer() for v in present):
        decimals = 0
    else:
        decimals = column_decimals(present)
    return [MISSING if v is None else f"{v:.{decimals}f}" for v in values]


def render_table(
    runs: Sequence[Run],
    swept: Sequence[str],
    metrics: Sequence[str],
    groups: Sequence[SeedGroup] | None = None,
) -> str:
    """An aligned text table: swept parameters, metrics, then the run folder's name.

    Numbers are right-aligned, text left-aligned. A metric a run does not have, or
    recorded as non-finite (null in metrics.json), shows as '-' or 'nan'. With
    `groups` (runs folded over their seeds, one row each, `runs` their rows), an `n`
    column follows the parameters and each metric shows mean ± standard deviation.
    """
    columns: list[tuple[str, list[str], bool]] = []  # (header, cells, right-aligned)
    for key in swept:
        values = [run.value(key) for run in runs]
        numeric = all(isinstance(v, int | float) or v is None for v in values)
        columns.append((key, [format_param(v) for v in values], numeric))
    if groups is not None:
        columns.append(("n", [str(g.n) for g in groups], True))
    for key in metrics:
        values = [run.metrics.get(key) for run in runs]
        cells = format_metric_column(values, count=key.endswith(COUNT_METRICS))
        if groups is not None:
            decimals = column_decimals([v for v in values if v is not None])
            cells = [
                spread_cell(g.spreads[key], decimals) if key in g.spreads else MISSING
                for g in groups
            ]
        # null in metrics.json means the value was non-finite; absent means not logged.
        cells = [
            "nan" if key in run.metrics and v is None else c
            for run, v, c in zip(runs, values, cells, strict=True)
        ]
        columns.append((key, cells, True))
    if any(run.protocol for run in runs) and any(m.split("/")[-1] in SCORE_KEYS for m in metrics):
        # Which protocol produced each run's disentanglement numbers (dlib, fast).
        columns.append(("protocol", [run.protocol or MISSING for run in runs], False))
    columns.append(("run", [run.name for run in runs], False))
    widths = [max(len(header), *(len(c) for c in cells)) for header, cells, _ in columns]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, (_, _, right) in zip(cells, widths, columns, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rows = [line([header for header, _, _ in columns]), line(["-" * w for w in widths])]
    rows += [line([cells[i] for _, cells, _ in columns]) for i in range(len(runs))]
    return "\n".join(rows)


def csv_text(value: Any) -> str:
    """A CSV cell that reads back to the same value: full float precision, '' missing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)  # repr is the shortest string that round-trips exactly
    return str(value)


def write_csv(
    path: Path,
    runs: Sequence[Run],
    swept: Sequence[str],
    constants: dict[str, Any],
    metrics: Sequence[str],
) -> Path:
    """comparison.csv: one row a run, in table order, with every parameter and metric.

    Columns: run, status, the swept and constant parameters, the table's metrics then
    every other metric, the protocol of the disentanglement numbers, the metrics taken
    from eval.json, wall_time_s, path. A metric recorded as non-finite is 'nan'; a
    missing value is empty.
    """
    all_metrics = [*metrics, *(k for k in available_metrics(runs) if k not in metrics)]
    params = [*swept, *constants]
    header = [
        "run",
        "status",
        *params,
        *all_metrics,
        "disentanglement_protocol",
        "from_eval_json",
        "wall_time_s",
        "path",
    ]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for run in runs:
            metric_cells = [
                "nan"
                if key in run.metrics and run.metrics[key] is None
                else csv_text(run.metrics.get(key))
                for key in all_metrics
            ]
            writer.writerow(
                [
                    run.name,
                    run.status,
                    *(csv_text(run.value(k)) for k in params),
                    *metric_cells,
                    csv_text(run.protocol),
                    " ".join(k for k in all_metrics if run.sources.get(k) == "eval.json"),
                    csv_text(run.summary.get("wall_time_s")),
                    str(run.path.resolve()),
                ]
            )
    return path


def write_seeds_csv(path: Path, groups: Sequence[SeedGroup], params: Sequence[str]) -> Path:
    """comparison_seeds.csv: one row per setting, its n and seeds, and for each metric
    `<metric>_mean`, `<metric>_std` (sample, n − 1) and `<metric>_n`."""
    metrics = sorted({k for g in groups for k in g.spreads}, key=metric_sort_key)
    header = [*params, "n", "seeds"]
    header += [f"{m}_{part}" for m in metrics for part in ("mean", "std", "n")]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for group in groups:
            first = group.runs[0]
            cells = [csv_text(first.value(k)) for k in params]
            cells += [str(group.n), " ".join(csv_text(s) for s in group.seeds)]
            for m in metrics:
                value = group.spreads.get(m)
                cells += (
                    ["", "", "0"]
                    if value is None
                    else [csv_text(value.mean), csv_text(value.std), str(value.n)]
                )
            writer.writerow(cells)
    return path
