"""`InMemoryDataModule`: the base of every vaelab DataModule. Subclasses build their
splits as `BatchSource`s (vaelab.data.batching); this class serves them through
`BatchLoader`s with shuffling, DDP sharding and the hand-off to Lightning."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import ClassVar, cast

import lightning as L
import torch
from torch import Tensor
from typing_extensions import override

from vaelab.config.constraints import PositiveInt, Seed
from vaelab.data.batching import BatchLoader, BatchSource, TensorSource, check_full_batch
from vaelab.data.factors import HasFactors
from vaelab.data.labels import LabelSpace, no_labels_error


class InMemoryDataModule(L.LightningDataModule, abc.ABC):
    """Base of every vaelab DataModule: splits as `BatchSource`s, served by `BatchLoader`.

    Subclasses say what the data is (`dims`, `levels`) and build the splits; this
    class owns batching, shuffling, DDP sharding and the hand-off to Lightning.

    Attributes every subclass sets in `__init__` (cheap: no data is read there):
      dims: (C, H, W) of one example, for building the model.
      levels: number of distinct values per pixel (2 for binary, 256 for 8-bit), or
        None for continuous data; likelihoods check that they can model it.

    `pin_memory` pins each CPU batch for a faster copy to the GPU; `on_device` instead
    moves every `TensorSource` split (uint8) to the trainer's accelerator once at setup,
    so batches are gathered and converted on the GPU. Both are no-ops on a CPU run.
    `examples_per_epoch` sets how many training examples make an epoch (at most the
    split; None: the whole split), each epoch a fresh stretch of the shuffled stream
    (see `BatchLoader`): subclasses whose splits are large enough to want it expose it
    as a config key.

    Labels (`vaelab.data.labels`): a class dataset names its classes in `class_names`
    and fills `targets` (split -> class indices) when it builds its splits; data with
    known factors has them as labels. `serve_labels` has the loaders yield them.
    """

    dims: tuple[int, int, int]
    levels: int | None
    #: The classes of a class dataset, by index (empty: no class labels).
    class_names: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        batch_size: PositiveInt = 128,
        eval_batch_size: PositiveInt | None = None,
        seed: Seed = 0,
        pin_memory: bool = False,
        on_device: bool = False,
        *,
        examples_per_epoch: PositiveInt | None = None,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.seed = seed
        self.pin_memory = pin_memory
        self.on_device = on_device
        self.examples_per_epoch = examples_per_epoch
        self.splits: dict[str, BatchSource] = {}
        #: a class dataset's class index of every example, by split (`build_splits`)
        self.targets: dict[str, Tensor] = {}
        #: the labels the loaders yield beside each batch (`serve_labels`)
        self.served_labels: tuple[str, ...] = ()
        self._resume_at: tuple[int, int] | None = None

    def check_available(self) -> None:
        """Raise `DataError` if this data cannot be had, before a run starts. Data made
        in memory (rendered, or bundled with a package) always can; file-backed data
        fetches and decodes here what `prepare_data` would (`CachedDataModule`)."""

    @abc.abstractmethod
    def build_splits(self) -> dict[str, BatchSource]:
        """Return the 'train', 'val' and 'test' sources (data read or rendered here)."""

    @override
    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self.build_splits()
        device = self._accelerator_device()
        if self.on_device and device is not None:
            for source in self.splits.values():
                if isinstance(source, TensorSource) and source.data.device != device:
                    source.to(device)

    def _accelerator_device(self) -> torch.device | None:
        """The trainer's device when it is not the CPU, else None."""
        trainer = self.trainer
        if trainer is None:
            return None
        device = trainer.strategy.root_device
        return None if device.type == "cpu" else device

    def train_transform(self) -> Callable[[Tensor], Tensor] | None:
        """A per-batch transform applied to training batches only (e.g. binarisation)."""
        return None

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _loader(self, split: str, train: bool) -> BatchLoader:
        self.setup()
        rank, world = self._rank_and_world()
        if train:  # sizes not known before the data is read (an image folder) meet it here
            check_full_batch(
                len(self.splits[split]), self.batch_size, world, self.examples_per_epoch
            )
        return BatchLoader(
            self.splits[split],
            self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            drop_last=train,
            seed=self.seed,
            rank=rank,
            world_size=world,
            transform=self.train_transform() if train else None,
            pin_memory=self.pin_memory,
            with_index=not train,
            # The trainer's epoch picks the permutation: a resumed run replays the
            # interrupted epoch in the order the uninterrupted run used.
            # (`self.trainer`, set when the lambda is made, is read again when it is called)
            epoch_fn=(
                (lambda: cast("L.Trainer", self.trainer).current_epoch)
                if train and self.trainer
                else None
            ),
            resume_at=(lambda: self._resume_at) if train else None,
            examples_per_epoch=self.examples_per_epoch,
            labels=self.chosen_labels(split, self.served_labels) if self.served_labels else None,
        )

    def resume_epoch_at(self, epoch: int, batches_done: int) -> None:
        """Start training epoch `epoch` after its first `batches_done` batches (a run
        resumed from a checkpoint written inside that epoch; see EpochPosition)."""
        self._resume_at = (epoch, batches_done)

    @override
    def train_dataloader(self) -> BatchLoader:
        return self._loader("train", train=True)

    @override
    def val_dataloader(self) -> BatchLoader:
        return self._loader("val", train=False)

    @override
    def test_dataloader(self) -> BatchLoader:
        return self._loader("test", train=False)

    def train_size(self) -> int | None:
        """Training examples this configuration gives, when that is known without reading
        the data (None otherwise): what the preflight checks count batches with, and
        the dataset size N the objectives weigh with."""
        return None

    def example_batch(self, n: int, split: str = "val") -> Tensor:
        """The first `n` examples of a split: a fixed batch for reconstruction grids."""
        self.setup()
        source = self.splits[split]
        return source.batch(torch.arange(min(n, len(source))))

    # ------------------------------------------------------------------ labels
    def label_space(self) -> LabelSpace | None:
        """The labels of this data (`vaelab.data.labels`), or None where it has none:
        the classes of a class dataset, else the factors of data with known factors."""
        if self.class_names:
            return LabelSpace(("class",), (len(self.class_names),), {"class": self.class_names})
        if isinstance(self, HasFactors):
            space = self.factor_space()
            return LabelSpace(space.names, space.sizes)
        return None

    def split_labels(self, split: str) -> Tensor:
        """The label indices (N, K) int64 of every example of `split`, in loader order,
        one column per label of `label_space`."""
        if self.class_names:
            self.setup()
            return self.targets[split][:, None]
        if isinstance(self, HasFactors):
            return self.example_factors(split)
        raise no_labels_error(type(self).__name__)

    def chosen_labels(self, split: str, chosen: Sequence[str]) -> Tensor:
        """The columns of `split_labels` that hold the labels `chosen`, in that order."""
        space = self.label_space()
        if space is None:
            raise no_labels_error(type(self).__name__)
        return self.split_labels(split)[:, space.columns(chosen)].contiguous()

    def serve_labels(self, chosen: Sequence[str]) -> None:
        """Have every loader built from now on yield the labels `chosen` beside each
        batch (`BatchLoader`'s `labels`): what a conditional model trains and is
        evaluated on. An empty `chosen` serves none."""
        self.served_labels = tuple(chosen)

    def example_labels(self, n: int, chosen: Sequence[str], split: str = "val") -> Tensor:
        """The labels `chosen` (n, K) of the first `n` examples of `split` (those of
        `example_batch(n, split)`), taken round again when the split has fewer: labels
        for n generated images with the split's label frequencies."""
        labels = self.chosen_labels(split, chosen)
        return labels.repeat(-(-n // len(labels)), 1)[:n]

    def labelled_examples(
        self, n: int, chosen: Sequence[str], split: str = "val"
    ) -> tuple[Tensor, Tensor | None]:
        """`example_batch(n, split)` and its examples' labels `chosen` (None when none
        are chosen): the inputs of a model conditional on `chosen` (its `label_names`)."""
        x = self.example_batch(n, split)
        return x, (self.example_labels(len(x), chosen, split) if chosen else None)

    def split_sizes(self) -> dict[str, int]:
        self.setup()
        return {name: len(source) for name, source in self.splits.items()}
