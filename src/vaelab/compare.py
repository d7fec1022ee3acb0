"""Compare finished runs from their folders: a table, `comparison.csv` and two plots.

    python -m vaelab.compare outputs/multirun/2025-01-31/12-00-00_ab12
    python -m vaelab.compare outputs/multirun/*/* --sort test/nelbo --metrics test/kl,test/bpd

Every run folder below the given folders is read through its `metrics.json` (written
by `vaelab.callbacks.RunSummary`) and, where `src/eval.py` wrote one beside its
checkpoints, its `eval.json` (the newer file wins for a key both hold; see
`vaelab.eval_results`); W&B is not needed. Parameters that differ between
the runs (from each run's overrides and recorded params) become the table's leading
columns; those that are the same everywhere are printed once above it. Folders that
cannot be compared (no metrics.json, a failed or unfinished run, a broken file) are
reported on stderr, one line each.

From Python: `collect_runs(folders)` reads the runs, `compare(folders, ...)` does it all
and returns a `Comparison`. Only the standard library is imported here; matplotlib is
imported when plots are drawn (`vaelab.plots`).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaelab.compare_seeds import SeedGroup, group_by_seed, group_rows, spread_cell
from vaelab.errors import VaelabError
from vaelab.eval_results import merge_results
from vaelab.metrics.names import SCORE_KEYS, SUPERVISED_SCORES
from vaelab.summary_file import summary_problem

METRICS_FILE = "metrics.json"
CSV_NAME = "comparison.csv"
SEEDS_CSV_NAME = "comparison_seeds.csv"
RATE_DISTORTION_PNG = "rate_distortion.png"
METRICS_VS_BETA_PNG = "metrics_vs_beta.png"
DISENTANGLEMENT_VS_BETA_PNG = "disentanglement_vs_beta.png"
TRADEOFF_PNG = "reconstruction_vs_disentanglement.png"

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
# Overrides that say where a run wrote its files, not what it computed.
IGNORED_KEY_PREFIXES = ("hydra.", "paths.")
# Metrics that count things: shown as whole numbers.
COUNT_METRICS = ("active_units",)
MISSING = "-"
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
INTEGER = re.compile(r"[+-]?\d+")


class CompareError(VaelabError):
    """An option that names no column, or nothing to compare; reported as one line."""


class NoRunsError(CompareError):
    """No usable run below the given folders; `skipped` says what was found instead."""

    def __init__(self, message: str, skipped: Sequence[Skipped]) -> None:
        super().__init__(message)
        self.skipped = list(skipped)


@dataclass
class Run:
    """One usable run folder.

    `params`: the run's parameters as typed on its command line (`overrides`, parsed
    key=value with numbers as numbers) updated by the params it recorded itself.
    `choices`: its Hydra group choices, defaults included.
    """

    path: Path
    name: str
    status: str
    params: dict[str, Any]
    choices: dict[str, Any]
    metrics: dict[str, float | None]
    summary: dict[str, Any]
    #: the file each metric came from ("metrics.json" or "eval.json")
    sources: dict[str, str] = field(default_factory=dict)
    #: the protocol of its disentanglement numbers (dlib, fast), if it has any
    protocol: str | None = None
    notes: list[str] = field(default_factory=list)
    _config: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def value(self, key: str) -> Any:
        """The value `key` had in this run, or None where nothing records it.

        A key this run did not override still had a value: its group choice, or the
        one in the run's saved config (.hydra/config.yaml).
        """
        if key in self.params:
            return self.params[key]
        if key in self.choices:
            return self.choices[key]
        return self._config_value(key)

    def _config_value(self, key: str) -> Any:
        if self._config is None:
            self._config = _load_config(self.path / ".hydra" / "config.yaml")
        node: Any = self._config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        if isinstance(node, str) and "${" in node:
            return None  # an unresolved interpolation says nothing about the value
        return node if isinstance(node, int | float | str | bool) else None


@dataclass(frozen=True)
class Skipped:
    """A folder that was not compared, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.path}: {self.reason}"


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


# ---------------------------------------------------------------------------- reading


