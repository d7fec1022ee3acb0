"""DIP-VAE (Kumar et al. 2018, "Variational inference of disentangled latent concepts
from unlabeled observations").

Pushes a covariance of the representation towards the identity:

    penalty = λ_od · Σ_{i≠j} C_ij² + λ_d · Σ_i (C_ii − 1)²

with C the batch covariance of the posterior means, Cov[μ(x)] (DIP-VAE-I), or of the
aggregate posterior, Cov[μ(x)] + E[diag σ²(x)] (DIP-VAE-II). Covariances are the
batch's own (divided by B, as disentanglement_lib computes them). Loss: recon + KL +
penalty. Their settings: λ_d = 10·λ_od for I, λ_d = λ_od for II.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from vaelab.config.constraints import NonNegative, NonNegativeInt
from vaelab.objectives.base import LatentBatch, Objective, ObjectiveOutput, ramp


def batch_covariance(values: Tensor) -> Tensor:
    """E[v vᵀ] − E[v] E[v]ᵀ over the batch (B, D) -> (D, D)."""
    centred = values - values.mean(0, keepdim=True)
    return centred.T @ centred / values.shape[0]


def dip_penalties(mean: Tensor, log_var: Tensor, variant: str) -> tuple[Tensor, Tensor]:
    """(Σ_{i≠j} C_ij², Σ_i (C_ii − 1)²) of the covariance `variant` ("i" or "ii") names."""
    cov = batch_covariance(mean)
    if variant == "ii":
        cov = cov + torch.diag(torch.exp(log_var).mean(0))
    diagonal = torch.diagonal(cov)
    off_diagonal = cov.square().sum() - diagonal.square().sum()
    return off_diagonal, (diagonal - 1).square().sum()


class DIPVAE(Objective):
    """recon + KL + λ_od·(off-diagonal)² + λ_d·(diagonal − 1)² (Kumar et al. 2018)."""

    terms = frozenset({"beta", "dip_offdiag", "dip_diag"})
    needs_standard_normal_prior = "it pushes the latents' covariance to N(0, I)'s identity"
    needs_gaussian_posterior = "its covariance is that of the Gaussians' means and variances"
    needs_single_group = "it decorrelates the dimensions of one latent vector"

    def __init__(
        self,
        variant: Literal["i", "ii"] = "ii",
        lambda_od: NonNegative = 10.0,
        lambda_d: NonNegative = 10.0,
        warmup_steps: NonNegativeInt = 0,
    ) -> None:
        super().__init__()
        self.variant = variant
        self.lambda_od, self.lambda_d = float(lambda_od), float(lambda_d)
        self.warmup_steps = int(warmup_steps)

    def forward(self, batch: LatentBatch) -> ObjectiveOutput:
        off_diagonal, diagonal = dip_penalties(batch.mean, batch.log_var, self.variant)
        w = ramp(batch.step, self.warmup_steps)
        penalty = self.lambda_od * off_diagonal + self.lambda_d * diagonal
        loss = batch.recon_mean + batch.kl_mean + w * penalty
        terms: dict[str, Tensor | float] = {
            "beta": 1.0,
            "dip_offdiag": off_diagonal,
            "dip_diag": diagonal,
        }
        return ObjectiveOutput(loss, terms)
