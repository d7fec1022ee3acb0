"""The schema of a run's metrics.json as readers rely on it (`vaelab.compare`).

`vaelab.callbacks.RunSummary` writes the file; anything that reads one checks it here
first, so a hand-edited or foreign file is one reason ("'overrides' must be a list of
strings"), not a traceback deep in the reader.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError


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
