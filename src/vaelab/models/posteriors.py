"""Posterior families q(z|x), chosen with `posterior=` (conf/posterior/).

The encoder's head gives a diagonal Gaussian q0(z0|x) = N(μ(x), σ²(x)) and, for a flow,
a context vector; the family pushes z0 through an invertible map z = f(z0) whose
log-determinant enters the density:

    log q(z|x) = log q0(z0|x) − log |det ∂f/∂z0|.

- `GaussianPosterior`: f the identity (the default; the KL to N(0, I) is analytic).
- `IAFPosterior` (Kingma et al. 2016, "Improved variational inference with inverse
  autoregressive flow"): steps z ← σ ⊙ z + (1 − σ) ⊙ m, [m, s] = MADE(z, h), σ =
  sigmoid(s + forget_bias), the order reversed between steps; h is the encoder's
  context. log|det| = Σ log σ.
- `PlanarPosterior` (Rezende & Mohamed 2015, "Variational inference with normalizing
  flows"): steps z ← z + û tanh(wᵀz + b), with u, w, b from the encoder (amortised) and
  û the invertible reparameterisation of their Appendix A.1. log|det| = log|1 + ûᵀψ|,
  ψ = tanh′(wᵀz + b) w.

`flow` takes latents with leading sample dimensions (S, B, D) and the batch's context
(B, C), for the importance samples of IWAE.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vaelab.config.constraints import PositiveInt, Widths
from vaelab.models.flows import MADE


class Posterior(nn.Module):
    """The identity family: q(z|x) is the encoder's diagonal Gaussian."""

    #: q(z|x) is the Gaussian N(μ, σ²) itself (objectives that read μ and σ need it).
    gaussian: ClassVar[bool] = True

    def __init__(self, latent_dim: PositiveInt) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)

    @property
    def context_features(self) -> int:
        """What the encoder's head gives beyond μ and log σ², per example."""
        return 0

    def flow(self, z0: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """z = f(z0) and log|det ∂f/∂z0|: (..., D), (B, C) -> (..., D), (...)."""
        return z0, torch.zeros(z0.shape[:-1], dtype=z0.dtype, device=z0.device)


class GaussianPosterior(Posterior):
    """N(μ(x), diag σ²(x))."""


class IAFPosterior(Posterior):
    """`steps` inverse autoregressive flow steps on the encoder's `context`-sized vector,
    each a MADE of `hidden` widths."""

    gaussian = False
    #: added to s, so that σ starts near one and each step near the identity (Kingma et
    #: al. advise a positive bias for this).
    forget_bias = 1.5

    def __init__(
        self,
        latent_dim: PositiveInt,
        steps: PositiveInt = 2,
        hidden: Widths = (64, 64),
        context: PositiveInt = 32,
    ) -> None:
        super().__init__(latent_dim)
        d = self.latent_dim
        self._context = int(context)
        orders = [torch.arange(d) if i % 2 == 0 else torch.arange(d).flip(0) for i in range(steps)]
        self.steps = nn.ModuleList(
            MADE(d, [int(h) for h in hidden], 2, int(context), order) for order in orders
        )

    @property
    def context_features(self) -> int:
        return self._context

    def flow(self, z0: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        z = z0
        log_det = torch.zeros(z0.shape[:-1], dtype=z0.dtype, device=z0.device)
        for step in self.steps:
            m, s = step(z, context)
            gate = s + self.forget_bias
            z = torch.sigmoid(gate) * z + torch.sigmoid(-gate) * m  # 1 − σ(a) = σ(−a)
            log_det = log_det + F.logsigmoid(gate).sum(-1)
        return z, log_det


class PlanarPosterior(Posterior):
    """`steps` planar flow steps whose u, w, b the encoder gives per example."""

    gaussian = False

    def __init__(self, latent_dim: PositiveInt, steps: PositiveInt = 4) -> None:
        super().__init__(latent_dim)
        self.n_steps = int(steps)

    @property
    def context_features(self) -> int:
        return self.n_steps * (2 * self.latent_dim + 1)

    def flow(self, z0: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        d = self.latent_dim
        z = z0
        log_det = torch.zeros(z0.shape[:-1], dtype=z0.dtype, device=z0.device)
        for params in context.chunk(self.n_steps, dim=-1):
            u, w, b = params[..., :d], params[..., d : 2 * d], params[..., 2 * d]
            # û = u + (m(wᵀu) − wᵀu) w / ‖w‖², m(a) = −1 + softplus(a): wᵀû > −1, so the
            # step is invertible (Rezende & Mohamed, Appendix A.1).
            wu = (w * u).sum(-1, keepdim=True)
            u_hat = u + (F.softplus(wu) - 1.0 - wu) * w / w.square().sum(
                -1, keepdim=True
            ).clamp_min(1e-8)
            a = (z * w).sum(-1, keepdim=True) + b.unsqueeze(-1)
            h = torch.tanh(a)
            psi = (1.0 - h.square()) * w
            log_det = log_det + torch.log((1.0 + (psi * u_hat).sum(-1)).abs().clamp_min(1e-12))
            z = z + u_hat * h
        return z, log_det
