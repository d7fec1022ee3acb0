"""How long disentangling takes: the disentanglement scores of one run against its
training time, continued in stages. Run it alone on the machine.

    .venv/bin/python bench/disentangling_time.py [--epochs 2,4,8,12,16,24] [overrides ...]

One run folder is trained to the first count of epochs, then continued
(`resume=auto trainer.max_epochs=<next>`) to each next one; every stage ends with the
run's own end-of-training metrics (the fast protocol), so each point is the score of
the model at that many epochs, and its time is the training time the run's Timing
callback recorded up to then. The default overrides are the previous default
experiment (40,000 fixed images, a constant 1e-3, ReLU: what the recorded results measured)
with beta = 4; a constant rate, because a schedule is sized by each stage's max_epochs
and so would change from stage to stage. Writes bench/results/disentangling_time.json
and docs/images/disentangling_time.png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "disentangling_time.json"
PLOT = REPO / "docs" / "images" / "disentangling_time.png"
SCORES = ("mig", "factor_vae", "dci", "beta_vae")
PREVIOUS_DEFAULT_BETA_4 = [
    "beta=4",
    "~model/scheduler",
    "model.optimizer.lr=1e-3",
    "data.n_train=40000",
    "data.examples_per_epoch=null",
    "model.encoder.activation=ReLU",
    "model.decoder.activation=ReLU",
]


def stage_seconds(summary: dict) -> float:
    """This stage's training time: the per-epoch times its Timing callback recorded
    (each process records its own epochs)."""
    return float(sum(summary.get("timing", {}).get("epoch_train_s") or []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", default="2,4,8,12,16,24")
    parser.add_argument("overrides", nargs="*", default=PREVIOUS_DEFAULT_BETA_4)
    args = parser.parse_args()
    run_dir = REPO / "outputs" / "bench_disentangling" / time.strftime("%Y-%m-%d_%H-%M-%S")
    points, trained_s = [], 0.0
    for i, epochs in enumerate(int(e) for e in args.epochs.split(",")):
        resume = ["resume=auto"] if i else []
        command = [
            sys.executable,
            "src/train.py",
            *args.overrides,
            f"trainer.max_epochs={epochs}",
            f"hydra.run.dir={run_dir}",
            *resume,
        ]
        subprocess.run(command, cwd=REPO, check=True)
        summary = json.loads((run_dir / "metrics.json").read_text())
        metrics = summary["metrics"]
        trained_s += stage_seconds(summary)
        point = {
            "epochs": epochs,
            "global_step": summary["global_step"],
            "train_s": round(trained_s, 1),
            **{k: metrics.get(f"test/{k}") for k in (*SCORES, "nelbo", "kl")},
        }
        points.append(point)
        print(json.dumps(point))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    record = {"overrides": args.overrides, "run_dir": str(run_dir), "points": points}
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    plot(points, " ".join(args.overrides))


def plot(points: list[dict], label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    minutes = [p["train_s"] / 60 for p in points]
    for key in SCORES:
        ax.plot(minutes, [p[key] for p in points], marker="o", label=key)
    ax.set_xlabel("training time (min, this machine)")
    ax.set_ylabel("score (fast protocol)")
    ax.set_ylim(0, 1)
    ax.set_title(f"default experiment, {label}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=120)


if __name__ == "__main__":
    main()
