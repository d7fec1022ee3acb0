"""Fully connected encoder and decoder over flattened images."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from torch import Tensor, nn
from typing_extensions import override

from vaelab.config.constraints import Fraction, PositiveInt, Widths
from vaelab.models.backbones._common import make_activation
from vaelab.models.backbones.sparse_input import SparseInputLinear


def _stack(sizes: Sequence[int], act: str) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(sizes):
        layers += [nn.Linear(n_in, n_out), make_activation(act)]
    return layers


class MLPEncoder(nn.Module):
    """(B, C, H, W) -> (B, hidden[-1]) through Linear + activation layers."""

    def __init__(
        self,
        in_shape: Sequence[int],
        hidden: Widths = (512, 256),
        activation: str = "SiLU",
        sparse_below: Fraction = 0.08,
    ) -> None:
        super().__init__()
        # The first layer skips the zeros of sparse images (binary sprites are a few
        # per cent ink); on other batches it is the dense product (sparse_input.py).
        first = SparseInputLinear(math.prod(in_shape), hidden[0], max_density=sparse_below)
        self.net = nn.Sequential(
            nn.Flatten(), first, make_activation(activation), *_stack(hidden, activation)
        )
        self.out_features = int(hidden[-1])

    @override
    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x)
        return out


class MLPDecoder(nn.Module):
    """(B, latent_dim) -> (B, *out_shape); the last layer is linear (raw parameters)."""

    def __init__(
        self,
        latent_dim: int,
        out_shape: Sequence[int],
        hidden: Sequence[PositiveInt] = (256, 512),
        activation: str = "SiLU",
    ) -> None:
        super().__init__()
        self.out_shape = tuple(int(s) for s in out_shape)
        self.net = nn.Sequential(
            *_stack([latent_dim, *hidden], activation),
            nn.Linear(hidden[-1] if hidden else latent_dim, math.prod(self.out_shape)),
            nn.Unflatten(1, self.out_shape),
        )

    @override
    def forward(self, z: Tensor) -> Tensor:
        out: Tensor = self.net(z)
        return out
