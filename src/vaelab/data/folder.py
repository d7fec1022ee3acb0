"""Any folder of PNG/JPEG images as a dataset: centre-cropped, resized, decoded once.

The cache is keyed by the folder's path and a fingerprint of its files (names,
sizes, modification times) together with the size, crop and channels, so adding an
image or changing the size builds a new cache on the next run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from vaelab.config.constraints import PositiveInt, Seed, SplitSize
from vaelab.data.array_cache import ArrayCache
from vaelab.data.batching import BatchSource, TensorSource
from vaelab.data.file_datamodule import CachedDataModule
from vaelab.data.readers import ImageSpec, folder_fingerprint, list_image_files, read_image_files
from vaelab.data.splits import carve_splits


class ImageFolderDataModule(CachedDataModule):
    """Images below `path` (recursively), as channels x image_size x image_size, 256 levels.

    Args:
      path: the folder of images.
      data_dir: the data root; the decoded cache goes to ``<data_dir>/folder``.
      image_size: side of the square images the model sees.
      crop: side of the centred square cut out before resizing; None takes the
        largest centred square of each image.
      channels: 3 (RGB) or 1 (grey); images of other modes are converted.
      val_size, test_size: counts or fractions of all images; the test split is carved
        with a fixed seed, the validation split with `seed`.
      batch_size, eval_batch_size, seed, pin_memory, on_device: see `InMemoryDataModule`.
    """

    folder: ClassVar[str] = "folder"
    parts: ClassVar[tuple[str, ...]] = ("images",)

    def __init__(
        self,
        path: Annotated[str, Field(min_length=1, examples=["/my/images"])],
        data_dir: str | Path | None = None,
        batch_size: PositiveInt = 128,
        eval_batch_size: PositiveInt | None = None,
        image_size: PositiveInt = 64,
        crop: PositiveInt | None = None,
        channels: Literal[1, 3] = 3,
        val_size: SplitSize = 0.1,
        test_size: SplitSize = 0.1,
        seed: Seed = 0,
        pin_memory: bool = False,
        on_device: bool = False,
    ) -> None:
        self.image_spec = ImageSpec(size=image_size, crop=crop, channels=channels)
        super().__init__(data_dir, batch_size, eval_batch_size, seed, pin_memory, on_device)
        self.path = Path(path).expanduser().resolve()
        self.val_size = val_size
        self.test_size = test_size
        self.dims = (channels, image_size, image_size)
        self.levels = 256
        self._files: list[Path] | None = None
        self._fingerprint: str | None = None
        self.save_hyperparameters()

    def image_files(self) -> list[Path]:
        """The images below `path`, listed once per DataModule."""
        if self._files is None:
            self._files = list_image_files(self.path)
        return self._files

    def source_identity(self) -> dict[str, Any]:
        # Computed once: it stats every file, and the cache is looked up more than once.
        if self._fingerprint is None:
            self._fingerprint = folder_fingerprint(self.path, self.image_files())
        return {"path": str(self.path), "files": self._fingerprint}

    def preprocessing(self) -> dict[str, Any]:
        spec = self.image_spec
        return {"image_size": spec.size, "crop": spec.crop, "channels": spec.channels}

    def decode(self, cache: ArrayCache) -> None:
        files = self.image_files()
        with cache.writer("images", (len(files), *self.dims), np.uint8) as out:
            read_image_files(files, self.image_spec, out=out)

    def build_splits(self) -> dict[str, BatchSource]:
        images = torch.from_numpy(self.load_arrays()["images"])
        index = carve_splits(len(images), self.val_size, self.test_size, self.seed)
        return {split: TensorSource(images[i]) for split, i in index.items()}
