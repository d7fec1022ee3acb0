"""Compare finished runs from their folders: a table, `comparison.csv` and the plots.

    python -m vaelab.compare outputs/multirun/2025-01-31/12-00-00_ab12
    python -m vaelab.compare outputs/multirun/*/* --sort test/nelbo --metrics test/kl,test/bpd

Every run folder below the given folders is read through its `metrics.json` (written
by `vaelab.callbacks.RunSummary`) and, where `src/eval.py` wrote one beside its
checkpoints, its `eval.json` (the newer file wins for a key both hold; see
`vaelab.runs.files`); W&B is not needed. Parameters that differ between
the runs (from each run's overrides and recorded params) become the table's leading
columns; those that are the same everywhere are printed once above it. Folders that
cannot be compared (no metrics.json, a failed or unfinished run, a broken file) are
reported on stderr, one line each.

From Python: `collect_runs(folders)` reads the runs, `compare(folders, ...)` does it all
and returns a `Comparison`. One module a job:

- `runs`: reading run folders into `Run`s, and the folders `Skipped` with their reason;
- `analysis`: swept and shared parameters, metric columns and their order, sorting;
- `seeds`: runs that differ only in `seed` folded into mean ± standard deviation;
- `table`: the text table, `comparison.csv` and `comparison_seeds.csv`;
- `plots` and `figures`: which runs and stage the plots show, and drawing them;
- `comparison`: `compare()`, all of it in order; `cli`: the command line.

Only the standard library and pydantic are imported (no torch, no numpy); matplotlib
is imported when plots are drawn.
"""

from vaelab.compare.cli import build_parser, main
from vaelab.compare.comparison import Comparison, compare
from vaelab.compare.reading import (
    CompareError,
    NoRunsError,
    Run,
    Skipped,
    collect_runs,
    parse_overrides,
    parse_value,
)

__all__ = [
    "CompareError",
    "Comparison",
    "NoRunsError",
    "Run",
    "Skipped",
    "build_parser",
    "collect_runs",
    "compare",
    "main",
    "parse_overrides",
    "parse_value",
]
