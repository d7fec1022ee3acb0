"""Samplers that are a small network fitted to the latents (the MAF, the second-stage VAE):
the plain loop that fits one, and what they share (build, fit, save, restore, draw).

The loop draws minibatches of 256 with a seeded generator and takes a fixed number of
Adam steps: the latents are a few thousand vectors of tens of numbers, so there is no
Trainer and no checkpoint; the fitted network is saved whole by `vaelab.samplers.store`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from vaelab.samplers.base import FittedSampler


def fit_density(
    module: nn.Module,
    loss: Callable[[Tensor], Tensor],
    data: Tensor,
    steps: int,
    lr: float,
    seed: int,
    batch_size: int = 256,
    every_100: Callable[[], None] | None = None,
) -> list[float]:
    """Minimise `loss(batch)` over minibatches of `data` for `steps` Adam steps; return the
    loss of every 100th step (for the log). `every_100` is called after every 100th step
    and the last (a held-out check)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    module.train()
    history = []
    for step in range(steps):
        index = torch.randint(len(data), (min(batch_size, len(data)),), generator=generator)
        value = loss(data[index])
        optimizer.zero_grad(set_to_none=True)
        value.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        if step % 100 == 0 or step == steps - 1:
            history.append(float(value.detach()))
            if every_100 is not None:
                every_100()
    module.eval()
    return history


class NetworkSampler(FittedSampler):
    """A fitted sampler that is one network over latents of size D: `build` makes it
    (seeded, so a restored one is built as the fitted one was), `loss` is what fitting
    minimises. `steps` Adam steps at rate `lr`. How it samples is the subclass's: a
    transform of noise (`NoiseSampler`), or codes drawn one by one (the code prior)."""

    def __init__(self, steps: int, lr: float, n_fit: int, seed: int) -> None:
        super().__init__(n_fit, seed)
        self.steps, self.lr = int(steps), float(lr)
        self._network: nn.Module | None = None
        self._dim = 0

    @abc.abstractmethod
    def build(self, dim: int) -> nn.Module:
        """A fresh network for latents of size `dim`."""

    @abc.abstractmethod
    def loss(self, network: Any, latents: Tensor) -> Tensor:
        """The loss a minibatch of latents gives the network."""

    def _built(self, dim: int) -> nn.Module:
        torch.manual_seed(self.seed)
        self._dim = dim
        return self.build(dim)

    def fit(self, latents: Tensor) -> None:
        network = self._built(latents.shape[1])
        fit_density(
            network, lambda z: self.loss(network, z), latents, self.steps, self.lr, self.seed
        )
        self._network = network.eval()

    def ready(self) -> Any:
        """The fitted (or restored) network."""
        if self._network is None:
            raise RuntimeError(f"the {self.name} sampler is neither fitted nor loaded")
        return self._network

    def state(self) -> dict[str, Any]:
        return {"dim": self._dim, "network": self.ready().state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        network = self._built(int(state["dim"]))
        network.load_state_dict(state["network"])
        self._network = network.eval()


class NoiseSampler(NetworkSampler):
    """A network sampler that draws by transforming standard normal noise (the MAF, the
    second-stage VAE): `draw` turns the noise, scaled by the temperature, into latents."""

    @abc.abstractmethod
    def draw(self, network: Any, noise: Tensor) -> Tensor:
        """Latents (n, D) from standard normal noise (n, D), already scaled."""

    @torch.no_grad()
    def sample(
        self, model: Any, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        network = self.ready()
        noise = torch.randn(n, self._dim, generator=generator) * temperature
        return self.draw(network, noise)
