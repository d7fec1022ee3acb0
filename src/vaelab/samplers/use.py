"""A sampler from its config, ready to draw for a trained model: fitted to (or restored
for) that model's training latents, and the images its draws decode to. The apps
(train's last samples, eval's sample quality, generate's pictures) go through here."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vaelab.samplers.base import FittedSampler, LatentSampler, PriorSampler
from vaelab.samplers.store import load_or_fit


@torch.no_grad()
def training_latents(model: Any, data: Any, sampler: FittedSampler) -> Tensor:
    """What a fitted sampler learns from: the codes (posterior means) of the first
    `n_fit` training examples, one posterior sample of each, or their VQ code indices
    (`fits_on`). A conditional model encodes each example with its labels: the sampler
    learns the codes' distribution over the whole training split, whatever the labels."""
    x, labels = data.labelled_examples(sampler.n_fit, model.label_names, split="train")
    torch.manual_seed(sampler.seed)
    parts = []
    for start in range(0, len(x), 500):
        chunk = x[start : start + 500].to(model.device)
        chunk_labels = None if labels is None else labels[start : start + 500]
        if sampler.fits_on == "codes":
            parts.append(model.code_indices(chunk, chunk_labels))
        elif sampler.fits_on == "samples":
            parts.append(model.latent_batch(chunk, labels=chunk_labels).z)
        else:
            parts.append(model.code(chunk, chunk_labels))
    return torch.cat(parts).cpu()


def ready_sampler(
    config: Mapping[str, Any] | None, model: Any, data: Any, checkpoint: Path
) -> tuple[LatentSampler, str]:
    """The sampler of `config` (a `_target_` config; None: the prior) ready to draw, and
    how: `prior`, `reused` (its saved fit) or `fitted` (now, then saved)."""
    from hydra.utils import instantiate

    sampler: LatentSampler = PriorSampler() if not config else instantiate(config)
    sampler.check_model(model)
    return load_or_fit(sampler, model, checkpoint, lambda s: training_latents(model, data, s))


@torch.no_grad()
def sampled_images(
    sampler: LatentSampler,
    model: Any,
    n: int,
    temperature: float,
    seed: int,
    labels: Tensor | None = None,
) -> Tensor:
    """`n` images (the likelihood's mean, on the CPU) decoded from draws of a ready
    `sampler`, from their own seeded generator: the same picture for the same seed.
    A conditional model decodes image i with `labels[i]` (n, K)."""
    generator = torch.Generator().manual_seed(seed)
    z = sampler.sample(model, n, temperature, generator).to(model.device)
    images: Tensor = model.decode(z, labels).mean.cpu()
    return images
