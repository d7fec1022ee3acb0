"""`compare(folders)`: read, analyse, and write the table, the CSVs and the plots;
what it found and wrote comes back as a `Comparison`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaelab.compare.analysis import available_metrics, choose_metrics, parameter_columns, sort_runs
from vaelab.compare.plots import draw_plots
from vaelab.compare.reading import (
    CompareError,
    NoRunsError,
    Run,
    Skipped,
    collect_runs,
    given_folders,
    natural_key,
)
from vaelab.compare.seeds import SeedGroup, group_by_seed, group_rows
from vaelab.compare.table import CSV_NAME, SEEDS_CSV_NAME, render_table, write_csv, write_seeds_csv


@dataclass
class Comparison:
    """What `compare` found and wrote.

    `runs` are in table order (by the `sort` keys, `descending` or not); `swept` the
    parameter columns (values differ between runs), `constants` the parameters shared
    by all runs; `metrics` the table's metric columns; `stage` the metrics the plots
    use ("test", or "val" when some run has no test metrics); `notes` anything the
    reader should know about the outputs.
    """

    runs: list[Run]
    skipped: list[Skipped]
    swept: list[str]
    constants: dict[str, Any]
    metrics: list[str]
    sort: list[str]
    descending: bool
    table: str
    csv_path: Path | None = None
    #: runs folded over their seeds (None: one row per run), and their CSV
    groups: list[SeedGroup] | None = None
    seeds_csv_path: Path | None = None
    plots: dict[str, Path] = field(default_factory=dict)
    stage: str | None = None
    notes: list[str] = field(default_factory=list)


def _title(folders: Sequence[Path]) -> str:
    names = [str(f) for f in folders]
    return names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"


def compare(
    folders: Sequence[str | Path],
    *,
    sort: str | None = None,
    descending: bool = False,
    metrics: Sequence[str] | None = None,
    out: str | Path | None = None,
    plots: bool = True,
    save_csv: bool = True,
    aggregate: bool = True,
) -> Comparison:
    """Compare the runs below `folders`: table, comparison.csv and plots in `out`.

    `sort`: a metric or parameter column (default: the swept parameters, in order);
    `metrics`: the table's metric columns (comma-separated items allowed; 'all' for
    every metric); `out`: where the CSV and PNGs go (default: the first given folder);
    `plots`, `save_csv`: False writes no PNGs, no CSV; `aggregate`: runs that differ
    only in `seed` become one row, each metric mean ± standard deviation (False: one row
    per run; comparison.csv always has one). Raises `NoRunsError` (with the
    skipped folders) when no run is usable, `CompareError` when an option names no
    column.
    """
    runs, skipped = collect_runs(folders)
    if not runs:
        where = ", ".join(str(f) for f in folders)
        raise NoRunsError(
            f"no usable runs below {where} ({len(skipped)} folder(s) skipped)",
            skipped,
        )
    swept, constants = parameter_columns(runs)
    chosen = choose_metrics(runs, metrics)
    runs = sorted(runs, key=lambda r: natural_key(r.name))
    if sort is None:
        sort_keys = list(swept)
        runs = sort_runs(runs, sort_keys, descending)
    else:
        columns = ["run", *swept, *constants, *available_metrics(runs)]
        if sort not in columns:
            raise CompareError(f"--sort {sort}: no such column; choose from: {', '.join(columns)}")
        sort_keys = [sort]
        if sort in available_metrics(runs) and sort not in chosen:
            chosen.append(sort)  # a table sorted by a column it does not show reads as unsorted
        # Ties (e.g. --sort latent_dim) stay in the order of the swept parameters.
        runs = sort_runs(sort_runs(runs, swept), sort_keys, descending)
    groups = group_by_seed(runs, swept) if aggregate else None
    if groups is not None:
        table_columns = [k for k in swept if k != "seed"]
        table = render_table(group_rows(groups), table_columns, chosen, groups)
    else:
        table = render_table(runs, swept, chosen)
    result = Comparison(
        notes=[note for run in runs for note in run.notes],
        runs=runs,
        skipped=skipped,
        swept=swept,
        constants=constants,
        metrics=chosen,
        sort=sort_keys,
        descending=descending,
        table=table,
        groups=groups,
    )
    if save_csv or plots:
        given = given_folders(folders)
        # Some run was found, so some given folder exists.
        out_dir = Path(out) if out is not None else next(f for f in given if f.is_dir())
        out_dir.mkdir(parents=True, exist_ok=True)
        if save_csv:
            result.csv_path = write_csv(out_dir / CSV_NAME, runs, swept, constants, chosen)
            if groups is not None:
                result.seeds_csv_path = write_seeds_csv(
                    out_dir / SEEDS_CSV_NAME, groups, [k for k in swept if k != "seed"]
                )
        if plots:
            title = _title(given)
            result.stage, result.plots = draw_plots(runs, swept, out_dir, title, result.notes)
    return result
