"""Lightning's CSVLogger, made to continue a resumed run's history.

A resumed run writes into the `csv/metrics.csv` of its folder. Lightning's writer
deletes a metrics.csv it finds when it opens the folder, so the history of the steps
before the resume was lost (and, had it been kept, the steps logged after the checkpoint
but before the kill would have been there twice). `CSVLogger` here keeps the file and
reads its columns when it opens it, and `continue_from_step(step)` drops the rows from
`step` on, so that each logged step is in the file exactly once.

Upstream code this relies on (lightning.pytorch.loggers.csv_logs and
lightning.fabric.loggers.csv_logs): `CSVLogger._experiment`, `CSVLogger._fs`,
`CSVLogger.root_dir` / `log_dir`, `ExperimentWriter.metrics_keys` /
`metrics_file_path`, and `_ExperimentWriter._check_log_dir_exists` (the method that
deletes the file, replaced here). tests/test_resume.py checks that they still exist.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import cast

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from typing_extensions import override

from vaelab.runs.atomic import atomic_path


class ResumableExperimentWriter(ExperimentWriter):
    """Lightning's writer, aware of the columns of a metrics.csv that already exists."""

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir=log_dir)
        path = Path(self.metrics_file_path)
        if path.is_file():
            with open(path, newline="") as f:
                self.metrics_keys = list(next(csv.reader(f), []))

    @override
    def _check_log_dir_exists(self) -> None:
        """Lightning's deletes an existing metrics.csv here; a resumed run keeps it."""

    def drop_from_step(self, step: int) -> int:
        """Remove the rows logged at `step` or later; returns how many were removed."""
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return 0
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        kept = [row for row in rows if row.get("step") and int(float(row["step"])) < step]
        if len(kept) < len(rows):
            with atomic_path(path, what="metrics history") as tmp, open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)
        return len(rows) - len(kept)


class CSVLogger(LightningCSVLogger):
    """`lightning.pytorch.loggers.CSVLogger` that keeps a resumed run's history."""

    @override
    @property
    @rank_zero_experiment
    def experiment(self) -> ResumableExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ResumableExperimentWriter(log_dir=self.log_dir)
        # only this property sets it, always to a ResumableExperimentWriter
        return cast(ResumableExperimentWriter, self._experiment)

    def continue_from_step(self, step: int) -> None:
        """A run resumed from a checkpoint at `step`: drop the rows logged from there on
        (the interrupted run logged them after the checkpoint; they are logged again)."""
        self.experiment.drop_from_step(step)
