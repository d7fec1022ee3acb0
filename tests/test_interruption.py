"""SIGTERM and Ctrl+C stop a run resumably: last.ckpt at the interrupted step (inside an
epoch), metrics.json "interrupted", one line on stderr, exit 128 + the signal; and
`resume=auto` from there ends with the numbers of a run that was never interrupted."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import REPO, TRAIN_SCRIPT
from in_process import call_train

BATCHES_PER_EPOCH = 300
RUN = [
    "debug=smoke",
    "logger=csv",
    "data.resolution=32",
    "model/encoder=mlp",
    "model/decoder=mlp",
    "data.n_train=8000",
    "trainer.max_epochs=3",
    f"trainer.limit_train_batches={BATCHES_PER_EPOCH}",
    "trainer.deterministic=true",
]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    result = call_train(*RUN, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


@pytest.fixture(scope="module")
def reference(reference_dir: Path) -> dict:
    return summary(reference_dir)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_leaves_a_resumable_checkpoint_at_the_step_it_came(
    signum: int, reference: dict, reference_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(TRAIN_SCRIPT), *RUN, f"hydra.run.dir={run_dir}"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # into the second epoch, which takes seconds
    assert proc.poll() is None, "the run ended before the signal"
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 128 + signum, stderr[-2000:]
    assert "Traceback" not in stderr
    (line,) = [x for x in stderr.splitlines() if x.startswith("vaelab: error:")]
    name = signal.Signals(signum).name
    assert f"interrupted by {name}: wrote {last} at step " in line
    assert f"hydra.run.dir={run_dir} resume=auto" in line
    assert summary(run_dir)["status"] == "interrupted"
    step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert BATCHES_PER_EPOCH < step < 2 * BATCHES_PER_EPOCH  # inside epoch 1, not at its end
    # The run's own log says so too (a requeued SLURM job's stderr is truncated).
    assert f"{name}: wrote {last} at step {step}" in (run_dir / "train.log").read_text()

    resumed = call_train(*RUN, f"hydra.run.dir={run_dir}", "resume=auto")

    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got = summary(run_dir)
    assert got["status"] == "finished"
    assert got["global_step"] == reference["global_step"] == 3 * BATCHES_PER_EPOCH
    # Same weights, optimiser state, RNG state and data order from the interrupted step
    # on (the epoch continues at its next batch): bit-identical on a CPU.
    for key in ("test/nelbo", "test/recon", "test/kl"):
        assert got["metrics"][key] == reference["metrics"][key], key
    # The CSV history holds every step once, as the uninterrupted run's does.
    assert train_rows(run_dir) == train_rows(reference_dir)


def train_rows(run_dir: Path) -> list[tuple[int, str]]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return [(int(r["step"]), r["train/loss"]) for r in csv.DictReader(f) if r["train/loss"]]
