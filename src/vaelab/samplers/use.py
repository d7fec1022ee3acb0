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
    (`fits_on`)."""
    x = data.example_batch(sampler.n_fit, split="train")
    torch.manual_seed(sampler.seed)
    parts = []
    for chunk in x.split(500):
        chunk = chunk.to(model.device)
        if sampler.fits_on == "codes":
            parts.append(model.code_indices(chunk))
        elif sampler.fits_on == "samples":
            parts.append(model.latent_batch(chunk).z)
        else:
            parts.append(model.code(chunk))
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
    sampler: LatentSampler, model: Any, n: int, temperature: float, seed: int
) -> Tensor:
    """`n` images (the likelihood's mean, on the CPU) decoded from draws of a ready
    `sampler`, from their own seeded generator: the same picture for the same seed."""
    generator = torch.Generator().manual_seed(seed)
    z = sampler.sample(model, n, temperature, generator).to(model.device)
    images: Tensor = model.decode(z).mean.cpu()
    return images
