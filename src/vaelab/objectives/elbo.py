"""The β-weighted ELBO (Higgins et al. 2017) and its capacity-controlled variant
(Burgess et al. 2018)."""

from __future__ import annotations

from vaelab.config.constraints import NonNegative, NonNegativeInt, PositiveInt
from vaelab.objectives.base import LatentBatch, Objective, ObjectiveOutput, ramp


class BetaVAE(Objective):
    """recon + β·KL, β moving linearly from `beta_start` to `beta` over `warmup_steps`
    steps (0: `beta` throughout). At β = 1 the loss is −ELBO (Kingma & Welling 2014).

    `beta_start` = 0 is KL annealing (Bowman et al. 2016); `beta_start` > `beta` starts
    with a stronger bottleneck and relaxes it."""

    terms = frozenset({"beta"})

    def __init__(
        self,
        beta: NonNegative = 1.0,
        warmup_steps: NonNegativeInt = 0,
        beta_start: NonNegative = 0.0,
    ) -> None:
        super().__init__()
        self.beta = float(beta)
        self.warmup_steps = int(warmup_steps)
        self.beta_start = float(beta_start)

    def beta_at(self, step: int) -> float:
        return self.beta_start + (self.beta - self.beta_start) * ramp(step, self.warmup_steps)

    def forward(self, batch: LatentBatch) -> ObjectiveOutput:
        beta = self.beta_at(batch.step)
        loss = batch.recon_mean + beta * batch.kl_mean
        return ObjectiveOutput(loss, {"beta": beta})


class Capacity(Objective):
    """recon + γ·|KL − C|, C rising linearly from 0 to `c_max` nats over `c_steps`
    steps (Burgess et al. 2018, "Understanding disentangling in β-VAE"). Logged: γ as
    `beta` (the weight on the KL term) and C as `capacity`."""

    terms = frozenset({"beta", "capacity"})

    def __init__(
        self, gamma: NonNegative = 1000.0, c_max: NonNegative = 25.0, c_steps: PositiveInt = 100000
    ) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.c_max = float(c_max)
        self.c_steps = int(c_steps)

    def capacity_at(self, step: int) -> float:
        return self.c_max * min(1.0, step / self.c_steps)

    def forward(self, batch: LatentBatch) -> ObjectiveOutput:
        capacity = self.capacity_at(batch.step)
        loss = batch.recon_mean + self.gamma * (batch.kl_mean - capacity).abs()
        return ObjectiveOutput(loss, {"beta": self.gamma, "capacity": capacity})
