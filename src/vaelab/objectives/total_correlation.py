"""β-TCVAE (Chen et al. 2018, "Isolating sources of disentanglement in VAEs").

The KL term, averaged over the data, splits into three parts (their Eq. 2):

    E_x KL(q(z|x) ‖ p(z)) = I_q(x; z)               index-code mutual information
                          + KL(q(z) ‖ Π_d q(z_d))   total correlation (TC)
                          + Σ_d KL(q(z_d) ‖ p(z_d)) dimension-wise KL

and β-TCVAE weighs them α, β, γ. Per example, with z ~ q(z|x_i) of the batch:

    mi = log q(z|x_i) − log q(z),  tc = log q(z) − Σ_d log q(z_d),
    dim_kl = Σ_d log q(z_d) − log p(z),

which sum to log q(z|x_i) − log p(z) whatever the estimate of q(z) is. q(z) and the
marginals q(z_d) are estimated from the batch, as mixtures of its members' posteriors:

- `mws`, minibatch-weighted sampling: every member weighs 1/M. Chen et al. write the
  weights 1/(N·M); that shifts each of the 1 + D log-densities by −log N, a constant
  that does not change the gradients but makes the logged terms off by (D − 1)·log N
  (TC) and the like. With 1/M the estimates are the batch mixture's own, and converge
  to the true terms as the batch grows to the data (tests/test_objectives.py).
- `mss`, minibatch-stratified sampling (Chen et al., Appendix C.2): z's own posterior
  weighs 1/N, one other member (N − M)/(N·M), the remaining M − 1 members 1/M each,
  with M = B − 1; the weights of each row sum to one. The "other member" of row i is
  member i + 1 (cyclically): any fixed choice gives an estimator of the same law.

N is the number of training examples (from the data module).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from vaelab.config.constraints import NonNegative, NonNegativeInt
from vaelab.objectives.base import (
    LatentBatch,
    Objective,
    ObjectiveOutput,
    gaussian_log_density,
    ramp,
)


def log_weight_matrix(batch_size: int, dataset_size: int, estimator: str) -> Tensor:
    """log w_ij (B, B): the weight of member j's posterior in the estimate of q(z_i)."""
    b, n = batch_size, dataset_size
    if estimator == "mws" or b < 2:
        return torch.full((b, b), -math.log(b))
    m = b - 1
    weights = torch.full((b, b), 1.0 / m)
    rows = torch.arange(b)
    weights[rows, (rows + 1) % b] = max(n - m, 0) / (n * m)
    weights[rows, rows] = 1.0 / n
    return weights.log()


def decomposed_kl(
    z: Tensor, mean: Tensor, log_var: Tensor, dataset_size: int, estimator: str = "mss"
) -> dict[str, Tensor]:
    """Per-example `mi`, `tc`, `dim_kl` (each (B,)) of the samples `z` (B, D) drawn from
    the posteriors N(mean, exp(log_var)) of the same batch, and the log-densities they
    are made of (`log_qz_x`, `log_qz`, `log_qz_product`, `log_pz`)."""
    # log q(z_i,d | x_j, d) for every pair (i, j): (B, B, D)
    pairwise = gaussian_log_density(z.unsqueeze(1), mean.unsqueeze(0), log_var.unsqueeze(0))
    log_w = log_weight_matrix(z.shape[0], dataset_size, estimator).to(z)
    log_qz = torch.logsumexp(log_w + pairwise.sum(-1), dim=1)
    log_qz_product = torch.logsumexp(log_w.unsqueeze(-1) + pairwise, dim=1).sum(-1)
    log_qz_x = gaussian_log_density(z, mean, log_var).sum(-1)
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(-1)
    return {
        "mi": log_qz_x - log_qz,
        "tc": log_qz - log_qz_product,
        "dim_kl": log_qz_product - log_pz,
        "log_qz_x": log_qz_x,
        "log_qz": log_qz,
        "log_qz_product": log_qz_product,
        "log_pz": log_pz,
    }


class BetaTCVAE(Objective):
    """recon + α·MI + β·TC + γ·dim-KL (Chen et al. 2018), the weights warmed up
    together over `warmup_steps`. Their default: α = γ = 1, β = 6 on dSprites."""

    terms = frozenset({"beta", "mi", "tc", "dim_kl"})
    needs_standard_normal_prior = "its dimension-wise KL is to the factorised N(0, I)"
    needs_gaussian_posterior = "q(z) is estimated as a mixture of the batch's Gaussians"
    needs_single_group = "the total correlation is that of one factorised latent vector"

    def __init__(
        self,
        alpha: NonNegative = 1.0,
        beta: NonNegative = 6.0,
        gamma: NonNegative = 1.0,
        estimator: Literal["mws", "mss"] = "mss",
        warmup_steps: NonNegativeInt = 0,
    ) -> None:
        super().__init__()
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.estimator = estimator
        self.warmup_steps = int(warmup_steps)
        self.dataset_size = 0  # set from the data module before training

    def set_dataset_size(self, n: int) -> None:
        self.dataset_size = int(n)

    def forward(self, batch: LatentBatch) -> ObjectiveOutput:
        n = self.dataset_size or batch.z.shape[0]
        parts = decomposed_kl(batch.z, batch.mean, batch.log_var, n, self.estimator)
        mi, tc, dim_kl = (parts[k].mean() for k in ("mi", "tc", "dim_kl"))
        w = ramp(batch.step, self.warmup_steps)
        loss = batch.recon_mean + w * (self.alpha * mi + self.beta * tc + self.gamma * dim_kl)
        return ObjectiveOutput(loss, {"beta": self.beta * w, "mi": mi, "tc": tc, "dim_kl": dim_kl})
