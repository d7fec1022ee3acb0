"""FactorVAE (Kim & Mnih 2018, "Disentangling by factorising").

A discriminator D tells samples of q(z) from samples of Π_d q(z_d) (the batch's z with
each dimension shuffled across the batch independently). Trained to optimum, its logit
is log q(z) − log Π_d q(z_d), so the batch mean of the logit estimates the total
correlation, and the VAE minimises recon + KL + γ·TC.

One batch per step, split in two: the VAE's TC term reads the logits of all of it;
D learns from the first half as "joint" and from the second half, dimension-wise
permuted, as "product of marginals" (the paper draws a second batch for the
permutation; the split costs no second encoder pass and keeps D's two classes apart).
Both losses come from one forward pass and go back in one backward pass, each reaching
only its own parameters: D's parameters take no gradient from the VAE's loss (they are
frozen while it is computed) and the VAE takes none from D's (its z is detached).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaelab.config.constraints import NonNegative, NonNegativeInt, Positive, Widths
from vaelab.objectives.base import LatentBatch, Objective, ObjectiveOutput, ramp


def permute_dims(z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Each column of `z` (B, D) shuffled across the batch on its own: a sample of
    Π_d q(z_d) from a sample of q(z)."""
    b, d = z.shape
    order = torch.argsort(torch.rand(b, d, generator=generator, device=z.device), dim=0)
    return torch.gather(z, 0, order)


def discriminator(latent_dim: int, hidden: Sequence[int]) -> nn.Sequential:
    """An MLP with LeakyReLU(0.2) between layers, one logit out (Kim & Mnih: 6 × 1000)."""
    layers: list[nn.Module] = []
    width = latent_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def discriminator_loss(d: nn.Module, joint: Tensor, product: Tensor) -> tuple[Tensor, Tensor]:
    """Cross-entropy of D on samples of q(z) (label 1) and of Π_d q(z_d) (label 0), and
    its accuracy on them."""
    logits_joint, logits_product = d(joint).squeeze(-1), d(product).squeeze(-1)
    loss = 0.5 * (
        F.binary_cross_entropy_with_logits(logits_joint, torch.ones_like(logits_joint))
        + F.binary_cross_entropy_with_logits(logits_product, torch.zeros_like(logits_product))
    )
    correct = (logits_joint > 0).float().sum() + (logits_product <= 0).float().sum()
    return loss, correct / (len(logits_joint) + len(logits_product))


class FactorVAE(Objective):
    """recon + KL + γ·TC, TC from a discriminator trained alongside (Kim & Mnih 2018).
    The paper: γ = 35 on dSprites, D 6 × 1000, D's Adam lr 1e-4, betas (0.5, 0.9)."""

    terms = frozenset(
        {"beta", "gamma", "tc_estimate", "discriminator_loss", "discriminator_accuracy"}
    )
    needs_single_group = "its discriminator tells q(z) from the product of one vector's marginals"

    def __init__(
        self,
        latent_dim: int,
        gamma: NonNegative = 35.0,
        hidden: Widths = (1000,) * 6,
        lr: Positive = 1e-4,
        betas: tuple[float, float] = (0.5, 0.9),
        warmup_steps: NonNegativeInt = 0,
    ) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.discriminator = discriminator(int(latent_dim), list(hidden))
        self.lr, self.betas = float(lr), (float(betas[0]), float(betas[1]))
        self.warmup_steps = int(warmup_steps)

    def own_optimizers(self) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.discriminator.parameters(), lr=self.lr, betas=self.betas)]

    def forward(self, batch: LatentBatch) -> ObjectiveOutput:
        z = batch.z
        self.discriminator.requires_grad_(False)  # the VAE's loss moves the VAE only
        try:
            tc = self.discriminator(z).squeeze(-1).mean()
        finally:
            self.discriminator.requires_grad_(True)
        half = z.shape[0] // 2
        joint, product = z[:half].detach(), permute_dims(z[half:].detach())
        d_loss, accuracy = discriminator_loss(self.discriminator, joint, product)
        gamma = self.gamma * ramp(batch.step, self.warmup_steps)
        loss = batch.recon_mean + batch.kl_mean + gamma * tc
        terms = {
            "beta": 1.0,
            "gamma": gamma,
            "tc_estimate": tc.detach(),
            "discriminator_loss": d_loss.detach(),
            "discriminator_accuracy": accuracy,
        }
        return ObjectiveOutput(loss, terms, own_loss=d_loss)
