"""Learned priors and a flow posterior against the standard VAE, on real data: dynamically
binarised Fashion-MNIST (Debian's files), the same MLP VAE and the same budget for
every variant. Run it alone on the machine.

    .venv/bin/python bench/priors.py [--epochs 10] [--seeds 0,1,2] [--k 1000]

Each variant x seed is one `src/train.py` run (its own run folder under
outputs/bench/priors/), then `src/eval.py` on its best checkpoint with `eval.iwae_k=k`
importance samples on the whole test split (10,000 images); see bench/variant_study.py.
Recorded per run: the IWAE bound −L_k ("test NLL"), the −ELBO, the KL and how it was
computed (analytic or single-sample), active units and the training time; per variant
their mean and sample standard deviation over seeds. Writes bench/results/priors.json
and docs/images/priors.png.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from variant_study import FASHION_MLP, Study, bar_panel

STUDY = Study(
    name="priors",
    variants={
        "normal": [],
        "mog": ["prior=mog"],
        "vamp": ["prior=vamp"],
        "flow": ["prior=flow"],
        "iaf": ["posterior=iaf"],
    },
    shared=FASHION_MLP,
    headline=("nll_iwae", "nelbo", "kl", "active_units"),
)


def plot(table: dict[str, dict[str, Any]], k: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key, title in (
        (axes[0], "nll_iwae", f"test NLL (IWAE, k = {k}), nats"),
        (axes[1], "active_units", "active units (of 32)"),
    ):
        means = [table[n][key] for n in names]
        bar_panel(ax, names, means, [table[n][f"{key}_std"] for n in names], title)
    fig.suptitle(
        "Fashion-MNIST (dynamically binarised), MLP VAE, mean ± sd over seeds", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    STUDY.main(__doc__ or "", plot)
