"""Sweeps that survive a failing job, stop on SIGTERM with 143, and continue after a
kill when the same command runs again (`vaelab.launch.sweeps`)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, SMOKE_MLP, run_train
from in_process import call_train

SMOKE = list(SMOKE_MLP)
# Long enough (4 epochs of 4 steps) that a signal lands inside a job.
LONGER = [*SMOKE, "trainer.max_epochs=4", "trainer.limit_val_batches=1"]
ENV = {"WANDB_MODE": "disabled"}


def job_folders(sweep: Path) -> dict[int, Path]:
    return {int(p.name.split("_")[0]): p for p in sweep.iterdir() if p.name[0].isdigit()}


def record(folder: Path) -> dict:
    return json.loads((folder / "sweep_job.json").read_text())


def summary(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def start_sweep(*overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "src" / "train.py"), "-m", *overrides],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **ENV},
    )


def wait_for(condition, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the sweep ended first: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def steps_logged(folder: Path) -> list[int]:
    with open(folder / "csv" / "metrics.csv") as f:
        return [int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss")]


@pytest.mark.parametrize(
    "trainer",
    [["trainer=cpu"], ["trainer=ddp_cpu", "trainer.devices=2"]],
    ids=["one process", "a DDP group"],
)
def test_a_failing_job_does_not_stop_the_sweep(tmp_path: Path, trainer: list[str]) -> None:
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m",
        "model.optimizer.lr=1e9,1e-3",
        *SMOKE,
        *trainer,
        "trainer.max_epochs=2",
        f"hydra.sweep.dir={sweep}",
        env=ENV,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    jobs = job_folders(sweep)
    # One process: the NaN stop itself; a DDP group: its ranks' non-zero exit.
    message = record(jobs[0])["message"]
    assert record(jobs[0])["status"] == "failed" and ("loss" in message or "exit" in message)
    assert record(jobs[1])["status"] == "finished" and summary(jobs[1])["status"] == "finished"
    lines = result.stderr.splitlines()
    failed = [line for line in lines if line.startswith("job 0 (") and ": failed: " in line]
    assert failed and "log: " in failed[0]
    assert any(line.startswith("job 1 (") and "finished" in line for line in lines)
    assert "1 of 2 jobs failed" in lines[-1]


def test_sigterm_stops_the_sweep_with_143_and_the_same_command_continues_it(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "sweep"
    command = ["beta=1,2,3", *LONGER, f"hydra.sweep.dir={sweep}"]
    proc = start_sweep(*command)
    wait_for(lambda: any(sweep.glob("0_*/checkpoints/last.ckpt")), proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143, proc.stderr.read()[-2000:]
    jobs = job_folders(sweep)
    assert set(jobs) == {0}  # jobs 1 and 2 never started
    assert record(jobs[0])["status"] == "interrupted"

    result = call_train("-m", *command, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_folders(sweep)
    assert set(jobs) == {0, 1, 2}
    for folder in jobs.values():
        assert summary(folder)["status"] == "finished" and summary(folder)["global_step"] == 16
    # Job 0 went on from its last.ckpt: each step once in its history.
    logged = steps_logged(jobs[0])
    assert logged == sorted(set(logged)) and logged[-1] == 15


def test_a_killed_sweep_continues_with_only_the_unfinished_jobs(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    command = ["beta=1,2,3,4", *LONGER, f"hydra.sweep.dir={sweep}"]
    proc = start_sweep(*command)
    wait_for(lambda: any(sweep.glob("2_*/checkpoints/last.ckpt")), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    first_two = {n: f for n, f in job_folders(sweep).items() if n < 2}
    before = {n: (f / "metrics.json").stat().st_mtime for n, f in first_two.items()}

    result = call_train("-m", *command, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_folders(sweep)
    assert set(jobs) == {0, 1, 2, 3}
    assert all(summary(f)["status"] == "finished" for f in jobs.values())
    # Jobs 0 and 1 were skipped: not trained again, their summaries untouched.
    assert {n: (jobs[n] / "metrics.json").stat().st_mtime for n in (0, 1)} == before
    assert [record(jobs[n])["status"] for n in range(4)] == [
        "skipped",
        "skipped",
        "finished",
        "finished",
    ]
    assert "2 skipped" in result.stderr and "2 finished" in result.stderr
    logged = steps_logged(jobs[2])
    assert logged == sorted(set(logged)) and logged[-1] == 15  # went on, not again


def test_parallel_jobs_share_the_cpus_and_a_failure_stays_its_jobs(tmp_path: Path) -> None:
    """hydra/launcher=parallel runs two jobs at once, each on its share of the CPUs;
    the one that diverges (within its first steps) fails alone, and the two that
    train for some seconds overlap in time."""
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m",
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=2",
        "model.optimizer.lr=1e9,1e-3,2e-3",
        *SMOKE,
        # Long enough that the first training still runs when the third job has
        # started after the failed one, on a slow machine too (its start-up is seconds).
        "trainer.max_epochs=10",
        "trainer.limit_train_batches=40",
        f"hydra.sweep.dir={sweep}",
        env=ENV,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    jobs = job_folders(sweep)
    failed, first, second = (record(jobs[n]) for n in range(3))
    assert failed["status"] == "failed"
    assert first["status"] == second["status"] == "finished"
    cpus = os.cpu_count() or 1
    assert {r["threads"] for r in (failed, first, second)} == {max(1, cpus // 2)}
    # The two trainings ran at once: each started before the other ended.
    assert first["started_at"] < second["finished_at"]
    assert second["started_at"] < first["finished_at"]
