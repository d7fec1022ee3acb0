"""DDP under a Hydra multirun: each job its own DDP group with that job's overrides.

Lightning starts DDP ranks 1..N-1 by re-running the command line. Under `-m` that is
the whole sweep, so every rank would run every job. Instead, a job that needs several
processes runs itself as a single-run subprocess (`hydra.mode=RUN`, its own overrides,
its own run folder), which Lightning then launches its ranks from as usual. This works
for the basic sweeper and for Optuna alike; the subprocess's metrics.json gives the
value the sweeper optimises.

Where a cluster starts the ranks itself (SLURM tasks, torchrun) nothing is re-run,
and the job trains in place. A SLURM job given fewer tasks than ranks is re-run like a
local job, its ranks started by Lightning within the job's allocation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from vaelab.errors import VaelabError
from vaelab.runs.files import optimized_value
from vaelab.tracking.identity import IDENTITY_ENV


def process_count(trainer_cfg: DictConfig) -> int:
    devices = trainer_cfg.get("devices", 1)
    if isinstance(devices, str):
        devices = int(devices) if devices.isdigit() else 1  # "auto": decided by Lightning
    elif not isinstance(devices, int):
        devices = len(devices)  # an explicit list of device ids
    return max(devices, 1) * int(trainer_cfg.get("num_nodes", 1) or 1)


def ranks_started_externally() -> bool:
    """True under torchrun/SLURM tasks, where each rank already runs this job."""
    if "LOCAL_RANK" in os.environ or "TORCHELASTIC_RUN_ID" in os.environ:
        return True
    return int(os.environ.get("SLURM_NTASKS", "1")) > 1


def needs_own_ddp_group(cfg: DictConfig) -> bool:
    """Is this a multirun job whose DDP ranks Lightning would start by re-running argv?"""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return False
    strategy = str(cfg.trainer.get("strategy", "auto"))
    return (
        "ddp" in strategy
        and "spawn" not in strategy
        and process_count(cfg.trainer) > 1
        and not ranks_started_externally()
    )


def run_job_as_single_run(cfg: DictConfig, identity: dict[str, Any]) -> float | None:
    """Run this multirun job as `python src/<app>.py <its overrides> hydra.mode=RUN` in
    its own run folder (the app's own script: under submitit `sys.argv[0]` is submitit's);
    return the metric the sweeper optimises, read from metrics.json."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    from vaelab.launch.job import entry_point

    command = [
        sys.executable,
        str(entry_point(str(hydra_cfg.job.config_name or "train"))),
        *hydra_cfg.overrides.task,
        "hydra.mode=RUN",
        f"hydra.run.dir={quote_override_value(str(run_dir))}",
        "hydra.output_subdir=null",  # the sweep already saved this job's .hydra/
    ]
    env = {**os.environ, **{IDENTITY_ENV[k]: str(v) for k, v in identity.items() if v}}
    if "SLURM_NTASKS" in env:
        # A SLURM job with fewer tasks than ranks (hydra.launcher.tasks_per_node <
        # trainer.devices): the ranks are started here, inside the job's allocation.
        # Lightning would take the SLURM variables for the ranks' own and refuse the
        # task count; a job name of "interactive" is its documented way to skip SLURM
        # detection (SLURMEnvironment.detect), so it launches the ranks itself.
        env["SLURM_JOB_NAME"] = "interactive"
    result = subprocess.run(command, env=env, check=False)
    if result.returncode != 0:
        raise VaelabError(
            f"job {hydra_cfg.job.num} ({hydra_cfg.job.override_dirname}) failed with exit "
            f"code {result.returncode}; see {run_dir}/{cfg.get('task_name', 'train')}.log"
        )
    return optimized_value(run_dir, cfg.get("optimized_metric"))


def quote_override_value(value: str) -> str:
    """Quote a value for Hydra's override grammar (run folders contain '=' and ',')."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
