"""MLflow as a run's logger (`logger=mlflow`), named, grouped and resumed as W&B runs are.

- Store: by default a SQLite database inside the run folder (`<run>/mlflow/mlflow.db`,
  artifacts beside it), so a run folder stays self-contained and nothing needs a
  server; `logger.mlflow.tracking_uri=http://host:5000` logs to a server instead.
  (MLflow 3 refuses its plain-file store unless told otherwise: it is in maintenance
  mode.)
- Identity: the run is named from the job's overrides (`beta=4,latent_dim=16`) and
  tagged with its group (`vaelab.group`: the sweep folder, or the experiment's name)
  and job type, the same identity `vaelab.tracking.setup` gives W&B runs.
- Resuming: the MLflow run id is kept in `<run>/mlflow/run_id`; a run continued in the
  same folder (`resume=auto`, a requeued SLURM job) logs into the same MLflow run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch.loggers import MLFlowLogger as LightningMLFlowLogger
from lightning.pytorch.utilities import rank_zero_only

#: The folder of a run that holds its local MLflow store and its run id.
MLFLOW_FOLDER = "mlflow"
RUN_ID_FILE = "run_id"


class MLFlowLogger(LightningMLFlowLogger):
    """Lightning's `MLFlowLogger` that keeps its run id in the run folder, takes the
    job's summary numbers and is ended by the job (`vaelab.tracking.setup`), a failed
    job's run as failed. On DDP ranks other than 0 it does nothing, as Lightning's."""

    def __init__(self, run_folder: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_folder = Path(run_folder)

    @rank_zero_only
    def remember_run(self) -> None:
        """Keep this run's id with the run folder (starting the run if it has not)."""
        from vaelab.runs.atomic import atomic_path

        # Read back on resume: never a half-written id.
        with atomic_path(
            self.run_folder / MLFLOW_FOLDER / RUN_ID_FILE, what="MLflow run id"
        ) as tmp:
            tmp.write_text(str(self.run_id))

    @rank_zero_only
    def record_summary(self, values: dict[str, float]) -> None:
        """Final numbers (test metrics, the optimised value) as metrics of the run."""
        if values:
            self.log_metrics(values)


def saved_run_id(run_folder: str | os.PathLike[str]) -> str | None:
    """The MLflow run id a run folder recorded, to continue that run."""
    path = Path(run_folder) / MLFLOW_FOLDER / RUN_ID_FILE
    return (path.read_text().strip() or None) if path.is_file() else None


def mlflow_logger(
    experiment_name: str = "vaelab",
    tracking_uri: str | None = None,
    save_dir: str = ".",
    name: str | None = None,
    group: str | None = None,
    tags: Sequence[str] | None = None,
    log_model: Literal[True, False, "all"] = False,
    run_id: str | None = None,
) -> MLFlowLogger:
    """The run's `MLFlowLogger`: see the module docstring. `save_dir` is the run folder;
    `name`/`group` default to the Hydra job's identity; `run_id` continues an MLflow run
    (by default the one this run folder recorded)."""
    from vaelab.tracking.identity import hydra_job_identity

    identity = hydra_job_identity()
    folder = Path(save_dir)
    store = folder / MLFLOW_FOLDER
    artifacts = None  # a server's own artifact store
    if tracking_uri is None:
        store.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not its folder
        tracking_uri = f"sqlite:///{store.absolute() / 'mlflow.db'}"
        artifacts = (store / "artifacts").absolute().as_uri()
    run_tags = {
        "vaelab.group": group or identity["group"] or "default",
        "vaelab.job_type": identity["job_type"] or "train",
        **({"vaelab.tags": ",".join(tags)} if tags else {}),
    }
    return MLFlowLogger(
        run_folder=folder,
        experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", experiment_name),
        run_name=name or identity["name"],
        tracking_uri=tracking_uri,
        tags=run_tags,
        save_dir=None,
        log_model=log_model,
        artifact_location=artifacts,
        run_id=run_id or saved_run_id(folder),
    )
