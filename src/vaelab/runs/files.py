"""The files a run folder's results live in, in one module: their names, the schema of
`metrics.json`, the one JSON writer, and every reader.

- `metrics.json`: the training run's summary (written by `vaelab.callbacks.RunSummary`
  through `write_json`); read by `vaelab.compare`, by the sweepers (`optimized_value`)
  and by sweep resumption (`summary_status`). Its keys are in docs/design.md.
- `eval.json`: what `src/eval.py` writes beside a checkpoint. Its headline metrics are
  test-split numbers; `merge_results` gives them their metrics.json names
  (`nll_iwae` -> `test/nll_iwae`, `mig` -> `test/mig`). For a key both files hold, the
  newer file wins, and every merged key remembers which file it came from. The
  disentanglement numbers also say which protocol produced them (`dlib`, `fast`):
  eval.json records it; a training run's are its config's
  `eval.disentanglement.protocol`.

A reader checks a file here first, so a hand-edited or foreign file is one reason
("'overrides' must be a list of strings"), not a traceback deep in the reader. Only the
standard library and pydantic: `vaelab.compare` reads runs without numpy or torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from vaelab.metrics.names import SCORE_KEYS
from vaelab.runs.atomic import atomic_path

METRICS_FILE = "metrics.json"
EVAL_FILE = "eval.json"

# ------------------------------------------------------------------ writing


def finite_or_null(value: Any) -> Any:
    """`value` with every NaN or infinite float (at any depth) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(v) for v in value]
    return value


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically (`vaelab.runs.atomic`). A non-finite number is written as null:
    bare NaN/Infinity tokens are not JSON, and most readers refuse them."""
    with atomic_path(path, what="summary") as tmp:
        tmp.write_text(json.dumps(finite_or_null(payload), indent=2, allow_nan=False) + "\n")


# ------------------------------------------------------------------ metrics.json


class SummaryFile(BaseModel):
    """The keys of metrics.json a reader uses; others are kept as they are."""

    model_config = ConfigDict(extra="allow", strict=True)

    status: Literal["running", "fitted", "finished", "failed", "interrupted"]
    metrics: dict[str, float | None] = {}
    overrides: list[str] = []
    params: dict[str, Any] = {}
    choices: dict[str, str | None] = {}
    error: str | None = None


def summary_problem(summary: Any) -> str | None:
    """Why `summary` (parsed JSON) is not a metrics.json a reader can use, or None."""
    if not isinstance(summary, dict):
        return "not a JSON object"
    try:
        SummaryFile.model_validate(summary)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        value = json.dumps(error.get("input"), default=str)[:60]
        return f"{where!r} is {value}: {error['msg'][0].lower()}{error['msg'][1:]}"
    return None


def read_summary(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the run folder's metrics.json, None), or (None, why it cannot be read)."""
    return read_summary_file(run_dir / METRICS_FILE)


def read_summary_file(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """`read_summary` for a summary at any path (`RunSummary(path=...)`)."""
    if not path.is_file():
        return None, f"no {METRICS_FILE}"
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"unreadable {METRICS_FILE} ({type(exc).__name__}: {exc})"
    except json.JSONDecodeError as exc:
        return None, f"unreadable {METRICS_FILE} (invalid JSON: {exc})"
    problem = summary_problem(summary)
    if problem is not None:
        return None, f"unreadable {METRICS_FILE} ({problem})"
    return summary, None


def summary_status(run_dir: Path) -> str | None:
    """The status metrics.json records, or None without a readable one."""
    summary, _ = read_summary(run_dir)
    return None if summary is None else str(summary["status"])


def optimized_value(run_dir: Path, name: str | None) -> float | None:
    """The value a run reports for `name`: its best checkpoint's score when the
    checkpoint monitors it, else the final logged value (None: not recorded)."""
    summary, _ = read_summary(run_dir)
    if not name or summary is None:
        return None
    best = summary.get("best_checkpoint") or {}
    if isinstance(best, dict) and best.get("monitor") == name and best.get("score") is not None:
        return float(best["score"])
    value = summary["metrics"].get(name)
    return None if value is None else float(value)


# ------------------------------------------------------------------ eval.json


@dataclass
class MergedResults:
    """metrics: every key of both files; sources: key -> "metrics.json" or "eval.json";
    protocols: disentanglement score key -> the protocol that produced it."""

    metrics: dict[str, float | None]
    sources: dict[str, str] = field(default_factory=dict)
    protocols: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def protocol(self) -> str | None:
        """The protocol of the run's disentanglement numbers: one name, or several
        joined by '+' when eval.json replaced only some of them (None: no numbers)."""
        names = sorted(set(self.protocols.values()))
        return "+".join(names) if names else None


def eval_json_path(run_dir: Path) -> Path:
    """Where `src/eval.py` writes a run's eval.json: beside its checkpoints."""
    return run_dir / "checkpoints" / EVAL_FILE


def read_eval_json(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(eval.json's contents, None), or (None, why it is not used); (None, None) when
    the run has none."""
    return read_eval_report(eval_json_path(run_dir))


def read_eval_report(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """`read_eval_json` for an eval.json at any path (`eval.output=`)."""
    if not path.is_file():
        return None, None
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{path} is unreadable ({type(exc).__name__}); its numbers are left out"
    if not isinstance(report, dict) or not isinstance(report.get("metrics"), dict):
        return None, f"{path} has no metrics; left out"
    if report.get("status") not in (None, "finished"):
        return None, f"{path} has status {report.get('status')}; its numbers are left out"
    return report, None


def merge_results(
    run_dir: Path, summary_metrics: dict[str, Any], training_protocol: str | None
) -> MergedResults:
    """metrics.json's metrics with eval.json's on top where eval.json is the newer file
    (or the only one with the key)."""
    merged = MergedResults(
        metrics={k: None if v is None else float(v) for k, v in summary_metrics.items()},
        sources=dict.fromkeys(summary_metrics, METRICS_FILE),
    )
    scores = {f"test/{k}" for k in SCORE_KEYS}
    for key in scores & set(merged.metrics):
        merged.protocols[key] = training_protocol or "unknown"
    report, problem = read_eval_json(run_dir)
    if problem:
        merged.notes.append(problem)
    if report is None:
        return merged
    summary_path = run_dir / METRICS_FILE
    eval_newer = (
        not summary_path.is_file()
        or eval_json_path(run_dir).stat().st_mtime >= summary_path.stat().st_mtime
    )
    protocol = (report.get("disentanglement") or {}).get("protocol") or "unknown"
    for key, value in report["metrics"].items():
        name = f"test/{key}"
        if name in merged.metrics and not eval_newer:
            continue
        merged.metrics[name] = None if value is None else float(value)
        merged.sources[name] = EVAL_FILE
        if name in scores:
            merged.protocols[name] = str(protocol)
    return merged
