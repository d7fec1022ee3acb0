"""InfoVAE with a maximum-mean-discrepancy divergence (Zhao et al. 2019, "InfoVAE:
balancing learning and inference in variational autoencoders"; with β = 0 it is the
WAE-MMD of Tolstikhin et al. 2018).

The ELBO's KL term pulls each posterior towards the prior, but nothing in it asks the
posteriors together, the aggregate q(z) = E_x q(z|x), to fill the prior: at β = 1 the
aggregate can leave regions of N(0, I) empty, and prior samples from there decode to
nothing a dataset holds. InfoVAE adds a divergence between q(z) and p(z), here the
squared MMD between the batch's sampled z and as many draws from the prior (N(0, I), or
the model's learned prior, whose draws carry no gradient here):

    MMD² = mean_{i≠j} k(z_i, z_j) + mean_{i≠j} k(p_i, p_j) − 2 · mean_{i,j} k(z_i, p_j)

(the unbiased estimator, Gretton et al. 2012) with the inverse multiquadratic kernel
k(a, b) = Σ_s c_s / (c_s + ‖a − b‖²), c_s = 2·D·s over scales s, as Tolstikhin et al.
use it: its heavy tails keep gradients alive between distant samples, where a Gaussian
kernel's vanish. Loss: recon + β·KL + λ·MMD².
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from vaelab.config.constraints import NonNegative, NonNegativeInt
from vaelab.objectives.base import LatentBatch, Objective, ObjectiveOutput, ramp

#: Tolstikhin et al.'s scales of the IMQ kernel, in units of the prior's variance.
DEFAULT_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def imq_kernel(a: Tensor, b: Tensor, scales: Sequence[float]) -> Tensor:
    """Σ_s c_s / (c_s + ‖a_i − b_j‖²) with c_s = 2·D·s: (N, D), (M, D) -> (N, M)."""
    distances = torch.cdist(a, b).square()
    total = torch.zeros_like(distances)
    for scale in scales:
        c = 2.0 * a.shape[-1] * scale
        total = total + c / (c + distances)
    return total


def _off_diagonal_mean(k: Tensor) -> Tensor:
    n = k.shape[0]
    return (k.sum() - k.diagonal().sum()) / (n * (n - 1))


def mmd_squared(x: Tensor, y: Tensor, scales: Sequence[float] = DEFAULT_SCALES) -> Tensor:
    """The unbiased estimate of MMD²(P, Q) from samples x (N, D) ~ P and y (M, D) ~ Q,
    N, M ≥ 2, under the IMQ kernel of `scales`."""
    return (
        _off_diagonal_mean(imq_kernel(x, x, scales))
        + _off_diagonal_mean(imq_kernel(y, y, scales))
        - 2.0 * imq_kernel(x, y, scales).mean()
    )


class InfoVAE(Objective):
    """recon + β·KL + λ·MMD²(q(z), N(0, I)), the MMD weight rising linearly from 0 over
    `warmup_steps` steps (Zhao et al. 2019)."""

    terms = frozenset({"beta", "mmd"})

    def __init__(
        self,
        beta: NonNegative = 1.0,
        lambda_mmd: NonNegative = 100.0,
        warmup_steps: NonNegativeInt = 0,
    ) -> None:
        super().__init__()
        self.beta = float(beta)
        self.lambda_mmd = float(lambda_mmd)
        self.warmup_steps = int(warmup_steps)

    def forward(self, batch: LatentBatch) -> ObjectiveOutput:
        if batch.draws is None:
            prior = torch.randn_like(batch.z)
        else:
            prior = batch.draws.prior_sample(batch.z.shape[0]).to(batch.z)
        mmd = mmd_squared(batch.z, prior)
        weight = self.lambda_mmd * ramp(batch.step, self.warmup_steps)
        loss = batch.recon_mean + self.beta * batch.kl_mean + weight * mmd
        return ObjectiveOutput(loss, {"beta": self.beta, "mmd": mmd})
