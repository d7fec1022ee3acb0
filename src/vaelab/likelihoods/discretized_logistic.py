"""The discretized logistic p(x|z) for 8-bit images (Salimans et al. 2017): mass on
the data's levels, so bits per dimension are a code length."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.distributions import Distribution, constraints
from typing_extensions import override

from vaelab.errors import ConfigError
from vaelab.likelihoods.base import Likelihood


class DiscretizedLogistic(Distribution):
    """A logistic distribution discretised to `n_bins` equally spaced values in [0, 1].

    As in PixelCNN++ (Salimans et al. 2017): the mass of value k/(n-1) is the logistic
    CDF over its bin, with the two end bins stretched to ±∞, so the masses sum to one
    and `-log_prob / (D ln 2)` is a true code length in bits per dimension.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "loc": constraints.real,
        "log_scale": constraints.real,
    }
    support = constraints.unit_interval
    has_rsample = False

    def __init__(self, loc: Tensor, log_scale: Tensor, n_bins: int = 256) -> None:
        # torch's Python wrapper of broadcast_tensors carries no annotations
        broadcast: Callable[..., tuple[Tensor, ...]] = torch.broadcast_tensors
        self.loc, self.log_scale = broadcast(loc, log_scale)
        self.n_bins = n_bins
        super().__init__(batch_shape=self.loc.shape, validate_args=False)

    @override
    @property
    def mean(self) -> Tensor:
        return self.loc.clamp(0.0, 1.0)

    @override
    def log_prob(self, value: Tensor) -> Tensor:
        half_bin = 0.5 / (self.n_bins - 1)
        inv_scale = torch.exp(-self.log_scale)
        centred = value - self.loc
        upper = inv_scale * (centred + half_bin)
        lower = inv_scale * (centred - half_bin)
        cdf_delta = torch.sigmoid(upper) - torch.sigmoid(lower)
        # log CDF at the lowest bin's upper edge and log (1 - CDF) at the highest's lower
        # edge, in forms that stay finite in the tails.
        log_cdf_upper = upper - nn.functional.softplus(upper)
        log_one_minus_cdf_lower = -nn.functional.softplus(lower)
        # Mid bins: log of the CDF difference; when it underflows, use the density at
        # the bin centre times the bin width instead.
        mid = inv_scale * centred
        log_pdf_mid = mid - self.log_scale - 2.0 * nn.functional.softplus(mid)
        log_mid = torch.where(
            cdf_delta > 1e-5,
            torch.log(cdf_delta.clamp_min(1e-12)),
            log_pdf_mid + math.log(2 * half_bin),
        )
        lowest = value < half_bin
        highest = value > 1.0 - half_bin
        return torch.where(
            lowest, log_cdf_upper, torch.where(highest, log_one_minus_cdf_lower, log_mid)
        )

    @override
    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            u = torch.rand(shape, device=self.loc.device).clamp(1e-5, 1 - 1e-5)
            x = self.loc + self.log_scale.exp() * (torch.log(u) - torch.log1p(-u))
            return torch.round(x.clamp(0, 1) * (self.n_bins - 1)) / (self.n_bins - 1)


class DiscretizedLogisticLikelihood(Likelihood):
    """Discretised logistic p(x|z) for quantised images (8-bit: 256 levels)."""

    name = "discretized_logistic"
    params_per_channel = 2

    def __init__(
        self,
        channels: int,
        n_bins: Annotated[int, Field(ge=2)] = 256,
        min_log_scale: float = -7.0,
    ) -> None:
        super().__init__(channels)
        self.n_bins = n_bins
        self.min_log_scale = min_log_scale

    def base(self, params: Tensor) -> Distribution:
        loc, log_scale = params.chunk(2, dim=1)
        return DiscretizedLogistic(loc, log_scale.clamp_min(self.min_log_scale), self.n_bins)

    def discrete_levels(self) -> int | None:
        return self.n_bins

    def check_data(self, levels: int | None) -> None:
        if levels != self.n_bins:
            have = "continuous values" if levels is None else f"{levels} levels per pixel"
            raise ConfigError(
                f"likelihood=discretized_logistic models {self.n_bins}-level images but "
                f"the data has {have}; use likelihood=bernoulli or likelihood=gaussian"
            )
