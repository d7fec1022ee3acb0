"""Reading: the run folders below the given folders, each as a `Run` (its parameters,
group choices and metrics, metrics.json and eval.json merged through `vaelab.runs.files`),
and the folders that cannot be compared, each with its reason (`Skipped`)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaelab.errors import VaelabError
from vaelab.runs.files import METRICS_FILE, merge_results, read_summary

NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


INTEGER = re.compile(r"[+-]?\d+")


# Overrides that say where a run wrote its files, not what it computed.
IGNORED_KEY_PREFIXES = ("hydra.", "paths.")


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


def natural_key(text: str) -> list[Any]:
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
        dirnames[:] = sorted((d for d in dirnames if not d.startswith(".")), key=natural_key)


def _first_line(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).strip().splitlines()[:1]) or "no error recorded"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _read_summary(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(summary, None) for a comparable run; (None, why not) otherwise."""
    summary, problem = read_summary(folder)
    if summary is None:
        return None, problem
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


def given_folders(folders: Sequence[str | Path]) -> list[Path]:
    """The folders as paths; a metrics.json path stands for its run folder."""
    given = [Path(f) for f in folders]
    return [f.parent if f.name == METRICS_FILE and f.is_file() else f for f in given]


def collect_runs(folders: Sequence[str | Path]) -> tuple[list[Run], list[Skipped]]:
    """Read every run folder at or below `folders`.

    Returns the usable runs (status finished or fitted, in folder order) and the
    folders left out with the reason. A metrics.json path given directly stands for
    its folder; a run reached through two of the given folders is read once.
    """
    given = given_folders(folders)
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
