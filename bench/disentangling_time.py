"""How long disentangling takes in the default experiment: its disentanglement scores
against its training time. Run it alone on the machine.

    .venv/bin/python bench/disentangling_time.py [--epochs 1,2,4,...] [overrides ...]
    .venv/bin/python bench/disentangling_time.py --run <its run folder>   # no training

One run of `src/train.py` (the default recipe and any overrides) keeps a weights-only
checkpoint at the end of every epoch (a second `ModelCheckpoint`, added on the command
line); nothing else about the run changes, so its learning-rate schedule spans the
whole run as in the default. Afterwards `src/eval.py` scores the checkpoints of the
epochs listed with the fast protocol (the metrics the end of training computes), and
each point's time is the training time the run's Timing callback recorded up to that
epoch. The best checkpoint's sample quality (blank prior samples, reconstruction IoU)
is measured as bench/default_experiment.py measures it. `--run` scores a run folder
this bench trained before, reading the scores of the checkpoints it scored already
(a damaged or unfinished eval.json is scored again).
Writes bench/results/disentangling_time.json (one record per set of overrides, a new
run replacing the old) and plots every recipe recorded there in
docs/images/disentangling_time.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from default_experiment import measure  # noqa: E402  (it puts src/ on the path too)

from vaelab.runs.files import read_eval_report  # noqa: E402

RESULTS = REPO / "bench" / "results" / "disentangling_time.json"
PLOT = REPO / "docs" / "images" / "disentangling_time.png"
SCORES = ("mig", "factor_vae", "dci", "beta_vae")
EPOCHS = "1,2,3,4,6,8,10,13,16,20,26"
# A checkpoint at the end of every epoch, named by its 0-based epoch; weights only.
EVERY_EPOCH_KEY = "+callbacks.every_epoch."
EVERY_EPOCH = [
    EVERY_EPOCH_KEY + setting
    for setting in (
        "_target_=vaelab.callbacks.ModelCheckpoint",
        "dirpath=${paths.output_dir}/checkpoints/every_epoch",
        "filename='epoch{epoch:02d}'",
        "auto_insert_metric_name=false",
        "every_n_epochs=1",
        "save_top_k=-1",
        "save_weights_only=true",
    )
]


def score(checkpoint: Path, output: Path) -> dict:
    """The fast protocol's scores and the test ELBO terms of one checkpoint, from its
    eval.json `output` (evaluated first unless a finished, readable one is there)."""
    report, _ = read_eval_report(output)
    if report is None:
        evaluate(checkpoint, output)
        report, problem = read_eval_report(output)
        if report is None:
            raise SystemExit(problem or f"src/eval.py wrote no {output}")
    metrics = report["metrics"]
    return {k: metrics.get(k) for k in (*SCORES, "nelbo", "kl")}


def evaluate(checkpoint: Path, output: Path) -> None:
    command = [
        sys.executable,
        "src/eval.py",
        f"ckpt_path={checkpoint}",
        f"eval.output={output}",
        "eval.iwae_k=1",  # the bound itself is not what this measures
        "eval.disentanglement.protocol=fast",
        f"hydra.run.dir={output.parent}",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled"}  # the training's W&B run stays as it ended
    subprocess.run(command, cwd=REPO, check=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", default=EPOCHS, help="the epochs to score, 1-based")
    parser.add_argument("--run", type=Path, help="a run folder of this bench: score only")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    epochs = [int(e) for e in args.epochs.split(",")]
    if args.run:
        run_dir = args.run.resolve()
    else:
        run_dir = REPO / "outputs" / "bench_disentangling" / time.strftime("%Y-%m-%d_%H-%M-%S")
        command = [sys.executable, "src/train.py", *args.overrides, *EVERY_EPOCH]
        subprocess.run([*command, f"hydra.run.dir={run_dir}"], cwd=REPO, check=True)
    summary = json.loads((run_dir / "metrics.json").read_text())
    # The run's own overrides: the checkpoint callback above is this bench's.
    overrides = [o for o in summary["overrides"] if not o.startswith(EVERY_EPOCH_KEY)]
    epoch_train_s = summary["timing"]["epoch_train_s"]
    points = []
    for epoch in epochs:
        checkpoint = run_dir / "checkpoints" / "every_epoch" / f"epoch{epoch - 1:02d}.ckpt"
        scores = score(checkpoint, run_dir / "eval_by_epoch" / f"epoch{epoch:02d}.json")
        point = {"epochs": epoch, "train_s": round(sum(epoch_train_s[:epoch]), 1), **scores}
        points.append(point)
        print(json.dumps(point), flush=True)
    record = {
        "overrides": overrides,
        "run_dir": str(run_dir),
        "run_wall_time_s": summary["wall_time_s"],
        "end_of_training": {k: summary["metrics"].get(f"test/{k}") for k in SCORES},
        # blank prior samples and reconstruction IoU, as bench/default_experiment.py
        "best_checkpoint": {k: v for k, v in measure(run_dir).items() if k != "scores"},
        "points": points,
        "scored_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    # One record per recipe: a new run of the same overrides replaces the old one.
    runs = json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else []
    runs = [r for r in runs if r["overrides"] != overrides] + [record]
    runs.sort(key=lambda r: (bool(r["overrides"]), " ".join(r["overrides"])))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    plot(runs)


def plot(runs: list[dict]) -> None:
    """MIG and the FactorVAE score against training time, one line per recipe, with
    the aims of the default experiment (MIG 0.10, FactorVAE 0.65) dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharex=True)
    for ax, key, aim in zip(axes, ("mig", "factor_vae"), (0.10, 0.65), strict=True):
        for run in runs:
            label = " ".join(run["overrides"]) or "the default (make train)"
            minutes = [p["train_s"] / 60 for p in run["points"]]
            ax.plot(minutes, [p[key] for p in run["points"]], marker="o", ms=3, label=label)
        ax.axhline(aim, color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"{key} (fast protocol); aim {aim}", fontsize=10)
        ax.set_xlabel("training time (min, this machine)")
        ax.set_ylim(0, 1 if key == "factor_vae" else 0.25)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=120)


if __name__ == "__main__":
    main()
