"""The base of datasets recorded as their complete factor grid: dSprites, 3dshapes, MPI3D.

Each such file holds one image per combination of its factors, in C order (the last
factor varies fastest), so the factors of row i are `numpy.unravel_index(i, sizes)`
and the image of any factor combination is one row lookup (`GridLookup`). Decoded
once into an uint8 array cache (N, C, H, W) in grid order, memory-mapped when large:
MPI3D's million images (12 GB) train without being read into memory.

Splits: the grid has no official one. Validation and test sets are carved from one
seeded permutation of the rows (as `data=shapes` does), training takes the rest; the
disentanglement metrics sample their own observations from the whole grid, as
disentanglement_lib does.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from vaelab.config.constraints import NonNegativeInt, PositiveInt, Seed
from vaelab.data.batching import BatchSource
from vaelab.data.factors import FactorSpace, GridLookup
from vaelab.data.file_datamodule import CachedDataModule
from vaelab.errors import ConfigError, DataError


class RowSource:
    """A split as rows of one stored uint8 array (N, C, H, W); values `stored / scale`.

    The array is shared by every split and by the factor lookup (a memory map of it
    costs nothing until a batch reads its rows)."""

    def __init__(self, images: Tensor, rows: Tensor, scale: float) -> None:
        self.images, self.rows, self.scale = images, rows, float(scale)

    def __len__(self) -> int:
        return self.rows.shape[0]

    def batch(self, index: Tensor) -> Tensor:
        return self.images.index_select(0, self.rows[index]).float().div_(self.scale)


class FactorGridDataModule(CachedDataModule):
    """A dataset stored as its complete factor grid (see the module docstring).

    Subclasses set the class attributes below and implement `decode`, which writes
    the `images` array (N, C, H, W) uint8 in grid order.

    Args:
      data_dir: the data root.
      n_val, n_test: examples carved for validation and test with `seed`.
      batch_size, eval_batch_size, seed, pin_memory: see `InMemoryDataModule`.
    """

    parts: ClassVar[tuple[str, ...]] = ("images",)
    factor_names: ClassVar[tuple[str, ...]]
    factor_sizes: ClassVar[tuple[int, ...]]
    #: (C, H, W) of one stored image.
    image_shape: ClassVar[tuple[int, int, int]]
    #: Values per stored pixel: 2 for a binary set stored as {0, 1}, 256 for 8-bit.
    pixel_levels: ClassVar[int]

    def __init__(
        self,
        data_dir: str | Path | None = None,
        n_val: NonNegativeInt = 10000,
        n_test: NonNegativeInt = 10000,
        batch_size: PositiveInt = 64,
        eval_batch_size: PositiveInt | None = None,
        seed: Seed = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__(data_dir, batch_size, eval_batch_size, seed, pin_memory, on_device=False)
        n = self.n_examples()
        if n - n_val - n_test < 1:
            raise ConfigError(
                f"data.n_val + data.n_test = {n_val + n_test} leaves no training images of "
                f"the {n} in {type(self).__name__}; lower them (e.g. data.n_val={n // 20})"
            )
        self.n_val, self.n_test = n_val, n_test
        self.dims = self.image_shape
        self.levels = self.pixel_levels
        self._images: Tensor | None = None

    @classmethod
    def n_examples(cls) -> int:
        return math.prod(cls.factor_sizes)

    def train_size(self) -> int:
        return self.n_examples() - self.n_val - self.n_test

    def check_grid(self, path: Path, shape: tuple[int, ...]) -> None:
        """One line if a source array of `shape` is not this grid's image array."""
        n = self.n_examples()
        if shape[0] != n:
            raise DataError(
                f"{path} holds {shape[0]} images, but {type(self).__name__}'s factor grid "
                f"{'x'.join(map(str, self.factor_sizes))} has {n}; it is not the published "
                "file: delete it and rerun to fetch a fresh copy"
            )

    def images(self) -> Tensor:
        """The stored grid (N, C, H, W) uint8, read (or memory-mapped) once."""
        if self._images is None:
            self._images = torch.from_numpy(self.load_arrays()["images"])
        return self._images

    def split_rows(self) -> dict[str, Tensor]:
        """The grid rows of each split, from one seeded permutation."""
        n = self.n_examples()
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        val, test = self.n_val, self.n_val + self.n_test
        return {"val": perm[:val], "test": perm[val:test], "train": perm[test:]}

    @property
    def pixel_scale(self) -> float:
        """Stored value of a white pixel: 1 for a binary set stored as {0, 1}, else 255."""
        return 1.0 if self.pixel_levels == 2 else 255.0

    def build_splits(self) -> dict[str, BatchSource]:
        images, scale = self.images(), self.pixel_scale
        return {name: RowSource(images, rows, scale) for name, rows in self.split_rows().items()}

    def grid_lookup(self) -> GridLookup:
        """Factor indices of the whole stored grid -> their images, as batches are."""
        images, scale = self.images(), self.pixel_scale

        def rows_to_images(rows: Tensor) -> Tensor:
            return images.index_select(0, rows).float().div_(scale)

        return GridLookup(self.factor_sizes, rows_to_images)

    def factor_space(self) -> FactorSpace:
        """The grid's factors; `observe` looks the images up in the stored grid."""
        return FactorSpace(self.factor_names, self.factor_sizes, self.grid_lookup())

    def example_factors(self, split: str) -> Tensor:
        """The factor indices (N, K) int64 of every example of `split`, in loader order."""
        rows = self.split_rows()[split].numpy()
        return torch.from_numpy(np.stack(np.unravel_index(rows, self.factor_sizes), axis=1))
