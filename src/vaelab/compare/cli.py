"""`python -m vaelab.compare`: the command line over `compare`; the table on stdout,
skipped folders, notes and written files on stderr."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence

from vaelab.compare.analysis import DEFAULT_METRICS, OPTIONAL_METRICS
from vaelab.compare.comparison import Comparison, compare
from vaelab.compare.plots import METRICS_VS_BETA_PNG, RATE_DISTORTION_PNG
from vaelab.compare.reading import CompareError
from vaelab.compare.table import CSV_NAME, format_param


def _header(result: Comparison, folders: Sequence[str]) -> str:
    """The lines above the table: how many runs, the order, what is common to all."""
    n = len(result.runs)
    where = folders[0] if len(folders) == 1 else f"{len(folders)} folders"
    order = ", ".join(result.sort) if result.sort else "run folder"
    order += ", descending" if result.descending else ""
    lines = [f"{n} run{'s' if n != 1 else ''} below {where}, sorted by {order}"]
    if result.constants:
        items = "  ".join(f"{k}={format_param(v)}" for k, v in result.constants.items())
        # Wrap between items only: a key=value split over two lines reads as two items.
        lines += textwrap.wrap(
            f"same in all runs: {items}",
            width=100,
            subsequent_indent=" " * len("same in all runs: "),
            break_long_words=False,
            break_on_hyphens=False,
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vaelab.compare",
        description=(
            "Compare the runs below the given folders (each run folder's metrics.json): "
            f"print a table, write {CSV_NAME}, {RATE_DISTORTION_PNG} and {METRICS_VS_BETA_PNG}."
        ),
    )
    parser.add_argument("folders", nargs="+", metavar="FOLDER", help="run or sweep folders")
    parser.add_argument(
        "--sort",
        metavar="COLUMN",
        help="sort by a metric or parameter, e.g. test/nelbo or beta (default: swept parameters)",
    )
    parser.add_argument("--desc", action="store_true", help="sort in descending order")
    parser.add_argument(
        "--metrics",
        action="append",
        metavar="LIST",
        help=(
            "metric columns, comma-separated, or 'all' (default: "
            f"{', '.join(DEFAULT_METRICS)}, plus {', '.join(OPTIONAL_METRICS)} when present)"
        ),
    )
    parser.add_argument(
        "--out", metavar="DIR", help="folder for the CSV and PNGs (default: the first FOLDER)"
    )
    parser.add_argument("--no-plots", action="store_true", help="write the CSV only")
    parser.add_argument(
        "--no-aggregate",
        action="store_true",
        help="one row per run, even for runs that differ only in seed (default: one row "
        "per setting, each metric mean ± std over the seeds)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: table on stdout; skipped folders and written files on stderr."""
    from vaelab.errors import fail

    args = build_parser().parse_args(argv)
    try:
        result = compare(
            args.folders,
            sort=args.sort,
            descending=args.desc,
            metrics=args.metrics,
            out=args.out,
            plots=not args.no_plots,
            aggregate=not args.no_aggregate,
        )
    except CompareError as exc:
        for item in getattr(exc, "skipped", []):
            print(item, file=sys.stderr)
        fail(str(exc))
    for item in result.skipped:
        print(item, file=sys.stderr)
    print(_header(result, args.folders))
    print()
    print(result.table)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    files = (result.csv_path, result.seeds_csv_path, *result.plots.values())
    written = [p for p in files if p is not None]
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0
