"""What the variant studies share (bench/priors.py, bench/hierarchy.py): the same model
and budget trained once per variant and seed on real data, each best checkpoint scored
by `src/eval.py` with an IWAE bound of k importance samples on the whole test split,
and the numbers aggregated over seeds.

Each variant x seed is one `src/train.py` run in its own folder under
outputs/bench/<study>/; a run that trained to its end is not trained again, and one
whose eval.json exists is not evaluated again, so an interrupted study picks up where
it stopped. Run studies alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from record import stamp  # noqa: E402

#: metrics.json's status of a run that trained to its end (`fitted`: with test=false).
TRAINED = ("fitted", "finished")
#: The setting the studies on real data share: dynamically binarised Fashion-MNIST, the
#: MLP preset, 32 latents, a CSV history and no image grids.
FASHION_MLP = [
    "data=fashion_mnist",
    "model=mlp",
    "latent_dim=32",
    "logger=csv",
    "~callbacks.image_grids",
]


@dataclass(frozen=True)
class Study:
    """A study: its name (results file, run folders), the variants (each the overrides
    that make it from `shared`), and the eval.json metrics it reports per run."""

    name: str
    variants: dict[str, list[str]]
    shared: list[str]
    headline: tuple[str, ...]
    #: eval.json's metrics read per run beside the headline, where a variant has them
    extras: Callable[[dict[str, Any]], dict[str, Any]] = lambda metrics: {}
    #: what src/eval.py is given beyond the checkpoint and k (a sampler to fit, ...)
    eval_overrides: tuple[str, ...] = ("eval.sample_quality.n_samples=0",)
    #: importance samples of the test bound unless --k says otherwise
    default_k: int = 1000
    #: numbers measured on a run's best checkpoint beyond eval.json (variant, checkpoint)
    measure: Callable[[str, Path], dict[str, Any]] = lambda variant, checkpoint: {}

    @property
    def results(self) -> Path:
        return REPO / "bench" / "results" / f"{self.name}.json"

    @property
    def plot_file(self) -> Path:
        return REPO / "docs" / "images" / f"{self.name}.png"

    def run_folder(self, variant: str, seed: int) -> Path:
        return REPO / "outputs" / "bench" / self.name / f"{variant}-seed{seed}"

    def train_and_evaluate(self, variant: str, seed: int, epochs: int, k: int) -> dict[str, Any]:
        """One variant and seed: train (unless its run folder has finished), evaluate
        (unless its eval.json is there), and read the numbers back."""
        folder = self.run_folder(variant, seed)
        summary_file = folder / "metrics.json"
        if (
            not summary_file.is_file()
            or json.loads(summary_file.read_text()).get("status") not in TRAINED
        ):
            command = [
                sys.executable,
                "src/train.py",
                *self.shared,
                *self.variants[variant],
                f"seed={seed}",
                f"trainer.max_epochs={epochs}",
                "test=false",
                f"hydra.run.dir={folder}",
            ]
            started = time.perf_counter()
            subprocess.run(command, cwd=REPO, check=True)
            elapsed = time.perf_counter() - started
            print(f"{variant} seed {seed}: trained in {elapsed:.0f} s", flush=True)
        report = folder / "eval.json"
        if not report.is_file():
            subprocess.run(
                [
                    sys.executable,
                    "src/eval.py",
                    f"ckpt_path={folder / 'checkpoints' / 'best.ckpt'}",
                    f"eval.iwae_k={k}",
                    "eval.iwae_max_decoded=8192",
                    *self.eval_overrides,
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
            **{key: results["metrics"][key] for key in self.headline},
            **self.extras(results["metrics"]),
            **self.measure(variant, folder / "checkpoints" / "best.ckpt"),
            "kl_estimate": results["latents"].get("kl_estimate", "analytic"),
            "n_examples": results["n_examples"],
            "iwae_k": results["iwae_k"],
            "train_s": round(sum(summary["timing"]["epoch_train_s"]), 2),
            "run_dir": str(folder.relative_to(REPO)),
        }

    def generated_picture(self, variant: str, picture: str, path: Path, *overrides: str) -> None:
        """`src/generate.py` on the first seed's best checkpoint of `variant` (with
        `overrides`), and its `picture` copied to `path`: a study's image in the docs."""
        import shutil

        checkpoint = self.run_folder(variant, 0) / "checkpoints" / "best.ckpt"
        subprocess.run(
            [sys.executable, "src/generate.py", f"ckpt_path={checkpoint}", *overrides],
            cwd=REPO,
            check=True,
        )
        shutil.copy(checkpoint.parent / "generated" / picture, path)

    def aggregate(self, runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Mean and sample standard deviation over seeds of every number a variant's runs
        all report."""
        table: dict[str, dict[str, Any]] = {}
        for variant in self.variants:
            mine = [r for r in runs if r["variant"] == variant]
            if not mine:
                continue
            row: dict[str, Any] = {"seeds": len(mine), "kl_estimate": mine[0]["kl_estimate"]}
            numeric = [
                key
                for key, value in mine[0].items()
                if isinstance(value, int | float)
                and key not in ("seed", "n_examples", "iwae_k", "train_s")
                and all(key in r for r in mine)
            ]
            for key in numeric:
                values = [float(r[key]) for r in mine]
                row[key] = statistics.fmean(values)
                row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
            row["train_s"] = statistics.fmean(float(r["train_s"]) for r in mine)
            table[variant] = row
        return table

    def main(
        self,
        doc: str,
        plot: Callable[[dict[str, dict[str, Any]], int, Path], None],
        argv: Sequence[str] | None = None,
    ) -> None:
        """Parse the command line (--epochs, --seeds, --k, --variants), run every variant
        seed by seed, write the results file and the plot."""
        parser = argparse.ArgumentParser(description=doc.splitlines()[0])
        parser.add_argument("--epochs", type=int, default=10)
        parser.add_argument("--seeds", default="0,1,2")
        parser.add_argument("--k", type=int, default=self.default_k)
        parser.add_argument("--variants", default=",".join(self.variants))
        args = parser.parse_args(argv)
        seeds = [int(s) for s in args.seeds.split(",")]
        runs = []
        for seed in seeds:  # seed-major: a partial run still compares every variant
            for variant in args.variants.split(","):
                runs.append(self.train_and_evaluate(variant, seed, args.epochs, args.k))
        table = self.aggregate(runs)
        record = {
            **stamp(),
            "command": " ".join([f"python bench/{self.name}.py", *sys.argv[1:]]),
            "setting": {
                "overrides": self.shared,
                "epochs": args.epochs,
                "iwae_k": args.k,
                "seeds": seeds,
            },
            "variants": {name: self.variants[name] for name in table},
            "table": table,
            "runs": runs,
        }
        self.results.write_text(json.dumps(record, indent=2) + "\n")
        self.plot_file.parent.mkdir(parents=True, exist_ok=True)
        plot(table, args.k, self.plot_file)
        print(json.dumps(table, indent=2))


def bar_panel(
    ax: Any, names: list[str], means: list[float], errors: list[float], title: str
) -> None:
    """One bar chart with error bars; a y-range that shows the differences."""
    ax.bar(names, means, yerr=errors, capsize=4, color="#4c72b0")
    ax.set_title(title, fontsize=10)
    low = min(m - e for m, e in zip(means, errors, strict=True))
    high = max(m + e for m, e in zip(means, errors, strict=True))
    if low > 0 and (high - low) < 0.2 * high:
        ax.set_ylim(low - 0.5 * (high - low + 1), high + 0.2 * (high - low + 1))
