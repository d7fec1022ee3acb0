"""scikit-learn's handwritten digits: 1,797 images of 8x8 pixels with values 0..16, offline.

The data ships inside scikit-learn, so this is the real dataset that runs with no
download at all: the quickest check that a model learns something.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from vaelab.config.constraints import PositiveInt, Seed, SplitSize
from vaelab.data.batching import BatchSource, TensorSource
from vaelab.data.memory import InMemoryDataModule
from vaelab.data.splits import carve_splits, carved_train_size

#: Images in scikit-learn's digits.
N_IMAGES = 1797


class DigitsDataModule(InMemoryDataModule):
    """The 8x8 digits (1x8x8, 17 levels), split into train/val/test with fixed seeds.

    Args:
      batch_size, eval_batch_size: training and evaluation batch sizes.
      val_size: validation examples (count, or fraction of all 1,797), carved with `seed`.
      test_size: test examples (count or fraction), carved with a fixed seed.
      seed: seed of the validation carve and the epoch shuffles.
      pin_memory, on_device: see `InMemoryDataModule`.
    """

    class_names: ClassVar[tuple[str, ...]] = tuple(str(d) for d in range(10))

    def __init__(
        self,
        batch_size: PositiveInt = 128,
        eval_batch_size: PositiveInt | None = None,
        val_size: SplitSize = 0.1,
        test_size: SplitSize = 0.2,
        seed: Seed = 0,
        pin_memory: bool = False,
        on_device: bool = False,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, seed, pin_memory, on_device)
        self.val_size = val_size
        self.test_size = test_size
        self.dims = (1, 8, 8)
        self.levels = 17
        self.save_hyperparameters()

    def train_size(self) -> int:
        return carved_train_size(N_IMAGES, self.val_size, self.test_size)

    def build_splits(self) -> dict[str, BatchSource]:
        from sklearn.datasets import load_digits  # slow import; only when data is needed

        digits = load_digits()
        images = torch.from_numpy(digits.images).to(torch.uint8)[:, None]
        labels = torch.from_numpy(digits.target).long()
        index = carve_splits(len(images), self.val_size, self.test_size, self.seed)
        self.targets = {split: labels[i] for split, i in index.items()}
        return {split: TensorSource(images[i], scale=16.0) for split, i in index.items()}
