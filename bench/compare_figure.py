"""The comparison pictures of the docs, from a real sweep: `python bench/compare_figure.py`.

Trains a small β sweep with seeds on the built-in shapes (the default experiment's
model and data, fewer images and epochs, the end-of-training disentanglement metrics on
with the fast protocol), runs `python -m vaelab.compare` on it, and copies the plots the
docs show into docs/images/ (`compare_*.png`). What ran is recorded in
bench/results/compare_figure.json: the commands, the sweep's table and when. Run it alone
on the machine (about five minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import stamp

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
RESULTS = REPO / "bench" / "results" / "compare_figure.json"
SWEEP = [
    "beta=0.5,1,4",
    "seed=0,1",
    "trainer.max_epochs=4",
    "data.examples_per_epoch=10000",
    "logger=csv",
]
PLOTS = ("disentanglement_vs_beta.png", "metrics_vs_beta.png", "rate_distortion.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("overrides", nargs="*", help="more overrides for every job")
    args = parser.parse_args()
    env = {**os.environ, "WANDB_MODE": "disabled"}
    with tempfile.TemporaryDirectory(prefix="vaelab-compare-figure-") as scratch:
        sweep = Path(scratch) / "sweep"
        train = [
            sys.executable,
            "src/train.py",
            "-m",
            *SWEEP,
            *args.overrides,
            f"hydra.sweep.dir={sweep}",
        ]
        started = time.perf_counter()
        subprocess.run(train, cwd=REPO, env=env, check=True)
        wall = time.perf_counter() - started
        compare = [sys.executable, "-m", "vaelab.compare", str(sweep), "--out", str(sweep)]
        subprocess.run(compare, cwd=REPO, env=env, check=True)
        IMAGES.mkdir(parents=True, exist_ok=True)
        for name in PLOTS:
            shutil.copyfile(sweep / name, IMAGES / f"compare_{name}")
        with (sweep / "comparison_seeds.csv").open() as handle:
            table = list(csv.DictReader(handle))
    record = {
        **stamp(),
        "commands": [
            " ".join(["python", *train[1:-1], "hydra.sweep.dir=<sweep>"]),
            "python -m vaelab.compare <sweep>",
        ],
        "wall_s": wall,
        "images": [f"docs/images/compare_{name}" for name in PLOTS],
        "seeds_table": table,
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {RESULTS} and {len(PLOTS)} images in {IMAGES}")


if __name__ == "__main__":
    main()
