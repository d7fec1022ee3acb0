"""Autoregressive flows over latent vectors, shared by the flow prior, the IAF posterior
and the MAF latent sampler.

- `MADE` (Germain et al. 2015): a fully connected network whose output i depends only on
  inputs before i in a fixed order, through masks on its weights; an optional context
  vector (the encoder's, for IAF) enters the first hidden layer unmasked.
- `MaskedAutoregressiveFlow` (Papamakarios et al. 2017): layers u = (z − μ(z<)) · exp(−α(z<)),
  the order reversed between layers. Density evaluation is one pass per layer; sampling
  inverts one dimension at a time (D passes per layer), which for latent sizes of tens
  costs nothing beside a decoder. Its last layers start at zero, so a fresh flow is the
  identity and its density the standard normal's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_density(u: Tensor) -> Tensor:
    """log N(u; 0, I) summed over the last dimension: (..., D) -> (...)."""
    return -0.5 * (LOG_2PI + u.square()).sum(-1)


def soft_clamp(value: Tensor, bound: float = 5.0) -> Tensor:
    """`bound`·tanh(value / `bound`): the identity near 0, never past ±bound, so a log-scale
    cannot overflow exp() early in training (the gradient stays non-zero, unlike clamp)."""
    return bound * torch.tanh(value / bound)


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (out, in)."""

    mask: Tensor

    def __init__(self, n_in: int, n_out: int, mask: Tensor) -> None:
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """x (..., D) [, context (..., C)] -> `n_outputs` tensors (..., D), each of whose
    dimension i depends on x_1..x_{i-1} only (the order `order`, a permutation of 0..D-1).

    Hidden unit degrees cycle through 1..D-1 (deterministic masks, so two builds of the
    same config are the same network). The output layer starts at zero: every output is
    exactly 0 before training.
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int],
        n_outputs: int = 2,
        context: int = 0,
        order: Tensor | None = None,
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("MADE needs at least one hidden layer")
        self.dim, self.n_outputs = dim, n_outputs
        order = torch.arange(dim) if order is None else order
        degrees_in = torch.empty(dim, dtype=torch.long)
        degrees_in[order] = torch.arange(1, dim + 1)  # the position of each input in the order
        layers: list[nn.Module] = []
        previous = degrees_in
        for width in hidden:
            degrees = torch.arange(width) % max(dim - 1, 1) + 1
            layers.append(MaskedLinear(len(previous), width, (degrees[:, None] >= previous[None])))
            previous = degrees
        self.hidden = nn.ModuleList(layers)
        self.context = nn.Linear(context, hidden[0]) if context else None
        out_degrees = degrees_in.repeat(n_outputs)
        self.out = MaskedLinear(
            len(previous), dim * n_outputs, out_degrees[:, None] > previous[None]
        )
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, ...]:
        h = self.hidden[0](x)
        if self.context is not None and context is not None:
            h = h + self.context(context)
        h = F.elu(h)
        for layer in self.hidden[1:]:
            h = F.elu(layer(h))
        return tuple(self.out(h).chunk(self.n_outputs, dim=-1))


class MaskedAutoregressiveFlow(nn.Module):
    """A density over R^D: `layers` MADE layers, each u = (z − μ) · exp(−α), the order
    reversed between layers, on a standard normal base.

    Args:
        dim: D.
        layers: number of autoregressive layers.
        hidden: hidden widths of each layer's MADE.
    """

    def __init__(self, dim: int, layers: int = 4, hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        self.dim = dim
        orders = [
            torch.arange(dim) if i % 2 == 0 else torch.arange(dim).flip(0) for i in range(layers)
        ]
        self.layers = nn.ModuleList(MADE(dim, hidden, 2, order=o) for o in orders)
        for i, order in enumerate(orders):
            self.register_buffer(f"order_{i}", order, persistent=False)

    def _order(self, i: int) -> Tensor:
        order: Tensor = getattr(self, f"order_{i}")
        return order

    def to_base(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """u = f(z) and log|det ∂u/∂z| per example: (..., D) -> (..., D), (...)."""
        log_det = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for layer in self.layers:
            mu, alpha = layer(z)
            alpha = soft_clamp(alpha)
            z = (z - mu) * torch.exp(-alpha)
            log_det = log_det - alpha.sum(-1)
        return z, log_det

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) = log N(f(z)) + log|det ∂f/∂z|: (..., D) -> (...)."""
        u, log_det = self.to_base(z)
        return standard_normal_log_density(u) + log_det

    @torch.no_grad()
    def from_base(self, u: Tensor) -> Tensor:
        """z = f⁻¹(u), one dimension at a time in each layer's order: (N, D) -> (N, D)."""
        for i in reversed(range(len(self.layers))):
            layer, order = self.layers[i], self._order(i)
            z = torch.zeros_like(u)
            for d in order.tolist():
                mu, alpha = layer(z)
                z[:, d] = u[:, d] * torch.exp(soft_clamp(alpha[:, d])) + mu[:, d]
            u = z
        return u

    def sample(
        self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """`n` draws: base draws N(0, temperature² I) pushed through f⁻¹."""
        param = next(self.parameters())
        u = torch.randn(n, self.dim, generator=generator, dtype=param.dtype) * temperature
        return self.from_base(u.to(param.device))
