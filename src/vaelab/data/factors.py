"""The one factor API of every data module with known factors of variation.

A data module with ground-truth factors has a `factor_space()` method that returns a
`FactorSpace`: the factors' names and sizes (levels), and `observe`, which turns
factor indices into observations: a renderer for a procedural set (`shapes`), an
index lookup into the stored grid for a recorded one (dSprites, 3dshapes, MPI3D,
smallNORB, Cars3D). It also has `example_factors(split)`: the factor indices of every
example of a split, row i for example i in the order the unshuffled loaders serve.

Metrics know only this API (`vaelab.metrics.protocol`), never a dataset by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class FactorSpace:
    """The ground truth behind a dataset.

    Attributes:
        names: one name per factor, in column order.
        sizes: levels per factor; factor indices run over 0..size-1.
        observe: factor indices (n, K) int64 -> observations (n, C, H, W) float in
            [0, 1], as the data module's batches are.
    """

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    observe: Callable[[Tensor], Tensor]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.sizes) or not self.sizes:
            raise ValueError(f"factor names {self.names} and sizes {self.sizes} must pair up")

    @property
    def n_factors(self) -> int:
        return len(self.sizes)


@runtime_checkable
class HasFactors(Protocol):
    """What a data module with known factors provides (see the module docstring)."""

    def factor_space(self) -> FactorSpace: ...

    def example_factors(self, split: str) -> Tensor: ...


def factor_space_of(datamodule: Any) -> FactorSpace | None:
    """The ground truth of `datamodule`, or None for data without known factors."""
    return datamodule.factor_space() if isinstance(datamodule, HasFactors) else None


class GridLookup:
    """`observe` for a dataset stored as its complete factor grid in C order (the last
    factor varying fastest), the layout of dSprites, 3dshapes and MPI3D: the example
    of factors (f_1, ..., f_K) is row Σ_k f_k · stride_k of the stored images."""

    def __init__(self, sizes: Sequence[int], examples: Callable[[Tensor], Tensor]) -> None:
        self.sizes = torch.tensor(list(sizes), dtype=torch.long)
        strides = np.cumprod([1, *list(sizes)[::-1]])[:-1][::-1].copy()
        self.strides = torch.from_numpy(strides).long()
        self.examples = examples  # flat rows (n,) -> observations

    def rows(self, factors: Tensor) -> Tensor:
        """The stored rows (n,) of factor indices (n, K), checked against the grid."""
        factors = torch.as_tensor(factors).long()
        if factors.dim() != 2 or factors.shape[1] != len(self.sizes):
            raise ValueError(
                f"expected factor indices (n, {len(self.sizes)}), got {tuple(factors.shape)}"
            )
        if factors.numel() and ((factors < 0) | (factors >= self.sizes)).any():
            raise ValueError(f"factor indices must lie in [0, sizes) = {self.sizes.tolist()}")
        return factors @ self.strides

    def __call__(self, factors: Tensor) -> Tensor:
        return self.examples(self.rows(factors))
