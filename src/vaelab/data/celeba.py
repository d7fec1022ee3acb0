"""CelebA aligned faces: 202,599 JPEGs (178x218) in one zip, with the official split file
and the 40 binary attributes of every face.

The faces are centre-cropped (148 pixels by default, which keeps the face and drops
most of the background) and resized to 64x64, once, into a memory-mapped cache:
at 64x64 the training split alone is 2 GB of uint8, read from the page cache on
demand rather than copied into memory.

The attributes (`Smiling`, `Male`, ...) are the labels of a conditional model
(`vaelab.data.labels`): one label per attribute, 0 absent and 1 present, decoded
into the same cache in the same row order as the images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from typing_extensions import override

from vaelab.config.constraints import PositiveInt, Seed
from vaelab.data.array_cache import ArrayCache
from vaelab.data.batching import BatchSource, TensorSource
from vaelab.data.download import FileSpec
from vaelab.data.file_datamodule import CachedDataModule
from vaelab.data.labels import LabelSpace
from vaelab.data.readers import (
    CelebAZip,
    ImageSpec,
    read_celeba_attributes,
    read_celeba_partition,
)

# The official copies sit on Google Drive, which answers large downloads with a
# confirmation page instead of the file; the Université Laval mirror serves them
# plainly, so it is tried first.
_GRAAL = "https://graal.ift.ulaval.ca/public/celeba/"
_GDRIVE = "https://drive.google.com/uc?export=download&id="

CELEBA_FILES = {
    "images": FileSpec(
        name="img_align_celeba.zip",
        md5="00d2c5bc6d35e252742224ab0c1e8fcb",
        urls=(_GRAAL + "img_align_celeba.zip", _GDRIVE + "0B7EVK8r0v71pZjFTYXZWM3FlRnM"),
    ),
    "partition": FileSpec(
        name="list_eval_partition.txt",
        md5="d32c9cbf5e040fd4025c592c306e6668",
        urls=(_GRAAL + "list_eval_partition.txt", _GDRIVE + "0B7EVK8r0v71pY0NSMzRuSXJEVkk"),
    ),
    "attributes": FileSpec(
        name="list_attr_celeba.txt",
        md5="75e246fa4810816ffd6ee81facbd244c",
        urls=(_GRAAL + "list_attr_celeba.txt", _GDRIVE + "0B7EVK8r0v71pblRyaVFSWGxPY0U"),
    ),
}

SPLITS = ("train", "val", "test")

#: CelebA's 40 attributes in the order of ``list_attr_celeba.txt``'s header, which the
#: reader checks: known here, the labels of a conditional model are known (and a
#: `conditional=[Smiling]` checked) before any file is read.
ATTRIBUTE_NAMES: tuple[str, ...] = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)


class CelebADataModule(CachedDataModule):
    """CelebA, 3 x image_size x image_size with 256 levels, in the official splits.

    CelebA publishes its own validation split (19,867 images), so none is carved.
    Its labels are the 40 binary attributes of `ATTRIBUTE_NAMES` (`label_space`).

    Args:
      data_dir: the data root (files go to ``<data_dir>/celeba``).
      batch_size, eval_batch_size: training and evaluation batch sizes.
      image_size: side of the square images the model sees.
      crop: side of the centred square cut from each 178x218 face before resizing;
        None takes the largest square (178).
      seed: seed of the epoch shuffles.
      pin_memory, on_device: see `InMemoryDataModule` (on_device needs GPU memory
        for the whole split: 2 GB at 64x64).
    """

    folder: ClassVar[str] = "celeba"
    files: ClassVar[dict[str, FileSpec]] = CELEBA_FILES
    parts: ClassVar[tuple[str, ...]] = tuple(
        f"{s}_{kind}" for s in SPLITS for kind in ("images", "attributes")
    )

    def __init__(
        self,
        data_dir: str | Path | None = None,
        batch_size: PositiveInt = 128,
        eval_batch_size: PositiveInt | None = None,
        image_size: PositiveInt = 64,
        crop: PositiveInt | None = 148,
        seed: Seed = 0,
        pin_memory: bool = False,
        on_device: bool = False,
    ) -> None:
        self.image_spec = ImageSpec(size=image_size, crop=crop, channels=3)
        super().__init__(data_dir, batch_size, eval_batch_size, seed, pin_memory, on_device)
        self.dims = (3, image_size, image_size)
        self.levels = 256
        #: every example's attributes (N, 40) uint8, by split (`build_splits`)
        self.attributes: dict[str, Tensor] = {}
        self.save_hyperparameters()

    def preprocessing(self) -> dict[str, Any]:
        return {"image_size": self.image_spec.size, "crop": self.image_spec.crop}

    def decode(self, cache: ArrayCache) -> None:
        names = read_celeba_partition(self.fetch("partition"))
        # The attributes first: a bad attribute file stops in seconds, not after the
        # minutes the images take.
        attributes = read_celeba_attributes(self.fetch("attributes"), ATTRIBUTE_NAMES)
        for split in SPLITS:
            cache.save(f"{split}_attributes", attributes.select(names[split]))
        with CelebAZip(self.fetch("images")) as archive:
            for split in SPLITS:
                shape = (len(names[split]), *self.dims)
                with cache.writer(f"{split}_images", shape, np.uint8) as out:
                    archive.decode_into(out, names[split], self.image_spec)

    def build_splits(self) -> dict[str, BatchSource]:
        arrays = self.load_arrays()  # large splits come back memory-mapped
        self.attributes = {s: torch.from_numpy(arrays[f"{s}_attributes"]) for s in SPLITS}
        return {s: TensorSource(torch.from_numpy(arrays[f"{s}_images"])) for s in SPLITS}

    @override
    def label_space(self) -> LabelSpace:
        """The 40 attributes, 2 levels each (0 absent, 1 present), known without the data.

        The levels have no names of their own: a level reads as `Smiling=1`, which
        says more than a "yes" would without its attribute.
        """
        return LabelSpace(ATTRIBUTE_NAMES, (2,) * len(ATTRIBUTE_NAMES))

    @override
    def split_labels(self, split: str) -> Tensor:
        """Every example's attributes in `split`, int64 (N, 40), rows as its images."""
        self.setup()
        return self.attributes[split].long()
