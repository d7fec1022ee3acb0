"""The base of every likelihood: decoder output (B, C * params_per_channel, H, W) ->
p(x|z), one event per image."""

from __future__ import annotations

import abc

from torch import Tensor, nn
from torch.distributions import Distribution, Independent
from typing_extensions import override


class Likelihood(nn.Module, abc.ABC):
    """Base: maps decoder output (B, C * params_per_channel, H, W) to p(x|z)."""

    params_per_channel: int = 1
    #: Short name used in messages (matches the config option).
    name: str = "likelihood"

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    @override
    def forward(self, params: Tensor) -> Distribution:
        return Independent(self.base(params), 3)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """log p(x|z) per example, shape (B,): `self(params).log_prob(x)`, which a
        subclass may compute without building distribution objects (the training step
        of a small model pays for every Python-level object it makes)."""
        distribution: Distribution = self(params)
        return distribution.log_prob(x)

    @abc.abstractmethod
    def base(self, params: Tensor) -> Distribution:
        """The per-pixel distribution; `forward` makes the image one event."""

    def check_data(self, levels: int | None) -> None:
        """Raise `ConfigError` if this likelihood cannot model data with `levels` values."""

    def discrete_levels(self) -> int | None:
        """Number of values per pixel it puts mass on, or None for a density.

        Bits per dimension are only an honest number (a code length) for a discrete
        likelihood; evaluation reports them when this is not None.
        """
        return None