def parse_value(text: str) -> Any:
    """An override's value as a number where it reads as one, else the text unquoted."""
    text = text.strip()
    if INTEGER.fullmatch(text):
        return int(text)
    if NUMBER.fullmatch(text):
        return float(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Hydra task overrides (`beta=4`, `+trainer.x=1`, `model/encoder=mlp`) as a dict."""
    parsed: dict[str, Any] = {}
    for override in overrides:
        key, sep, value = str(override).partition("=")
        if key.startswith("~"):
            parsed[key.lstrip("~")] = "<deleted>"
            continue
        key = key.lstrip("+")
        if not sep or key.startswith(IGNORED_KEY_PREFIXES):
            continue
        parsed[key] = parse_value(value)
    return parsed


def _load_config(path: Path) -> dict[str, Any]:
    """A run's saved config as plain data; empty when it is missing or unreadable."""
    try:
        import yaml

        loaded = yaml.safe_load(path.read_text())
    except Exception:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _natural_key(text: str) -> list[Any]:
    """Order names as a person would: job 2 before job 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _find_run_folders(folder: Path) -> Iterator[Path]:
    """Run folders at or below `folder`: those with a metrics.json or a .hydra/ folder.

    Hydra writes .hydra/ when a job starts, so a run that died before writing its
    metrics is still found (and reported). Nothing below a run folder is searched.
    """
    for dirpath, dirnames, filenames in os.walk(folder):
        if METRICS_FILE in filenames or ".hydra" in dirnames:
            dirnames.clear()
            yield Path(dirpath)
            continue
        dirnames[:] = sorted((d for d in dirnames if not d.startswith(".")), key=_natural_key)


def _first_line(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).strip().splitlines()[:1]) or "no error recorded"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _read_summary(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(summary, None) for a comparable run; (None, why not) otherwise."""
    path = folder / METRICS_FILE
    if not path.is_file():
        return None, "no metrics.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"unreadable metrics.json ({type(exc).__name__}: {exc})"
    except json.JSONDecodeError as exc:
        return None, f"unreadable metrics.json (invalid JSON: {exc})"
    problem = summary_problem(summary)
    if problem is not None:
        return None, f"unreadable metrics.json ({problem})"
    status = summary["status"]
    if status == "failed":
        return None, f"failed run ({_first_line(summary.get('error') or '')})"
    if status == "running":
        return None, "still running"
    if status == "interrupted":
        return None, "interrupted (continue it with resume=auto)"
    if not summary.get("metrics"):
        return None, f"no metrics recorded (status {status})"
    return summary, None


def _display_root(folders: Sequence[Path]) -> Path:
    """The folder run names are given relative to: the given folders' common ancestor."""
    resolved = [f.resolve() for f in folders]
    try:
        return Path(os.path.commonpath(resolved))
    except ValueError:  # different drives (Windows): no common ancestor
        return Path(resolved[0].anchor)


def _given_folders(folders: Sequence[str | Path]) -> list[Path]:
    """The folders as paths; a metrics.json path stands for its run folder."""
    given = [Path(f) for f in folders]
    return [f.parent if f.name == METRICS_FILE and f.is_file() else f for f in given]


def collect_runs(folders: Sequence[str | Path]) -> tuple[list[Run], list[Skipped]]:
    """Read every run folder at or below `folders`.

    Returns the usable runs (status finished or fitted, in folder order) and the
    folders left out with the reason. A metrics.json path given directly stands for
    its folder; a run reached through two of the given folders is read once.
    """
    given = _given_folders(folders)
    existing = [f for f in given if f.is_dir()]
    root = _display_root(existing) if existing else Path.cwd()
    runs: list[Run] = []
    skipped: list[Skipped] = []
    seen: set[Path] = set()
    for folder in given:
        if not folder.exists():
            skipped.append(Skipped(folder, "no such folder"))
            continue
        if not folder.is_dir():
            skipped.append(Skipped(folder, "not a folder"))
            continue
        found = False
        for run_dir in _find_run_folders(folder):
            found = True
            resolved = run_dir.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            summary, reason = _read_summary(run_dir)
            if summary is None:
                skipped.append(Skipped(run_dir, reason or "unreadable"))
                continue
            runs.append(_make_run(run_dir, resolved, root, summary))
        if not found:
            skipped.append(Skipped(folder, "no metrics.json (no run folder below it)"))
    return runs, skipped


def _make_run(folder: Path, resolved: Path, root: Path, summary: dict[str, Any]) -> Run:
    # A run given as the root itself would be named "."; its own name says more.
    name = resolved.name if resolved == root else resolved.relative_to(root).as_posix()
    params = parse_overrides(summary.get("overrides") or [])
    recorded = summary.get("params") or {}
    if isinstance(recorded, dict):
        params.update(recorded)
    choices = summary.get("choices") or {}
    run = Run(
        path=folder,
        name=name,
        status=str(summary["status"]),
        params=params,
        choices=dict(choices) if isinstance(choices, dict) else {},
        metrics={},
        summary=summary,
    )
    protocol = run.value("eval.disentanglement.protocol")
    merged = merge_results(folder, summary["metrics"], protocol if protocol else None)
    run.metrics, run.sources, run.protocol = merged.metrics, merged.sources, merged.protocol
    run.notes = [f"{name}: {note}" for note in merged.notes]
    return run


# --------------------------------------------------------------------------- analysis


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
    return (stage_rank, name_rank, _natural_key(name))


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


def _choose_metrics(runs: Sequence[Run], requested: Sequence[str] | None) -> list[str]:
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
        present.sort(key=lambda r, k=key: _order_token(_cell(r, k)), reverse=descending)
        ordered = present + missing
    return ordered


# ---------------------------------------------------------------------------- output


def format_param(value: Any) -> str:
    """A parameter value as typed: 0.5, 4, 1e-3, mlp."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _decimals(values: Sequence[float]) -> int:
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
        decimals = _decimals(present)
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
            decimals = _decimals([v for v in values if v is not None])
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


def _plot_stage(runs: Sequence[Run]) -> str:
    """test if every run has test reconstruction and KL, else val: never mix the two."""
    if all(
        run.metrics.get("test/recon") is not None and run.metrics.get("test/kl") is not None
        for run in runs
    ):
        return "test"
    return "val"


def _beta(run: Run) -> float | None:
    value = run.value("beta")
    if value is None:
        value = run.metrics.get("val/beta")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _draw_plots(
    runs: Sequence[Run], swept: Sequence[str], out: Path, title: str, notes: list[str]
) -> tuple[str, dict[str, Path]]:
    from vaelab import plots

    stage = _plot_stage(runs)
    if stage == "val":
        notes.append("plots use val metrics: not every run has test metrics")
    others = [k for k in swept if k not in ("beta", "latent_dim", "seed")]
    points = []
    for run in runs:
        recon, kl = run.metrics.get(f"{stage}/recon"), run.metrics.get(f"{stage}/kl")
        if recon is None or kl is None:
            notes.append(
                f"{run.name}: no finite {stage}/recon and {stage}/kl; left out of the plots"
            )
            continue
        nelbo = run.metrics.get(f"{stage}/nelbo")
        latent = run.value("latent_dim")
        # Legend entries give values only; the legend's title names the keys.
        values = [latent, *(run.value(k) for k in others)]
        label = ", ".join("n/a" if v is None else format_param(v) for v in values)
        scores = {
            k: v for k in SUPERVISED_SCORES if (v := run.metrics.get(f"test/{k}")) is not None
        }
        points.append(
            plots.PlotPoint(
                beta=_beta(run),
                latent=latent,
                group=label,
                recon=recon,
                kl=kl,
                nelbo=recon + kl if nelbo is None else nelbo,
                scores=scores,
            )
        )
    written: dict[str, Path] = {}
    if not points:
        return stage, written
    group_title = "latent size" + "".join(f", {k}" for k in others)
    written["rate_distortion"] = plots.rate_distortion(
        points, out / RATE_DISTORTION_PNG, title, stage, group_title
    )
    curves = plots.metrics_vs_beta(points, out / METRICS_VS_BETA_PNG, title, stage, group_title)
    if curves is None:
        notes.append("no run records β: metric-vs-β plot not drawn")
    else:
        written["metrics_vs_beta"] = curves
    scored = [k for k in SUPERVISED_SCORES if any(k in p.scores for p in points)]
    if scored:
        protocols = ", ".join(sorted({r.protocol for r in runs if r.protocol})) or "unknown"
        args = (scored, out / DISENTANGLEMENT_VS_BETA_PNG, title, group_title, protocols)
        if (drawn := plots.disentanglement_vs_beta(points, *args)) is not None:
            written["disentanglement_vs_beta"] = drawn
        # The trade-off: test reconstruction, whatever stage the other plots use.
        tradeoff = plots.tradeoff(
            points, scored, out / TRADEOFF_PNG, title, stage, group_title, protocols
        )
        if tradeoff is not None:
            written["reconstruction_vs_disentanglement"] = tradeoff
    return stage, written


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
    chosen = _choose_metrics(runs, metrics)
    runs = sorted(runs, key=lambda r: _natural_key(r.name))
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
        given = _given_folders(folders)
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
            result.stage, result.plots = _draw_plots(runs, swept, out_dir, title, result.notes)
    return result


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
    from vaelab.cli import fail

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


if __name__ == "__main__":
    sys.exit(main())
