"""Sweep wall time on this machine: 4 small jobs one after another against 2 at a time
(hydra/launcher=parallel, each job on half the CPUs), interleaved repeats.

    .venv/bin/python bench/sweep_parallel.py [--repeats 2]

Each job is a short MLP run on 32x32 shapes (3 epochs of 150 steps of 16 images,
validation and test included): small enough that one job does not keep both cores
busy. The sequential sweep runs its jobs in one process; the parallel one starts two
worker processes, each paying the imports once. Run it alone.
Writes bench/results/sweep_parallel.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import stamp

REPO = Path(__file__).resolve().parents[1]
JOBS = [
    "beta=0.5,1,2,4",
    "debug=smoke",
    "data.resolution=32",
    "model/encoder=mlp",
    "model/decoder=mlp",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=150",
    "logger=csv",
]


def sweep_seconds(parallel: bool, folder: Path) -> float:
    launcher = ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2"] if parallel else []
    command = [sys.executable, str(REPO / "src" / "train.py"), "-m", *JOBS, *launcher]
    started = time.perf_counter()
    subprocess.run(
        [*command, f"hydra.sweep.dir={folder}"],
        cwd=REPO,
        check=True,
        capture_output=True,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    default_out = REPO / "bench" / "results" / "sweep_parallel.json"
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vaelab-sweep-bench-"))
    runs: dict[str, list[float]] = {"sequential": [], "parallel_2": []}
    for r in range(args.repeats):
        runs["sequential"].append(sweep_seconds(False, tmp / f"seq{r}"))
        runs["parallel_2"].append(sweep_seconds(True, tmp / f"par{r}"))
        print(json.dumps(runs), flush=True)
    seq, par = (statistics.median(runs[k]) for k in ("sequential", "parallel_2"))
    result = {
        **stamp(),
        "jobs": 4,
        "repeats": args.repeats,
        "runs_s": runs,
        "sequential_s": round(seq, 2),
        "parallel_2_s": round(par, 2),
        "ratio_parallel_to_sequential": round(par / seq, 3),
        "median_paired_ratio": round(
            statistics.median(
                p / s for p, s in zip(runs["parallel_2"], runs["sequential"], strict=True)
            ),
            3,
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
