"""The two-stage VAE of Dai & Wipf (2019, "Diagnosing and enhancing VAE models"): a
second VAE fitted to latents z ~ q(z|x) of the first, with as many latents as z and a
Gaussian decoder whose variance γ is learned (their key ingredient: as γ shrinks, the
second stage's aggregate posterior fills its standard normal prior). Samples: u ~ N(0,
I) decoded to the second stage's mean, then by the first decoder."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from vaelab.config.constraints import Positive, PositiveInt
from vaelab.config.schema import Seed
from vaelab.samplers.training import NoiseSampler


class SecondStage(nn.Module):
    """An MLP VAE over vectors of size `dim` with a learned decoder variance."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.dim = dim
        self.encoder = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 2 * dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, dim),
        )
        self.log_gamma = nn.Parameter(torch.zeros(()))

    def decode(self, u: Tensor) -> Tensor:
        """The decoder's mean for second-stage latents u."""
        mean = self.decoder(u)
        assert isinstance(mean, Tensor)
        return mean

    def negative_elbo(self, z: Tensor) -> Tensor:
        """−ELBO per example, averaged: Gaussian reconstruction with variance γ, analytic KL."""
        params: Tensor = self.encoder(z)
        mean, log_var = params.chunk(2, dim=-1)
        u = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        recon = 0.5 * (
            (z - self.decode(u)).square() / torch.exp(self.log_gamma)
            + self.log_gamma
            + math.log(2 * math.pi)
        ).sum(-1)
        kl = 0.5 * (mean.square() + torch.exp(log_var) - 1.0 - log_var).sum(-1)
        return (recon + kl).mean()


class TwoStageSampler(NoiseSampler):
    """A second-stage VAE (`hidden` units, `steps` Adam steps at rate `lr`) on one
    posterior sample of each of `n_fit` training examples."""

    name = "two_stage"
    fits_on = "samples"

    def __init__(
        self,
        hidden: PositiveInt = 256,
        steps: PositiveInt = 3000,
        lr: Positive = 1e-3,
        n_fit: PositiveInt = 10000,
        seed: Seed = 0,
    ) -> None:
        super().__init__(steps, lr, n_fit, seed)
        self.hidden = int(hidden)

    def build(self, dim: int) -> nn.Module:
        return SecondStage(dim, self.hidden)

    def loss(self, network: Any, latents: Tensor) -> Tensor:
        value: Tensor = network.negative_elbo(latents)
        return value

    def draw(self, network: Any, noise: Tensor) -> Tensor:
        z: Tensor = network.decode(noise)
        return z
