"""A VQ-VAE on real data: dynamically binarised Fashion-MNIST (Debian's files), the MLP
backbones of bench/hierarchy.py, 32 quantised numbers (16 positions of 2) from a
codebook of 128, the same budget, then its learned prior over the codes fitted from
each checkpoint (`sampler=code_prior`). Run it alone on the machine.

    .venv/bin/python bench/vq.py [--epochs 10] [--seeds 0,1,2]

Recorded per seed (bench/variant_study.py runs train, then eval with the code prior):
the test reconstruction term −log p(x|z_q), the −ELBO under the uniform prior (the
reconstruction plus 16 log 128 nats), the pair's bound with the learned prior
(`nll_pair`: reconstruction plus the test codes' −log p(k)), the test codebook
perplexity and share of codes used, and the share of blank samples from the learned
prior. A point-mass posterior makes the IWAE bound equal the ELBO, so k = 1. Writes
bench/results/vq.json and docs/images/vq.png (samples of the learned prior).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from variant_study import FASHION_MLP, Study

STUDY = Study(
    name="vq",
    variants={"vq": ["latent=vq", "objective=vq", "latent.codes=128", "latent.embedding_dim=2"]},
    shared=FASHION_MLP,
    headline=("recon", "nelbo", "nll_pair", "perplexity", "codes_used", "blank_fraction"),
    eval_overrides=(
        "sampler=code_prior",
        "eval.sample_quality.n_samples=1000",
        "eval.disentanglement.enabled=false",
    ),
    default_k=1,
)


def plot(table: dict[str, dict[str, Any]], k: int, path: Path) -> None:
    """The learned prior's samples of the first seed, as generate.py draws them."""
    STUDY.generated_picture(
        "vq", "samples_code_prior.png", path, "sampler=code_prior", "n_samples=32"
    )


if __name__ == "__main__":
    STUDY.main(__doc__ or "", plot)
