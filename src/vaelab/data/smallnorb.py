"""smallNORB (LeCun et al. 2004): photographs of 50 toys, 5 categories x 10 instances,
under 9 elevations, 18 azimuths and 6 lightings: 48,600 combinations, each photographed
by two cameras. The official split: 24,300 training (instances 4, 6, 7, 8, 9) and
24,300 test (instances 0, 1, 2, 3, 5).

Read from NYU's gzipped binary matrices (`-dat`, `-cat`, `-info` of each split); the
left camera's 96x96 image is resized to 64x64 with PIL's antialiasing (Lanczos)
filter, as disentanglement_lib does, and stored in factor-grid order.

Factors, as disentanglement_lib has them: category (5), elevation (9), azimuth (18,
the files' 0, 2, ..., 34 halved) and lighting (6). The instance is not a factor the
metrics see: `observe` draws it uniformly for each observation (from a generator of
its own, so evaluation stays reproducible), and the files' fifth factor is kept in
the grid so that every observation is a real photograph.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from vaelab.config.constraints import NonNegativeInt, PositiveInt, Seed
from vaelab.data.array_cache import ArrayCache
from vaelab.data.array_readers import read_norb_matrix
from vaelab.data.download import FileSpec
from vaelab.data.factor_grid import FactorGridDataModule
from vaelab.data.factors import FactorSpace
from vaelab.errors import DataError

_BASE = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
_CHUNKS = {"train": "5x46789x9x18x6x2x96x96-training", "test": "5x01235x9x18x6x2x96x96-testing"}
_MD5 = {
    # ../shared/DATA.md records the training files and the test images; the test
    # labels' checksums are those every independent loader of the files publishes.
    ("train", "dat"): "66054832f9accfe74a0f4c36a75bc0a2",
    ("train", "cat"): "23c8b86101fbf0904a000b43d3ed2fd9",
    ("train", "info"): "51dee1210a742582ff607dfd94e332e3",
    ("test", "dat"): "e4ad715691ed5a3a5f138751a4ceb071",
    ("test", "cat"): "5aa791cd7e6016cf957ce9bdb93b8603",
    ("test", "info"): "a9454f3864d7fd4bb3ea7fc3eb84924e",
}
SMALLNORB_FILES = {
    f"{split}_{part}": FileSpec(
        name=f"smallnorb-{chunk}-{part}.mat.gz",
        md5=_MD5[split, part],
        urls=(f"{_BASE}smallnorb-{chunk}-{part}.mat.gz",),
    )
    for split, chunk in _CHUNKS.items()
    for part in ("dat", "cat", "info")
}


class SmallNORBDataModule(FactorGridDataModule):
    """smallNORB, 1x64x64 8-bit, official train/test split (see the module docstring).

    Args:
      n_val: validation examples carved from the official training split with `seed`.
    """

    folder: ClassVar[str] = "smallnorb"
    files: ClassVar[dict[str, FileSpec]] = SMALLNORB_FILES
    #: The stored grid: category, instance, elevation, azimuth, lighting.
    grid_names: ClassVar[tuple[str, ...]] = (
        "category",
        "instance",
        "elevation",
        "azimuth",
        "lighting",
    )
    factor_names: ClassVar[tuple[str, ...]] = grid_names
    factor_sizes: ClassVar[tuple[int, ...]] = (5, 10, 9, 18, 6)
    #: The instances of the official test split.
    test_instances: ClassVar[tuple[int, ...]] = (0, 1, 2, 3, 5)
    image_shape: ClassVar[tuple[int, int, int]] = (1, 64, 64)
    pixel_levels: ClassVar[int] = 256
    #: The grid column the metrics do not see (drawn at random per observation).
    nuisance: ClassVar[int] = 1

    def __init__(
        self,
        data_dir: str | Path | None = None,
        n_val: NonNegativeInt = 2430,
        batch_size: PositiveInt = 64,
        eval_batch_size: PositiveInt | None = None,
        seed: Seed = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__(data_dir, n_val, 0, batch_size, eval_batch_size, seed, pin_memory)

    def _test_mask(self) -> np.ndarray:
        rows = np.arange(self.n_examples())
        instance = np.unravel_index(rows, self.factor_sizes)[self.nuisance]
        return np.isin(instance, self.test_instances)

    def train_size(self) -> int:
        return int((~self._test_mask()).sum()) - self.n_val

    def split_rows(self) -> dict[str, Tensor]:
        """Official test rows; validation carved from the official training rows."""
        mask = self._test_mask()
        train_all = torch.from_numpy(np.flatnonzero(~mask))
        perm = torch.randperm(len(train_all), generator=torch.Generator().manual_seed(self.seed))
        shuffled = train_all[perm]
        return {
            "val": shuffled[: self.n_val],
            "test": torch.from_numpy(np.flatnonzero(mask)),
            "train": shuffled[self.n_val :],
        }

    def factor_space(self) -> FactorSpace:
        """Category, elevation, azimuth, lighting; the instance drawn per observation."""
        lookup = self.grid_lookup()
        generator = torch.Generator().manual_seed(self.seed)
        k = self.nuisance
        n_instances = self.factor_sizes[k]

        def observe(factors: Tensor) -> Tensor:
            factors = torch.as_tensor(factors).long()
            instance = torch.randint(n_instances, (len(factors), 1), generator=generator)
            return lookup(torch.cat([factors[:, :k], instance, factors[:, k:]], dim=1))

        names = tuple(n for i, n in enumerate(self.grid_names) if i != k)
        sizes = tuple(s for i, s in enumerate(self.factor_sizes) if i != k)
        return FactorSpace(names, sizes, observe)

    def example_factors(self, split: str) -> Tensor:
        """The four factors (N, 4) of every example of `split` (the instance left out)."""
        grid = super().example_factors(split)
        return torch.cat([grid[:, : self.nuisance], grid[:, self.nuisance + 1 :]], dim=1)

    def decode(self, cache: ArrayCache) -> None:
        from PIL import Image

        n = self.n_examples()
        with cache.writer("images", (n, *self.image_shape), np.uint8) as out:
            filled = np.zeros(n, dtype=bool)
            for split in ("train", "test"):
                paths = {part: self.fetch(f"{split}_{part}") for part in ("dat", "cat", "info")}
                images = read_norb_matrix(paths["dat"])
                category = read_norb_matrix(paths["cat"])
                info = read_norb_matrix(paths["info"])
                if images.ndim != 4 or images.shape[1:] != (2, 96, 96):
                    raise DataError(f"{paths['dat']} holds {images.shape}, not (N, 2, 96, 96)")
                if category.shape != (len(images),) or info.shape != (len(images), 4):
                    raise DataError(
                        f"{paths['cat']} and {paths['info']} do not describe the "
                        f"{len(images)} images of {paths['dat']}; delete them and rerun"
                    )
                instance, elevation, azimuth, lighting = info.T.astype(np.int64)
                factors = (category.astype(np.int64), instance, elevation, azimuth // 2, lighting)
                try:
                    rows = np.ravel_multi_index(factors, self.factor_sizes)
                except ValueError as exc:
                    problem = f"{paths['info']} holds factors outside smallNORB's grid"
                    raise DataError(problem) from exc
                for row, image in zip(rows, images[:, 0], strict=True):  # the left camera
                    small = Image.fromarray(image).resize((64, 64), Image.Resampling.LANCZOS)
                    out[row, 0] = np.asarray(small)
                filled[rows] = True
            if not filled.all():
                raise DataError(
                    f"the smallNORB files in {self.dataset_dir} hold {int(filled.sum())} of the "
                    f"{n} factor combinations; delete them and rerun to fetch fresh copies"
                )
