"""Gaussian p(x|z) for continuous data: a mean per pixel, σ learnt or fixed."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Normal

from vaelab.config.constraints import Positive
from vaelab.likelihoods.base import Likelihood


class GaussianLikelihood(Likelihood):
    """Normal p(x|z) with mean from the decoder and a fixed or learned σ.

    `sigma`: the fixed σ, or the initial σ when learned. `learn_sigma`: 'none',
    'global' (one σ for every pixel) or 'channel' (one σ per channel). σ is learned
    through its logarithm so that it stays positive.
    """

    name = "gaussian"

    def __init__(
        self,
        channels: int,
        sigma: Positive = 0.1,
        learn_sigma: Literal["none", "global", "channel"] = "none",
    ) -> None:
        super().__init__(channels)
        shapes = {"none": None, "global": (1, 1, 1), "channel": (channels, 1, 1)}
        self.learn_sigma = learn_sigma
        log_sigma = torch.full(shapes[learn_sigma] or (), math.log(sigma))
        if learn_sigma == "none":
            self.register_buffer("log_sigma", log_sigma)
        else:
            self.log_sigma = nn.Parameter(log_sigma)

    def base(self, params: Tensor) -> Distribution:
        scale = self.log_sigma.exp().expand_as(params)
        return Normal(params, scale, validate_args=False)
