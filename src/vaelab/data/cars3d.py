"""Cars3D (Reed et al. 2015, "Deep Visual Analogy-Making"): renders of 183 car models
under 4 elevations and 24 azimuths: 17,568 RGB images, 128x128 resized to 64x64.

Read from the paper's `nips2015-analogy-data.tar.gz`: each `data/cars/car_*_mesh.mat`
holds `im` (128, 128, 3, 24 azimuths, 4 elevations). Cars are numbered in file-name
order; images are resized with PIL's antialiasing (Lanczos) filter, as
disentanglement_lib does, and stored in factor-grid order (elevation, azimuth, car).
disentanglement_lib labels image j of a car with elevation j mod 4 and azimuth
j div 4 although the file stores them elevation-major; here each image keeps the
elevation and azimuth the file gives it, so per-factor scores of the two differ.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from vaelab.data.array_cache import ArrayCache
from vaelab.data.array_readers import cars3d_meshes
from vaelab.data.download import FileSpec
from vaelab.data.factor_grid import FactorGridDataModule
from vaelab.errors import DataError

CARS3D_FILES = {
    "archive": FileSpec(
        name="nips2015-analogy-data.tar.gz",
        md5="4e866a7919c1beedf53964e6f7a23686",
        urls=("http://www.scottreed.info/files/nips2015-analogy-data.tar.gz",),
    )
}


class Cars3DDataModule(FactorGridDataModule):
    """Cars3D, 3x64x64 8-bit, factors elevation 4, azimuth 24, car 183."""

    folder: ClassVar[str] = "cars3d"
    files: ClassVar[dict[str, FileSpec]] = CARS3D_FILES
    factor_names: ClassVar[tuple[str, ...]] = ("elevation", "azimuth", "object")
    factor_sizes: ClassVar[tuple[int, ...]] = (4, 24, 183)
    image_shape: ClassVar[tuple[int, int, int]] = (3, 64, 64)
    pixel_levels: ClassVar[int] = 256

    def decode(self, cache: ArrayCache) -> None:
        from PIL import Image

        path = self.fetch("archive")
        elevations, azimuths, cars = self.factor_sizes
        with cache.writer("images", (self.n_examples(), *self.image_shape), np.uint8) as out:
            count = 0
            for car, (name, mesh) in enumerate(cars3d_meshes(path)):
                if car >= cars or mesh.shape[:2] != (elevations, azimuths):
                    raise DataError(
                        f"{path}: {name} does not fit Cars3D's grid of {elevations} elevations "
                        f"x {azimuths} azimuths x {cars} cars; delete it and rerun"
                    )
                for e in range(elevations):
                    for a in range(azimuths):
                        small = Image.fromarray(mesh[e, a]).resize(
                            (64, 64), Image.Resampling.LANCZOS
                        )
                        out[(e * azimuths + a) * cars + car] = np.asarray(small).transpose(2, 0, 1)
                count += 1
            if count != cars:
                raise DataError(
                    f"{path} holds {count} car meshes, not Cars3D's {cars}; it is not the "
                    "published file: delete it and rerun to fetch a fresh copy"
                )
