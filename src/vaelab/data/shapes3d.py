"""3dshapes (Burgess & Kim 2018): 480,000 64x64 RGB renders of an object in a room,
one per combination of floor hue, wall hue, object hue (10 each), scale (8), shape (4)
and orientation (15).

Read from DeepMind's `3dshapes.h5` through h5py in row blocks (the file is 5.6 GB
decompressed, never loaded whole): `images` (480000, 64, 64, 3) uint8 and `labels`
(480000, 6) float64 factor values, which the reader checks are in factor-grid order.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from vaelab.data.array_cache import ArrayCache
from vaelab.data.array_readers import h5_dataset_blocks, h5_dataset_info
from vaelab.data.download import FileSpec
from vaelab.data.factor_grid import FactorGridDataModule
from vaelab.errors import DataError

SHAPES3D_FILES = {
    "h5": FileSpec(
        name="3dshapes.h5",
        md5="099a2078d58cec4daad0702c55d06868",
        urls=("https://storage.googleapis.com/3d-shapes/3dshapes.h5",),
    )
}


class Shapes3DDataModule(FactorGridDataModule):
    """3dshapes, 3x64x64 8-bit, with its six factors (see the module docstring)."""

    folder: ClassVar[str] = "3dshapes"
    files: ClassVar[dict[str, FileSpec]] = SHAPES3D_FILES
    factor_names: ClassVar[tuple[str, ...]] = (
        "floor_hue",
        "wall_hue",
        "object_hue",
        "scale",
        "shape",
        "orientation",
    )
    factor_sizes: ClassVar[tuple[int, ...]] = (10, 10, 10, 8, 4, 15)
    image_shape: ClassVar[tuple[int, int, int]] = (3, 64, 64)
    pixel_levels: ClassVar[int] = 256

    def decode(self, cache: ArrayCache) -> None:
        path = self.fetch("h5")
        shape, _ = h5_dataset_info(path, "images")
        self.check_grid(path, shape)
        labels = np.concatenate([block for _, block in h5_dataset_blocks(path, "labels")])
        # Factor values to level indices, column by column, then the grid-order check.
        levels = np.stack([np.unique(c, return_inverse=True)[1] for c in labels.T], axis=1)
        grid = np.stack(np.unravel_index(np.arange(shape[0]), self.factor_sizes), axis=1)
        if levels.shape != grid.shape or not np.array_equal(levels, grid):
            raise DataError(
                f"{path}: labels are not 3dshapes' factor grid in order; it is not the "
                "published file: delete it and rerun to fetch a fresh copy"
            )
        with cache.writer("images", (shape[0], *self.image_shape), np.uint8) as out:
            for start, block in h5_dataset_blocks(path, "images"):
                out[start : start + len(block)] = block.transpose(0, 3, 1, 2)
