"""Training objectives: what a VAE minimises, chosen with `objective=` (conf/objective/).

Each takes a `LatentBatch` (the model's computation on a batch) and returns the loss
and the terms it logs. Units: nats per example, summed over dimensions, averaged over
the batch.
"""

from __future__ import annotations

from typing import Any

from vaelab.objectives.base import LatentBatch, Objective, ObjectiveOutput, ramp
from vaelab.objectives.dip_vae import DIPVAE
from vaelab.objectives.elbo import BetaVAE, Capacity
from vaelab.objectives.factor_vae import FactorVAE
from vaelab.objectives.iwae import IWAE
from vaelab.objectives.mmd import InfoVAE
from vaelab.objectives.total_correlation import BetaTCVAE
from vaelab.objectives.vq import VQ

#: `beta_schedule=` gave way to `objective=`; what to type instead.
BETA_SCHEDULE_REPLACED = (
    "beta_schedule= is now objective=: beta_schedule=constant is objective=beta_vae, "
    "beta_schedule=warmup is objective=beta_vae objective.warmup_steps=1000, "
    "beta_schedule=capacity is objective=capacity (its keys unchanged: objective.gamma, "
    "objective.c_max, objective.c_steps)"
)

_LEGACY_TARGETS = {
    "vaelab.objectives.ConstantBeta": "vaelab.objectives.BetaVAE",
    "vaelab.objectives.LinearWarmup": "vaelab.objectives.BetaVAE",
    "vaelab.objectives.CapacityAnnealing": "vaelab.objectives.Capacity",
}


def objective_from_beta_schedule(schedule: dict[str, Any]) -> dict[str, Any]:
    """The objective config of a checkpoint written before `objective=` existed, from
    its `beta_schedule` hyperparameter (so that older checkpoints still load)."""
    schedule = dict(schedule)
    target = schedule.pop("_target_", "vaelab.objectives.ConstantBeta")
    return {"_target_": _LEGACY_TARGETS.get(target, target), **schedule}


__all__ = [
    "BETA_SCHEDULE_REPLACED",
    "DIPVAE",
    "IWAE",
    "VQ",
    "BetaTCVAE",
    "BetaVAE",
    "Capacity",
    "FactorVAE",
    "InfoVAE",
    "LatentBatch",
    "Objective",
    "ObjectiveOutput",
    "objective_from_beta_schedule",
    "ramp",
]
