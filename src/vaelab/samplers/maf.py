"""A masked autoregressive flow fitted by maximum likelihood to the training posterior
means: a post-hoc density as flexible as the flow prior, learned after the VAE."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from vaelab.config.constraints import Positive, PositiveInt, Widths
from vaelab.config.schema import Seed
from vaelab.models.flows import MaskedAutoregressiveFlow
from vaelab.samplers.base import FittedSampler
from vaelab.samplers.training import fit_density


class FlowSampler(FittedSampler):
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
        super().__init__(n_fit, seed)
        self.layers, self.hidden = int(layers), [int(h) for h in hidden]
        self.steps, self.lr = int(steps), float(lr)
        self._flow: MaskedAutoregressiveFlow | None = None

    def _build(self, dim: int) -> MaskedAutoregressiveFlow:
        torch.manual_seed(self.seed)
        return MaskedAutoregressiveFlow(dim, self.layers, self.hidden)

    def fit(self, latents: Tensor) -> None:
        flow = self._build(latents.shape[1])
        fit_density(
            flow, lambda z: -flow.log_prob(z).mean(), latents, self.steps, self.lr, self.seed
        )
        self._flow = flow.eval()

    def sample(
        self, model: Any, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        assert self._flow is not None, "fit or load the sampler first"
        return self._flow.sample(n, temperature, generator)

    def state(self) -> dict[str, Any]:
        assert self._flow is not None
        return {"dim": self._flow.dim, "flow": self._flow.state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        flow = self._build(int(state["dim"]))
        flow.load_state_dict(state["flow"])
        self._flow = flow.eval()
