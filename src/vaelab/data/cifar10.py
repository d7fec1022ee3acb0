"""CIFAR-10: 32x32 colour images of 10 classes, 50,000 train + 10,000 test, 8-bit."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch

from vaelab.config.constraints import PositiveInt, Seed, SplitSize
from vaelab.data.array_cache import ArrayCache
from vaelab.data.batching import BatchSource, TensorSource
from vaelab.data.download import FileSpec
from vaelab.data.file_datamodule import CachedDataModule
from vaelab.data.readers import read_cifar10
from vaelab.data.splits import remaining_after, split_train_val

CIFAR10_FILES = {
    "archive": FileSpec(
        name="cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    )
}


#: Images in the published training batches (the validation split is carved from them).
N_TRAIN_ALL = 50_000


class CIFAR10DataModule(CachedDataModule):
    """CIFAR-10, 3x32x32 with 256 levels, read from the python tarball.

    Args:
      data_dir: the data root (the tarball goes to ``<data_dir>/cifar10``; one already
        in the root itself, torchvision's layout, is used in place).
      batch_size, eval_batch_size: training and evaluation batch sizes.
      val_size: validation examples carved from the 50,000 training images with `seed`.
      seed: seed of the validation carve.
      pin_memory, on_device: see `InMemoryDataModule`.
    """

    folder: ClassVar[str] = "cifar10"
    # batches.meta's label_names, in label order.
    class_names: ClassVar[tuple[str, ...]] = (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )
    files: ClassVar[dict[str, FileSpec]] = CIFAR10_FILES
    parts: ClassVar[tuple[str, ...]] = (
        "train_images",
        "train_labels",
        "test_images",
        "test_labels",
    )

    def __init__(
        self,
        data_dir: str | Path | None = None,
        batch_size: PositiveInt = 128,
        eval_batch_size: PositiveInt | None = None,
        val_size: SplitSize = 5000,
        seed: Seed = 0,
        pin_memory: bool = False,
        on_device: bool = False,
    ) -> None:
        super().__init__(data_dir, batch_size, eval_batch_size, seed, pin_memory, on_device)
        self.val_size = val_size
        self.dims = (3, 32, 32)
        self.levels = 256
        self.save_hyperparameters()

    def train_size(self) -> int:
        return remaining_after(N_TRAIN_ALL, self.val_size, "data.val_size")

    def decode(self, cache: ArrayCache) -> None:
        splits = read_cifar10(self.fetch("archive"))
        for split, (images, labels) in splits.items():
            cache.save(f"{split}_images", images)
            cache.save(f"{split}_labels", labels)

    def build_splits(self) -> dict[str, BatchSource]:
        arrays = self.load_arrays(mmap=False)
        train_all = torch.from_numpy(arrays["train_images"])
        train_idx, val_idx = split_train_val(len(train_all), self.val_size, self.seed)
        labels = torch.from_numpy(arrays["train_labels"]).long()
        self.targets = {
            "train": labels[train_idx],
            "val": labels[val_idx],
            "test": torch.from_numpy(arrays["test_labels"]).long(),
        }
        return {
            "train": TensorSource(train_all[train_idx]),
            "val": TensorSource(train_all[val_idx]),
            "test": TensorSource(torch.from_numpy(arrays["test_images"])),
        }
