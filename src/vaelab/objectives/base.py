"""What every objective receives and returns.

Units (docs/objectives.md): nats per example, summed over data and latent
dimensions, averaged over the batch. An objective turns what the model computed for a
batch into the loss to minimise and the named terms it logs; the model itself logs
`recon`, `kl` and `nelbo` (β-free, comparable across objectives) beside them.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar, Protocol

import torch
from torch import Tensor, nn


class LatentDraws(Protocol):
    """What a model with a learned prior or a flow posterior gives its objectives beyond
    one sample: more posterior draws with their densities, and the prior's density and
    draws (vaelab.models.vae builds it; None for a Gaussian posterior under N(0, I))."""

    def draw(self, k: int) -> tuple[Tensor, Tensor]:
        """`k` fresh posterior samples per example and log q(z|x) of each: (k, B, D), (k, B)."""

    def log_prior(self, z: Tensor) -> Tensor:
        """log p(z): (..., D) -> (...)."""

    def prior_sample(self, n: int) -> Tensor:
        """`n` draws from p(z): (n, D)."""


class QuantisedLatents(Protocol):
    """What quantising a batch gave, as objectives read it (`latent=vq`;
    vaelab.models.quantise.Quantised): per-example commitment ‖z_e − sg(z_q)‖² (B,),
    the batch's codebook perplexity, the share of codes used, dead codes restarted."""

    @property
    def commitment(self) -> Tensor: ...
    @property
    def perplexity(self) -> Tensor: ...
    @property
    def codes_used(self) -> Tensor: ...
    @property
    def restarts(self) -> Tensor: ...


@dataclass(frozen=True)
class LatentBatch:
    """One training batch as the model computed it.

    Attributes:
        x: the data (B, C, H, W).
        mean, log_var: q(z|x)'s parameters (B, D).
        z: the reparameterised sample mean + exp(log_var / 2) * eps (B, D).
        log_px: log p(x|z) per example (B,).
        kl_per_dim: the analytic KL(q(z_d|x) ‖ p(z_d)) per example and dimension (B, D);
            None where there is no closed form (a learned prior, a flow posterior).
        step: optimiser steps taken so far (schedules read it).
        log_likelihood: (z (N, D), x (N, ...)) -> log p(x|z) (N,): more samples of z
            for the objectives that take several (IWAE).
        log_qz_x, log_pz: log q(z|x) and log p(z) of `z` (B,), when the KL is the
            single-sample estimate log q(z|x) − log p(z) (`kl_per_dim` is None).
        draws: more posterior draws and the prior (`LatentDraws`); None for a Gaussian
            posterior under N(0, I), whose objectives write them on `mean` and `log_var`.
        kl_groups: under a hierarchy of latent groups (`latent=hierarchical|ladder`),
            each group's KL per example (B,) by name; they sum to `kl`. `mean`, `log_var`
            and `z` are then the groups' concatenated, each group's posterior
            parameters at this draw (vaelab.models.hierarchy).
        quantised: under `latent=vq`, what quantising gave (commitment, perplexity, codes
            used; vaelab.models.quantise). `mean` is then the encoder's z_e, `z` the
            quantised z_q, and the KL the constant positions · log K.
    """

    x: Tensor
    mean: Tensor
    log_var: Tensor
    z: Tensor
    log_px: Tensor
    kl_per_dim: Tensor | None
    step: int
    log_likelihood: Callable[[Tensor, Tensor], Tensor] = field(repr=False)
    log_qz_x: Tensor | None = None
    log_pz: Tensor | None = None
    draws: LatentDraws | None = field(default=None, repr=False)
    kl_groups: dict[str, Tensor] | None = None
    quantised: QuantisedLatents | None = field(default=None, repr=False)

    # Computed once per batch and shared by the objective and the model's logging: on a
    # small model each extra reduction is a visible share of the step.
    @cached_property
    def recon(self) -> Tensor:
        """−log p(x|z) per example (B,)."""
        return -self.log_px

    @cached_property
    def kl(self) -> Tensor:
        """KL(q(z|x) ‖ p(z)) per example (B,): analytic, or log q(z|x) − log p(z) of `z`."""
        if self.kl_per_dim is not None:
            return self.kl_per_dim.sum(-1)
        if self.kl_groups is not None:
            return torch.stack(list(self.kl_groups.values())).sum(0)
        if self.log_qz_x is None or self.log_pz is None:
            raise ValueError("a LatentBatch needs kl_per_dim or both log_qz_x and log_pz")
        return self.log_qz_x - self.log_pz

    @cached_property
    def recon_mean(self) -> Tensor:
        return self.recon.mean()

    @cached_property
    def kl_mean(self) -> Tensor:
        return self.kl.mean()


@dataclass(frozen=True)
class ObjectiveOutput:
    """`loss`: the scalar the VAE's optimiser minimises (logged as train/loss).
    `own_loss`: the loss of the objective's own modules (FactorVAE's discriminator),
    backpropagated with `loss` in the same backward pass; it must reach only the
    objective's own parameters, and `loss` only the VAE's. `terms`: scalars logged as
    `<stage>/<name>` (β in force, TC estimate, ...)."""

    loss: Tensor
    terms: dict[str, Tensor | float]
    own_loss: Tensor | None = None


class Objective(nn.Module, abc.ABC):
    """The training objective of a VAE. A module, so that what it owns (a discriminator)
    is saved in checkpoints, moved to the device and wrapped by DDP with the model.
    Subclasses define `forward`; one without it cannot be instantiated.

    `terms`: the names of the terms `forward` returns, each logged as `train/<name>`
    beside the model's own `recon`, `kl` and `nelbo`; declared here so that the tests
    and docs/objectives.md read what an objective logs from the class."""

    terms: ClassVar[frozenset[str]]
    #: Why the objective's definition needs the prior N(0, I) (None: it works with any
    #: prior); the model refuses other priors with this reason.
    needs_standard_normal_prior: ClassVar[str | None] = None
    #: Why it needs q(z|x) to be the encoder's Gaussian (None: any posterior).
    needs_gaussian_posterior: ClassVar[str | None] = None
    #: Why it is defined on one group of latents (None: it takes a hierarchy, reading
    #: the KL summed over the groups and the concatenated z).
    needs_single_group: ClassVar[str | None] = None
    #: Defined on quantised latents (`latent=vq`) only; every other objective refuses them.
    needs_quantised: ClassVar[bool] = False

    @abc.abstractmethod
    def forward(self, batch: LatentBatch) -> ObjectiveOutput:
        """The loss, the own modules' loss (or None) and the logged terms of `batch`."""

    def own_optimizers(self) -> list[torch.optim.Optimizer]:
        """Optimisers of the objective's own parameters, stepped after the VAE's."""
        return []

    def set_dataset_size(self, n: int) -> None:
        """The number of training examples (β-TCVAE's estimators weigh with it)."""


def ramp(step: int, warmup_steps: int) -> float:
    """Linear warm-up factor: 0 at step 0, 1 from `warmup_steps` on (1 if no warm-up).
    It multiplies each regularising weight of an objective (KL annealing)."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, step / warmup_steps)


LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(z: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    """log N(z; mean, exp(log_var)) elementwise (broadcasting), in nats."""
    return -0.5 * (LOG_2PI + log_var + (z - mean).square() * torch.exp(-log_var))
