"""One run per folder: a second run on a folder in use stops at once with one line naming
the first run's process; the lock of a killed run is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import REPO, run_train
from in_process import call_train

LONG_RUN = [
    "debug=smoke",
    "logger=csv",
    "trainer.max_epochs=1000",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
]


def _start(run_dir: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "src" / "train.py"), *overrides, f"hydra.run.dir={run_dir}"],
        cwd=run_dir.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )


def _wait_for(path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def test_a_second_run_on_a_folder_in_use_stops_and_a_stale_lock_is_taken(tmp_path) -> None:
    run_dir = tmp_path / "run"
    first = _start(run_dir, *LONG_RUN)
    try:
        _wait_for(run_dir / "checkpoints" / "last.ckpt")  # well into training
        config_before = (run_dir / ".hydra" / "config.yaml").read_text()

        second = run_train("debug=smoke", "seed=7", f"hydra.run.dir={run_dir}", cwd=tmp_path)

        assert second.returncode == 2, second.stderr[-2000:]
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("vaelab: error: "), second.stderr
        assert f"is in use by a run that is still going (PID {first.pid} on" in lines[0]
        assert (run_dir / ".hydra" / "config.yaml").read_text() == config_before
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()

    third = call_train("debug=smoke", "logger=csv", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert third.returncode == 0, third.stderr[-2000:]  # the killed run's lock was stale
    holder = (run_dir / ".lock").read_text()
    assert holder.startswith("PID ") and f"PID {first.pid} " not in holder
