"""MNIST and Fashion-MNIST: 28x28 grey images in gzipped IDX files, 60,000 train + 10,000 test.

Binarisation, the usual treatment for a Bernoulli likelihood, is a choice:

- ``none``: grey levels as they are (256 levels).
- ``static``: every image sampled to {0, 1} once at setup from the `seed`
  (pixel on with probability value/255), the same for the whole run.
- ``dynamic``: training batches resampled every time they are drawn, which acts as
  a regulariser; validation and test are binarised once from the `seed`, so that
  their scores are comparable between epochs and runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Literal

import torch
from torch import Tensor

from vaelab.config.constraints import PositiveInt, Seed, SplitSize
from vaelab.data.array_cache import ArrayCache
from vaelab.data.batching import BatchSource, TensorSource
from vaelab.data.download import FileSpec
from vaelab.data.file_datamodule import CachedDataModule
from vaelab.data.readers import read_idx_pair
from vaelab.data.splits import remaining_after, split_train_val

Binarize = Literal["none", "static", "dynamic"]
BINARIZE_CHOICES: tuple[str, ...] = ("none", "static", "dynamic")

#: Images in the published training files (the validation split is carved from them).
N_TRAIN_ALL = 60_000

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
FASHION_MNIST_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)

_IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def _idx_specs(
    mirrors: tuple[str, ...],
    md5: dict[str, str],
    also_accept: dict[str, tuple[str, ...]] | None = None,
    gunzip_sha256: dict[str, str] | None = None,
) -> dict[str, FileSpec]:
    return {
        role: FileSpec(
            name=name,
            md5=md5[role],
            urls=tuple(m + name for m in mirrors),
            also_accept=(also_accept or {}).get(role, ()),
            gunzip_sha256=(gunzip_sha256 or {}).get(role),
        )
        for role, name in _IDX_NAMES.items()
    }


MNIST_FILES = _idx_specs(
    MNIST_MIRRORS,
    md5={
        "train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
        "test_images": "9fb629c4189551a2d022fa330f9573f3",
        "test_labels": "ec29112dd5afa0611ce80d1b7f02629c",
    },
)

# Debian's dataset-fashion-mnist recompressed the .gz files: other md5s, same bytes
# inside. Both the package's md5s and the sha256 of the decompressed bytes are known.
FASHION_MNIST_FILES = _idx_specs(
    FASHION_MNIST_MIRRORS,
    md5={
        "train_images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train_labels": "25c81989df183df01b3e8a0aad5dffbe",
        "test_images": "bef4ecab320f06d8554ea6380940ec79",
        "test_labels": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    also_accept={
        "train_images": ("md5:cf8536b0aa1a6ac5fa3f23001093305c",),
        "train_labels": ("md5:10bea18fdb374794d4bb42e356e600c9",),
        "test_images": ("md5:f78720b4224f21cce2f2ccf2d7a94c9a",),
        "test_labels": ("md5:0d30e22e447f3c33dab9ed536400ac01",),
    },
    gunzip_sha256={
        "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
)


def binarize_static(images: Tensor, generator: torch.Generator, chunk: int = 8192) -> Tensor:
    """Sample uint8 images (values 0..255) to {0, 1}: on with probability value/255.

    Done in chunks so that 60,000 images need a few MB of float scratch, not 190 MB.
    """
    out = torch.empty_like(images)
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk]
        out[start : start + chunk] = torch.rand(x.shape, generator=generator) * 255 < x
    return out


def _sample_bernoulli(batch: Tensor) -> Tensor:
    """Dynamic binarisation: a fresh {0, 1} sample of a [0, 1] batch (on its device)."""
    return torch.bernoulli(batch)


class MNISTDataModule(CachedDataModule):
    """MNIST digits, 1x28x28, with a validation split carved from the 60,000 training images.

    Args:
      data_dir: the data root (files go to ``<data_dir>/mnist``).
      batch_size: training batch size.
      eval_batch_size: validation/test batch size (default: `batch_size`).
      val_size: validation examples carved from train with `seed` (count or fraction).
      seed: seed of the validation carve and of binarisation.
      binarize: ``none``, ``static`` or ``dynamic`` (see the module docstring).
      pin_memory, on_device: see `InMemoryDataModule`.
    """

    folder: ClassVar[str] = "mnist"
    class_names: ClassVar[tuple[str, ...]] = tuple(str(d) for d in range(10))
    files: ClassVar[dict[str, FileSpec]] = MNIST_FILES
    other_layouts: ClassVar[tuple[str, ...]] = ("MNIST/raw",)
    parts: ClassVar[tuple[str, ...]] = tuple(_IDX_NAMES)

    def __init__(
        self,
        data_dir: str | Path | None = None,
        batch_size: PositiveInt = 128,
        eval_batch_size: PositiveInt | None = None,
        val_size: SplitSize = 5000,
        seed: Seed = 0,
        binarize: Binarize = "dynamic",
        pin_memory: bool = False,
        on_device: bool = False,
    ) -> None:
        super().__init__(data_dir, batch_size, eval_batch_size, seed, pin_memory, on_device)
        self.val_size = val_size
        self.binarize = binarize
        self.dims = (1, 28, 28)
        self.levels = 256 if binarize == "none" else 2
        self.save_hyperparameters()

    def train_size(self) -> int:
        return remaining_after(N_TRAIN_ALL, self.val_size, "data.val_size")

    def decode(self, cache: ArrayCache) -> None:
        for split in ("train", "test"):
            images, labels = read_idx_pair(
                self.fetch(f"{split}_images"), self.fetch(f"{split}_labels")
            )
            cache.save(f"{split}_images", images)
            cache.save(f"{split}_labels", labels)

    def build_splits(self) -> dict[str, BatchSource]:
        arrays = self.load_arrays(mmap=False)
        train_all = torch.from_numpy(arrays["train_images"])
        test = torch.from_numpy(arrays["test_images"])
        train_idx, val_idx = split_train_val(len(train_all), self.val_size, self.seed)
        labels = torch.from_numpy(arrays["train_labels"]).long()
        self.targets = {
            "train": labels[train_idx],
            "val": labels[val_idx],
            "test": torch.from_numpy(arrays["test_labels"]).long(),
        }
        gen = torch.Generator().manual_seed(self.seed)
        if self.binarize == "none":
            return {
                "train": TensorSource(train_all[train_idx]),
                "val": TensorSource(train_all[val_idx]),
                "test": TensorSource(test),
            }
        if self.binarize == "static":
            train_all = binarize_static(train_all, gen)
            return {
                "train": TensorSource(train_all[train_idx], scale=1.0),
                "val": TensorSource(train_all[val_idx], scale=1.0),
                "test": TensorSource(binarize_static(test, gen), scale=1.0),
            }
        # dynamic: grey training images, sampled per batch by `train_transform`.
        return {
            "train": TensorSource(train_all[train_idx]),
            "val": TensorSource(binarize_static(train_all[val_idx], gen), scale=1.0),
            "test": TensorSource(binarize_static(test, gen), scale=1.0),
        }

    def train_transform(self) -> Callable[[Tensor], Tensor] | None:
        return _sample_bernoulli if self.binarize == "dynamic" else None


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST (Zalando's clothes), 1x28x28: the same files and code as MNIST.

    Besides the data root it reads the copy Debian's ``dataset-fashion-mnist``
    installs under ``/usr/share/datasets/fashion-mnist`` (verified by the sha256 of
    its decompressed bytes, since Debian recompressed the files).
    """

    folder: ClassVar[str] = "fashion_mnist"
    # The dataset's own names (Xiao et al. 2017, Table 1), in label order.
    class_names: ClassVar[tuple[str, ...]] = (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )
    files: ClassVar[dict[str, FileSpec]] = FASHION_MNIST_FILES
    other_layouts: ClassVar[tuple[str, ...]] = ("FashionMNIST/raw", "fashion-mnist")
    system_dirs: ClassVar[tuple[str, ...]] = ("/usr/share/datasets/fashion-mnist",)
