"""dSprites (Matthey et al. 2017): 737,280 binary 64x64 images of a square, an ellipse
or a heart at 6 scales, 40 orientations and 32 x 32 positions, one per combination.

Read from DeepMind's `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`: its `imgs`
(737280, 64, 64) uint8 in {0, 1} and `latents_classes` (737280, 6), whose first column
(colour) has one level and is dropped, as disentanglement_lib does. The reader checks
that the rows are in factor-grid order and never opens the pickled `metadata` member.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from vaelab.data.array_cache import ArrayCache
from vaelab.data.array_readers import npz_member_blocks, npz_member_info, read_npz_member
from vaelab.data.download import FileSpec
from vaelab.data.factor_grid import FactorGridDataModule
from vaelab.errors import DataError

_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
DSPRITES_FILES = {
    "npz": FileSpec(
        name=_NAME,
        # ../shared/DATA.md records no checksum for the npz; this md5 is the one every
        # independent loader of it publishes (disent, pythae-style loaders, torchdata).
        md5="7da33b31b13a06f4b04a70402ce90c2e",
        urls=(
            f"https://raw.githubusercontent.com/deepmind/dsprites-dataset/master/{_NAME}",
            f"https://raw.githubusercontent.com/google-deepmind/dsprites-dataset/master/{_NAME}",
            f"https://github.com/deepmind/dsprites-dataset/raw/master/{_NAME}",
        ),
    )
}


class DSpritesDataModule(FactorGridDataModule):
    """dSprites, 1x64x64 binary, with its five factors (see the module docstring)."""

    folder: ClassVar[str] = "dsprites"
    files: ClassVar[dict[str, FileSpec]] = DSPRITES_FILES
    factor_names: ClassVar[tuple[str, ...]] = ("shape", "scale", "orientation", "pos_x", "pos_y")
    factor_sizes: ClassVar[tuple[int, ...]] = (3, 6, 40, 32, 32)
    image_shape: ClassVar[tuple[int, int, int]] = (1, 64, 64)
    pixel_levels: ClassVar[int] = 2

    def decode(self, cache: ArrayCache) -> None:
        path = self.fetch("npz")
        shape, _ = npz_member_info(path, "imgs")
        self.check_grid(path, shape)
        classes = read_npz_member(path, "latents_classes")
        grid = np.stack(np.unravel_index(np.arange(len(classes)), self.factor_sizes), axis=1)
        if classes.shape != (len(grid), 6) or not np.array_equal(classes[:, 1:], grid):
            raise DataError(
                f"{path}: latents_classes are not dSprites' factor grid in order; it is "
                "not the published file: delete it and rerun to fetch a fresh copy"
            )
        with cache.writer("images", (shape[0], *self.image_shape), np.uint8) as out:
            for start, block in npz_member_blocks(path, "imgs"):
                out[start : start + len(block), 0] = block
