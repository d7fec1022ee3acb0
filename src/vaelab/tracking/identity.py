"""A job's identity in the tracking services: its run's name (the job's overrides,
`beta=4,latent_dim=16`), its group (the sweep folder, or the experiment's name) and its
job type (train or sweep). W&B and MLflow runs get the same identity."""

from __future__ import annotations

import os
from pathlib import Path

#: Variables through which a job that `vaelab.launch.distributed` re-runs as a single
#: run keeps its sweep identity in its tracking runs.
IDENTITY_ENV = {
    "name": "VAELAB_WANDB_NAME",
    "group": "VAELAB_WANDB_GROUP",
    "job_type": "VAELAB_WANDB_JOB_TYPE",
}


def hydra_job_identity() -> dict[str, str | None]:
    """Name and group for the running Hydra job: overrides and sweep folder."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    inherited = {k: os.environ.get(var) for k, var in IDENTITY_ENV.items()}
    if inherited["group"]:  # a sweep job delegated to a single-run DDP subprocess
        return inherited
    if not HydraConfig.initialized():
        return {"name": None, "group": None, "job_type": None}
    from vaelab.runs.naming import job_label

    hydra_cfg = HydraConfig.get()
    overrides = job_label(hydra_cfg) or None
    if hydra_cfg.mode == RunMode.MULTIRUN:
        sweep = Path(hydra_cfg.sweep.dir)
        group = f"sweep-{sweep.parent.name}_{sweep.name}"
        return {"name": overrides or f"job{hydra_cfg.job.num}", "group": group, "job_type": "sweep"}
    experiment = hydra_cfg.runtime.choices.get("experiment") or "default"
    return {"name": overrides, "group": str(experiment), "job_type": "train"}
