"""MPI3D (Gondal et al. 2019): 1,036,800 64x64 RGB images of a robot arm holding an
object, one per combination of object colour (6), shape (6), size (2), camera height
(3), background colour (3) and the arm's two axes (40 x 40).

Three variants of the same grid: `toy` (simple renders), `realistic` (detailed
renders) and `real` (photographs of the real platform). Read from the `.npz` files of
the disentanglement challenge, `images` (1036800, 64, 64, 3) uint8 in grid order (the
files carry no labels: the factors are the row's grid position), streamed in row
blocks into a memory-mapped cache (12 GB: it trains without being read into memory).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from vaelab.config.constraints import NonNegativeInt, PositiveInt, Seed
from vaelab.data.array_cache import ArrayCache
from vaelab.data.array_readers import npz_member_blocks, npz_member_info
from vaelab.data.download import FileSpec
from vaelab.data.factor_grid import FactorGridDataModule

_BASE = "https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/"
MPI3D_FILES = {
    variant: FileSpec(name=f"mpi3d_{variant}.npz", md5=md5, urls=(f"{_BASE}mpi3d_{variant}.npz",))
    for variant, md5 in (
        ("toy", "55889cb7c7dfc655d6e0277beee88868"),
        ("realistic", "59a6225b88b635365f70c91b3e52f70f"),
        ("real", "0f33f609918fb5c97996692f91129802"),
    )
}

Variant = Literal["toy", "realistic", "real"]


class MPI3DDataModule(FactorGridDataModule):
    """MPI3D, 3x64x64 8-bit, with its seven factors; `variant`: toy, realistic or real."""

    folder: ClassVar[str] = "mpi3d"
    factor_names: ClassVar[tuple[str, ...]] = (
        "object_color",
        "object_shape",
        "object_size",
        "camera_height",
        "background_color",
        "horizontal_axis",
        "vertical_axis",
    )
    factor_sizes: ClassVar[tuple[int, ...]] = (6, 6, 2, 3, 3, 40, 40)
    image_shape: ClassVar[tuple[int, int, int]] = (3, 64, 64)
    pixel_levels: ClassVar[int] = 256

    def __init__(
        self,
        variant: Variant = "toy",
        data_dir: str | Path | None = None,
        n_val: NonNegativeInt = 10000,
        n_test: NonNegativeInt = 10000,
        batch_size: PositiveInt = 64,
        eval_batch_size: PositiveInt | None = None,
        seed: Seed = 0,
        pin_memory: bool = False,
    ) -> None:
        self.variant = variant
        # this variant's file only. ignore: `files` is a ClassVar of the base (each other
        # dataset's files are fixed); here the instance shadows it, as intended
        self.files = {"npz": MPI3D_FILES[variant]}  # type: ignore[misc]
        super().__init__(data_dir, n_val, n_test, batch_size, eval_batch_size, seed, pin_memory)

    def decode(self, cache: ArrayCache) -> None:
        path = self.fetch("npz")
        shape, _ = npz_member_info(path, "images")
        self.check_grid(path, shape)
        with cache.writer("images", (shape[0], *self.image_shape), np.uint8) as out:
            for start, block in npz_member_blocks(path, "images"):
                out[start : start + len(block)] = block.transpose(0, 3, 1, 2)
