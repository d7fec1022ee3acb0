"""A Gaussian mixture over the aggregate posterior (Ghosh et al. 2020, ex-post density
estimation): scikit-learn's EM with full covariances on the training posterior means,
ten components as in their experiments."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from vaelab.config.constraints import PositiveInt
from vaelab.config.schema import Seed
from vaelab.samplers.base import FittedSampler


class GaussianMixtureSampler(FittedSampler):
    """`components` full-covariance Gaussians fitted to `n_fit` training posterior means."""

    name = "gmm"

    def __init__(
        self, components: PositiveInt = 10, n_fit: PositiveInt = 10000, seed: Seed = 0
    ) -> None:
        super().__init__(n_fit, seed)
        self.components = int(components)
        self._weights = self._means = self._cholesky = torch.empty(0)

    def fit(self, latents: Tensor) -> None:
        from sklearn.mixture import GaussianMixture

        gmm = GaussianMixture(
            n_components=min(self.components, len(latents)),
            covariance_type="full",
            random_state=self.seed,
            reg_covar=1e-6,
        ).fit(latents.double().numpy())
        self._weights = torch.from_numpy(gmm.weights_).float()
        self._means = torch.from_numpy(gmm.means_).float()
        self._cholesky = torch.linalg.cholesky(torch.from_numpy(gmm.covariances_)).float()

    def sample(
        self, model: Any, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        component = torch.multinomial(self._weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self._means.shape[1], generator=generator) * temperature
        return self._means[component] + (self._cholesky[component] @ eps.unsqueeze(-1)).squeeze(-1)

    def state(self) -> dict[str, Any]:
        return {"weights": self._weights, "means": self._means, "cholesky": self._cholesky}

    def load_state(self, state: dict[str, Any]) -> None:
        self._weights, self._means, self._cholesky = (
            state["weights"],
            state["means"],
            state["cholesky"],
        )
