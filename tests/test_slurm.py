"""Sweeps on a real SLURM cluster, through `hydra/launcher=slurm` as a user types it:
array jobs that sacct reports COMPLETED, and DDP jobs whose ranks SLURM starts (one task
per rank) or, with fewer tasks than ranks, that start their ranks inside the job."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from helpers import run_sweep

SMOKE = ["debug=smoke", "data.resolution=32", "model/encoder=mlp", "logger=csv"]
#: sacct states of a job that has not ended yet.
LIVE = {"PENDING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED"}
#: Small requests: the test cluster is this machine (2 cores on the CI machine).
SMALL = [
    "hydra.launcher.mem_gb=2",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.timeout_min=10",
]


def _sweep(tmp_path: Path, *overrides: str) -> Path:
    return run_sweep(tmp_path, "hydra/launcher=slurm", *SMOKE, *SMALL, *overrides, timeout=420)


def _array_id(sweep_dir: Path) -> str:
    folders = (p for p in (sweep_dir / ".submitit").iterdir() if p.is_dir())
    (submitted,) = {p.name.split("_")[0] for p in folders}  # <array>, <array>_<task>
    return submitted


def _sacct(job: str) -> list[dict[str, str]]:
    """sacct's rows of `job` (the array, its tasks and their steps) once every one has
    ended: slurmdbd records an ending a moment after submitit has seen it."""
    deadline = time.monotonic() + 60
    while True:
        out = subprocess.run(
            ["sacct", "-j", job, "-n", "-P", "-o", "JobID,State,NTasks"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        fields = ("id", "state", "ntasks")
        rows = [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()]
        if not any(r["state"] in LIVE for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def _summaries(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("*/metrics.json")}


def test_a_two_job_array_sweep_completes_with_a_run_folder_per_job(
    slurm_cluster, tmp_path: Path
) -> None:
    sweep_dir = _sweep(tmp_path, "beta=1,2", "trainer=cpu", "hydra.launcher.cpus_per_task=1")

    summaries = _summaries(sweep_dir)
    assert sorted(summaries) == ["0_beta=1", "1_beta=2"]
    assert [s["params"]["beta"] for _, s in sorted(summaries.items())] == [1, 2]
    assert all(s["status"] == "finished" for s in summaries.values())
    array = _array_id(sweep_dir)
    jobs = {row["id"]: row["state"] for row in _sacct(array)}
    assert jobs[f"{array}_0"] == jobs[f"{array}_1"] == "COMPLETED"


@pytest.mark.parametrize(
    ("tasks", "cpus"), [(2, 1), (1, 2)], ids=["a task per rank", "fewer tasks than ranks"]
)
def test_a_ddp_job_trains_with_two_ranks(
    slurm_cluster, tmp_path: Path, tasks: int, cpus: int
) -> None:
    sweep_dir = _sweep(
        tmp_path,
        "beta=1,2",
        "trainer=ddp_cpu",
        "trainer.devices=2",
        f"hydra.launcher.tasks_per_node={tasks}",
        f"hydra.launcher.cpus_per_task={cpus}",
    )

    summaries = _summaries(sweep_dir)
    assert sorted(summaries) == ["0_beta=1", "1_beta=2"]
    for summary in summaries.values():
        assert summary["status"] == "finished"
        assert summary["world_size"] == 2
        assert summary["global_step"] == 4  # debug=smoke: 4 batches, each over both ranks
    array = _array_id(sweep_dir)
    rows = _sacct(array)
    assert {r["state"] for r in rows if r["id"] in (f"{array}_0", f"{array}_1")} == {"COMPLETED"}
    # srun's step has one task per SLURM task: the ranks SLURM started (2), or the one
    # task whose job then started both ranks itself (1).
    steps = [r for r in rows if r["id"].endswith(".0")]
    assert len(steps) == 2 and {r["ntasks"] for r in steps} == {str(tasks)}
