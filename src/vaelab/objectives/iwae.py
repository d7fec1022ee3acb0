"""IWAE (Burda et al. 2016, "Importance weighted autoencoders") as the training loss.

    −L_k = −log (1/k) Σ_s p(x, z_s) / q(z_s|x),   z_s ~ q(z|x),

per example, averaged over the batch: a bound on −log p(x) that tightens with k. At
k = 1 it is the ELBO; vaelab then uses the ELBO's analytic KL (as `test/nll_iwae` does
at k = 1), so `objective=iwae objective.k=1` trains exactly as `objective=beta_vae`.
Logged: `iwae_bound`, the batch mean of −L_k (≤ nelbo in expectation).

Memory: the k·B decoded samples and their graph are held for the backward pass,
k times the ELBO's. The first sample of each example is the batch's own z.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vaelab.constraints import PositiveInt
from vaelab.objectives.base import LatentBatch, Objective, ObjectiveOutput, gaussian_log_density


def iwae_bound(batch: LatentBatch, k: int) -> Tensor:
    """−L_k per example (B,), k ≥ 2, from z (the first sample) and k − 1 fresh ones."""
    std = torch.exp(0.5 * batch.log_var)
    eps = torch.randn((k - 1, *batch.mean.shape), dtype=std.dtype, device=std.device)
    extra = batch.mean + std * eps  # (k - 1, B, D)
    b = batch.x.shape[0]
    targets = batch.x.unsqueeze(0).expand(k - 1, *batch.x.shape).reshape(-1, *batch.x.shape[1:])
    log_px_extra = batch.log_likelihood(extra.reshape(-1, extra.shape[-1]), targets).view(k - 1, b)
    z = torch.cat([batch.z.unsqueeze(0), extra])  # (k, B, D)
    log_px = torch.cat([batch.log_px.unsqueeze(0), log_px_extra])
    zeros = torch.zeros_like(batch.mean)
    log_pz = gaussian_log_density(z, zeros, zeros).sum(-1)
    log_qz = gaussian_log_density(z, batch.mean, batch.log_var).sum(-1)
    return math.log(k) - torch.logsumexp(log_px + log_pz - log_qz, dim=0)


class IWAE(Objective):
    """−L_k with `k` importance samples per example (Burda et al. 2016: k = 5, 50)."""

    def __init__(self, k: PositiveInt = 5) -> None:
        super().__init__()
        self.k = int(k)

    def forward(self, batch: LatentBatch) -> ObjectiveOutput:
        # k = 1: the ELBO, summed in the order BetaVAE sums it
        loss = batch.recon_mean + batch.kl_mean if self.k == 1 else iwae_bound(batch, self.k).mean()
        return ObjectiveOutput(loss, {"beta": 1.0, "iwae_bound": loss.detach()})
