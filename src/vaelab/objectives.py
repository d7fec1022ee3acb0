"""The β-weighted objective and its schedules, and the KL term.

Units (DESIGN.md): nats per example, summed over data and latent dimensions,
averaged over the batch. β scales the KL term only; at β = 1 the loss is −ELBO.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from torch import Tensor

from vaelab.constraints import NonNegative, PositiveInt


@dataclass(frozen=True)
class Objective:
    """The scalar to minimise and the β (or γ) in force at this step."""

    loss: Tensor
    beta: float
    capacity: float | None = None


class BetaSchedule(abc.ABC):
    """Combines the batch-mean reconstruction and KL terms into the training loss."""

    @abc.abstractmethod
    def __call__(self, recon: Tensor, kl: Tensor, step: int) -> Objective:
        """`recon`, `kl`: batch means in nats; `step`: the optimiser step count."""


class ConstantBeta(BetaSchedule):
    """recon + β·KL with a fixed β (Higgins et al. 2017)."""

    def __init__(self, beta: NonNegative = 1.0) -> None:
        self.beta = float(beta)

    def __call__(self, recon: Tensor, kl: Tensor, step: int) -> Objective:
        return Objective(recon + self.beta * kl, self.beta)


class LinearWarmup(BetaSchedule):
    """β rises linearly from 0 to `beta` over `warmup_steps` steps (KL annealing)."""

    def __init__(self, beta: NonNegative = 1.0, warmup_steps: PositiveInt = 1000) -> None:
        self.beta = float(beta)
        self.warmup_steps = int(warmup_steps)

    def beta_at(self, step: int) -> float:
        return self.beta * min(1.0, step / self.warmup_steps)

    def __call__(self, recon: Tensor, kl: Tensor, step: int) -> Objective:
        beta = self.beta_at(step)
        return Objective(recon + beta * kl, beta)


class CapacityAnnealing(BetaSchedule):
    """recon + γ·|KL − C|, with C rising linearly from 0 to `c_max` nats over
    `c_steps` steps (Burgess et al. 2018, "Understanding disentangling in β-VAE").

    The logged β is γ, the weight on the KL deviation.
    """

    def __init__(
        self, gamma: NonNegative = 1000.0, c_max: NonNegative = 25.0, c_steps: PositiveInt = 100000
    ) -> None:
        self.gamma = float(gamma)
        self.c_max = float(c_max)
        self.c_steps = int(c_steps)

    def capacity_at(self, step: int) -> float:
        return self.c_max * min(1.0, step / self.c_steps)

    def __call__(self, recon: Tensor, kl: Tensor, step: int) -> Objective:
        capacity = self.capacity_at(step)
        return Objective(recon + self.gamma * (kl - capacity).abs(), self.gamma, capacity)
