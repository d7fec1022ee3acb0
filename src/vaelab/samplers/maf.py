"""A masked autoregressive flow fitted by maximum likelihood to the training posterior
means: a post-hoc density as flexible as the flow prior, learned after the VAE."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from vaelab.config.constraints import Positive, PositiveInt, Widths
from vaelab.config.schema import Seed
from vaelab.models.flows import MaskedAutoregressiveFlow
from vaelab.samplers.training import NoiseSampler


class FlowSampler(NoiseSampler):
    """A MAF of `layers` layers (`hidden` widths), `steps` Adam steps of batch 256 at
    rate `lr` on `n_fit` training posterior means."""

    name = "maf"

    def __init__(
        self,
        layers: PositiveInt = 4,
        hidden: Widths = (128, 128),
        steps: PositiveInt = 3000,
        lr: Positive = 1e-3,
        n_fit: PositiveInt = 10000,
        seed: Seed = 0,
    ) -> None:
        super().__init__(steps, lr, n_fit, seed)
        self.layers, self.hidden = int(layers), [int(h) for h in hidden]

    def build(self, dim: int) -> nn.Module:
        return MaskedAutoregressiveFlow(dim, self.layers, self.hidden)

    def loss(self, network: Any, latents: Tensor) -> Tensor:
        nll: Tensor = -network.log_prob(latents).mean()
        return nll

    def draw(self, network: Any, noise: Tensor) -> Tensor:
        z: Tensor = network.from_base(noise)
        return z
