"""Learned priors and a flow posterior against the standard VAE, on real data: dynamically
binarised Fashion-MNIST (Debian's files), the same MLP VAE and the same budget for
every variant. Run it alone on the machine.

    .venv/bin/python bench/priors.py [--epochs 10] [--seeds 0,1,2] [--k 1000]

Each variant x seed is one `src/train.py` run (its own run folder under
outputs/bench/priors/), then `src/eval.py` on its best checkpoint with `eval.iwae_k=k`
importance samples on the whole test split (10,000 images). Recorded per run: the
IWAE bound −L_k ("test NLL"), the −ELBO, the KL and how it was computed (analytic or
single-sample), active units and the training time; per variant their mean and
sample standard deviation over seeds. A run whose eval.json exists is read, not
repeated. Writes bench/results/priors.json and docs/images/priors.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from record import stamp  # noqa: E402

RESULTS = REPO / "bench" / "results" / "priors.json"
PLOT = REPO / "docs" / "images" / "priors.png"
RUNS = REPO / "outputs" / "bench" / "priors"
#: The variants, each the overrides that make it from the shared setting.
VARIANTS = {
    "normal": [],
    "mog": ["prior=mog"],
    "vamp": ["prior=vamp"],
    "flow": ["prior=flow"],
    "iaf": ["posterior=iaf"],
}
#: What every run shares: the data, the model, the budget (epochs added on the command line).
SHARED = [
    "data=fashion_mnist",
    "model=mlp",
    "latent_dim=32",
    "logger=csv",
    "~callbacks.image_grids",
]
HEADLINE = ("nll_iwae", "nelbo", "kl", "active_units")
#: metrics.json's status of a run that trained to its end (`fitted`: with test=false).
TRAINED = ("fitted", "finished")


def run_folder(variant: str, seed: int) -> Path:
    return RUNS / f"{variant}-seed{seed}"


def train_and_evaluate(variant: str, seed: int, epochs: int, k: int) -> dict:
    """One variant and seed: train (unless its run folder has finished), evaluate (unless
    its eval.json is there), and read the numbers back."""
    folder = run_folder(variant, seed)
    checkpoint = folder / "checkpoints" / "best.ckpt"
    summary_file = folder / "metrics.json"
    if (
        not summary_file.is_file()
        or json.loads(summary_file.read_text()).get("status") not in TRAINED
    ):
        command = [
            sys.executable,
            "src/train.py",
            *SHARED,
            *VARIANTS[variant],
            f"seed={seed}",
            f"trainer.max_epochs={epochs}",
            "test=false",
            f"hydra.run.dir={folder}",
        ]
        started = time.perf_counter()
        subprocess.run(command, cwd=REPO, check=True)
        print(
            f"{variant} seed {seed}: trained in {time.perf_counter() - started:.0f} s", flush=True
        )
    report = folder / "eval.json"
    if not report.is_file():
        subprocess.run(
            [
                sys.executable,
                "src/eval.py",
                f"ckpt_path={checkpoint}",
                f"eval.iwae_k={k}",
                "eval.iwae_max_decoded=8192",
                "eval.sample_quality.n_samples=0",
                f"eval.output={report}",
            ],
            cwd=REPO,
            check=True,
        )
    results = json.loads(report.read_text())
    summary = json.loads(summary_file.read_text())
    return {
        "variant": variant,
        "seed": seed,
        **{key: results["metrics"][key] for key in HEADLINE},
        "kl_estimate": results["latents"].get("kl_estimate", "analytic"),
        "n_examples": results["n_examples"],
        "iwae_k": results["iwae_k"],
        "train_s": round(sum(summary["timing"]["epoch_train_s"]), 2),
        "run_dir": str(folder.relative_to(REPO)),
    }


def aggregate(runs: list[dict]) -> dict[str, dict]:
    """Mean and sample standard deviation over seeds of each headline number."""
    table: dict[str, dict] = {}
    for variant in VARIANTS:
        mine = [r for r in runs if r["variant"] == variant]
        if not mine:
            continue
        row: dict = {"seeds": len(mine), "kl_estimate": mine[0]["kl_estimate"]}
        for key in HEADLINE:
            values = [float(r[key]) for r in mine]
            row[key] = statistics.fmean(values)
            row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        row["train_s"] = statistics.fmean(float(r["train_s"]) for r in mine)
        table[variant] = row
    return table


def plot(table: dict[str, dict], k: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key, label in (
        (axes[0], "nll_iwae", f"test NLL (IWAE, k = {k}), nats"),
        (axes[1], "active_units", "active units (of 32)"),
    ):
        means = [table[n][key] for n in names]
        errors = [table[n][f"{key}_std"] for n in names]
        ax.bar(names, means, yerr=errors, capsize=4, color="#4c72b0")
        ax.set_title(label, fontsize=10)
        if key == "nll_iwae":
            low = min(m - e for m, e in zip(means, errors, strict=True))
            high = max(m + e for m, e in zip(means, errors, strict=True))
            ax.set_ylim(low - 0.5 * (high - low + 1), high + 0.2 * (high - low + 1))
    fig.suptitle(
        "Fashion-MNIST (dynamically binarised), MLP VAE, mean ± sd over seeds", fontsize=10
    )
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = []
    for seed in seeds:  # seed-major: a partial run still compares every variant
        for variant in args.variants.split(","):
            runs.append(train_and_evaluate(variant, seed, args.epochs, args.k))
    table = aggregate(runs)
    record = {
        **stamp(),
        "command": " ".join(["python bench/priors.py", *sys.argv[1:]]),
        "setting": {"overrides": SHARED, "epochs": args.epochs, "iwae_k": args.k, "seeds": seeds},
        "variants": {name: VARIANTS[name] for name in table},
        "table": table,
        "runs": runs,
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    plot(table, args.k)
    print(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
