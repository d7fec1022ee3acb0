"""One group of latents against two-group hierarchies (bottom-up, Burda et al. 2016; a
ladder, Sønderby et al. 2016) on real data: dynamically binarised Fashion-MNIST
(Debian's files), the same MLP backbones and the same budget for every variant, each
hierarchy's bottom group as large as the one-group model's latent. Run it alone.

    .venv/bin/python bench/hierarchy.py [--epochs 10] [--seeds 0,1,2] [--k 1000]

Each variant x seed is one `src/train.py` run (outputs/bench/hierarchy/), then
`src/eval.py` with `eval.iwae_k=k` importance samples on the whole test split
(bench/variant_study.py). Recorded per run: the IWAE bound −L_k ("test NLL"), the
−ELBO, the KL and each group's share (`kl/z1`, `kl/z2`), active units in all and per
group, the training time; per variant the mean and sample sd over seeds. Writes
bench/results/hierarchy.json and docs/images/hierarchy.png.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from variant_study import FASHION_MLP, Study, bar_panel

#: The per-group numbers a hierarchy's eval.json adds.
GROUP_KEYS = ("kl/z1", "kl/z2", "active_units/z1", "active_units/z2")

STUDY = Study(
    name="hierarchy",
    variants={
        "one_group": [],
        "hierarchical": ["latent=hierarchical", "latent.groups=[16]"],
        "ladder": ["latent=ladder", "latent.groups=[16]"],
    },
    shared=FASHION_MLP,
    headline=("nll_iwae", "nelbo", "kl", "active_units"),
    extras=lambda metrics: {key: metrics[key] for key in GROUP_KEYS if key in metrics},
)


def plot(table: dict[str, dict[str, Any]], k: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    means = [table[n]["nll_iwae"] for n in names]
    errors = [table[n]["nll_iwae_std"] for n in names]
    bar_panel(axes[0], names, means, errors, f"test NLL (IWAE, k = {k}), nats")
    for ax, what, title in (
        (axes[1], "kl", "KL per group, nats"),
        (axes[2], "active_units", "active units per group"),
    ):
        bottom = [table[n].get(f"{what}/z1", table[n][what]) for n in names]
        top = [table[n].get(f"{what}/z2", 0.0) for n in names]
        ax.bar(names, bottom, color="#4c72b0", label="z1 (32)")
        ax.bar(names, top, bottom=bottom, color="#dd8452", label="z2 (16)")
        ax.set_title(title, fontsize=10)
    axes[2].legend(fontsize=8)
    fig.suptitle(
        "Fashion-MNIST (dynamically binarised), MLP backbones, mean over seeds", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    STUDY.main(__doc__ or "", plot)
