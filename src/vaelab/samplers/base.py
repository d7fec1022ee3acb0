"""What every latent sampler offers: draws of z at a temperature; a fitted one also
learns from the training latents and saves and restores what it learned."""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor


class LatentSampler(abc.ABC):
    """Draws latents z (n, D) for the decoder."""

    #: the name pictures and files are labelled with (`sampler=<name>`)
    name: ClassVar[str]

    @abc.abstractmethod
    def sample(
        self, model: Any, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """`n` latents (n, D) on the CPU, the sampler's noise scaled by `temperature`."""

    def check_model(self, model: Any) -> None:  # noqa: B027 (optional: most serve any model)
        """Refuse, in one line (`ConfigError`), a model this sampler cannot serve; note
        what it needs of it. Called before fitting or restoring."""


class PriorSampler(LatentSampler):
    """The model's prior p(z)."""

    name = "prior"

    def sample(
        self, model: Any, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        with torch.no_grad():
            z: Tensor = model.prior.sample(n, temperature, generator)
        return z.cpu()


class FittedSampler(LatentSampler):
    """A density over z fitted to the latents of `n_fit` training examples, drawn with
    seed `seed`. `fits_on`: the posterior means (`means`) or one posterior sample per
    example (`samples`), or a VQ-VAE's code indices (`codes`)."""

    fits_on: ClassVar[Literal["means", "samples", "codes"]] = "means"

    def __init__(self, n_fit: int = 10000, seed: int = 0) -> None:
        self.n_fit = int(n_fit)
        self.seed = int(seed)

    @abc.abstractmethod
    def fit(self, latents: Tensor) -> None:
        """Fit to training latents (N, D)."""

    @abc.abstractmethod
    def state(self) -> dict[str, Any]:
        """What was fitted, as tensors and plain values (saved by `vaelab.samplers.store`)."""

    @abc.abstractmethod
    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what `state` returned."""

    def settings(self) -> dict[str, Any]:
        """The settings a saved fit must match to be reused."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}
