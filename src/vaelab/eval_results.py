"""A run folder's results from both files that hold them, merged: `metrics.json` (the
training run's summary) and `eval.json` (what `src/eval.py` wrote beside a checkpoint).

eval.json's headline metrics are test-split numbers; here they take their
metrics.json names (`nll_iwae` -> `test/nll_iwae`, `mig` -> `test/mig`). For a key both
files hold, the newer file wins, and every merged key remembers which file it came
from. The disentanglement numbers also say which protocol produced them (`dlib`,
`fast`): eval.json records it; a training run's are its config's
`eval.disentanglement.protocol`.

Only the standard library: `vaelab.compare` reads this without numpy or torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaelab.metrics.names import SCORE_KEYS

EVAL_FILE = "eval.json"
METRICS_FILE = "metrics.json"


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
    path = eval_json_path(run_dir)
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
