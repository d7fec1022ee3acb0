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
from typing import ClassVar

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class LatentBatch:
    """One training batch as the model computed it.

    Attributes:
        x: the data (B, C, H, W).
        mean, log_var: q(z|x)'s parameters (B, D).
        z: the reparameterised sample mean + exp(log_var / 2) * eps (B, D).
        log_px: log p(x|z) per example (B,).
        kl_per_dim: the analytic KL(q(z_d|x) ‖ N(0, 1)) per example and dimension (B, D).
        step: optimiser steps taken so far (schedules read it).
        log_likelihood: (z (N, D), x (N, ...)) -> log p(x|z) (N,): more samples of z
            for the objectives that take several (IWAE).
    """

    x: Tensor
    mean: Tensor
    log_var: Tensor
    z: Tensor
    log_px: Tensor
    kl_per_dim: Tensor
    step: int
    log_likelihood: Callable[[Tensor, Tensor], Tensor] = field(repr=False)

    # Computed once per batch and shared by the objective and the model's logging: on a
    # small model each extra reduction is a visible share of the step.
    @cached_property
    def recon(self) -> Tensor:
        """−log p(x|z) per example (B,)."""
        return -self.log_px

    @cached_property
    def kl(self) -> Tensor:
        """KL(q(z|x) ‖ p(z)) per example (B,), analytic."""
        return self.kl_per_dim.sum(-1)

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
