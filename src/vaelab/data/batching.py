"""The shared in-memory data path: whole batches by tensor indexing, no per-item collate.

A `DataLoader` over a `TensorDataset` calls `__getitem__` once per example and then
stacks the results; for small images that Python overhead costs several times the
model's own step on a CPU. Here a split is a `BatchSource` that turns a tensor of
indices into a float batch in one indexing operation, and `BatchLoader` is the
iterable Lightning consumes: one permutation per epoch, sliced into batches.
`InMemoryDataModule` (vaelab.data.memory) serves its splits through these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import torch
from torch import Tensor

from vaelab.errors import ConfigError


class BatchSource(Protocol):
    """A split of a dataset that can produce any subset of itself as one batch."""

    def __len__(self) -> int: ...

    def batch(self, index: Tensor) -> Tensor:
        """Return the examples at `index` as a float tensor (B, C, H, W) in [0, 1]."""
        ...


class TensorSource:
    """Examples held as one integer tensor (N, C, H, W); values are `stored / scale`.

    uint8 storage keeps an 8-bit image set at a quarter of its float size, and the
    division happens per batch, on the fly.
    """

    def __init__(self, data: Tensor, scale: float = 255.0) -> None:
        if data.dim() != 4:
            raise ValueError(f"expected a (N, C, H, W) tensor, got shape {tuple(data.shape)}")
        self.data = data
        self.scale = float(scale)

    def __len__(self) -> int:
        return self.data.shape[0]

    def batch(self, index: Tensor) -> Tensor:
        # index_select copies whole rows; `data[index]` goes through the generic
        # advanced-indexing kernel, element by element, and costs several times as
        # much for small uint8 images (measured in bench/data_loading.py).
        index = index.to(self.data.device, non_blocking=True)
        return self.data.index_select(0, index).float().div_(self.scale)

    def subset(self, index: Tensor) -> TensorSource:
        return TensorSource(self.data.index_select(0, index.to(self.data.device)), self.scale)

    def to(self, device: torch.device | str) -> TensorSource:
        """Move the stored examples (still uint8) to `device`, in place; returns self.

        On a GPU the whole split then lives in device memory at a byte per value, and
        each batch is gathered and converted to float there: no host-to-device copy
        per step.
        """
        self.data = self.data.to(device)
        return self


def epoch_examples(n_train: int, examples_per_epoch: int | None) -> int:
    """Training examples in one epoch: `examples_per_epoch`, at most the split's
    `n_train` (None: the whole split). A smaller split stays one epoch, as a user who
    lowers data.n_train expects."""
    return n_train if examples_per_epoch is None else min(examples_per_epoch, n_train)


def check_full_batch(
    n_train: int, batch_size: int, world: int = 1, examples_per_epoch: int | None = None
) -> None:
    """Training batches are full (the last partial one is dropped) and hold distinct
    examples, so each of the `world` processes needs at least `batch_size` of the
    `n_train` examples of the split, and of the `examples_per_epoch` of an epoch."""
    counts = [("the training split", n_train, "more training data")]
    if examples_per_epoch is not None:
        per_epoch = epoch_examples(n_train, examples_per_epoch)
        counts.append(("an epoch (data.examples_per_epoch)", per_epoch, "a larger epoch"))
    for what, n, more in counts:
        per_process = n // world
        if per_process < batch_size:
            share = f" ({per_process} per process of {world})" if world > 1 else ""
            raise ConfigError(
                f"{what} has {n} examples{share}, fewer than one batch of "
                f"data.batch_size={batch_size}: no training step would run; use "
                f"data.batch_size={max(1, per_process)} or {more}"
            )


class BatchLoader:
    """Iterate over a `BatchSource` in batches; the loader Lightning sees.

    Training loaders read an endless stream of permutations, the p-th drawn from
    `seed + p`, and epoch e takes the e-th stretch of `examples_per_epoch` examples of
    it (at most the split; the epoch is the trainer's when `epoch_fn` is given, else a
    count of passes). By default an epoch is one permutation, the whole split; a
    shorter epoch sees a fresh stretch each time, so a large split (the 727,280
    training images of the shapes grid) is seen through without repeats and validated
    as often as a small one.
    Every rank of a DDP job reads the same stretch and takes a disjoint, equally long
    share of it (equal lengths keep the ranks' gradient all-reduces in step).
    Evaluation loaders split the examples into contiguous per-rank shards without
    padding, so that a metric reduced as sums and counts sees every example exactly
    once. With `with_index` they yield `(batch, index)`, the examples' positions in the
    split, so that evaluation can draw each example's noise from its index and give the
    same numbers for any batch size or number of ranks.
    With `labels` (N, K), the label indices of every example (a conditional model's,
    `vaelab.data.labels`), each batch's labels follow it: `(batch, labels)` in
    training, `(batch, index, labels)` in evaluation.
    """

    def __init__(
        self,
        source: BatchSource,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        transform: Callable[[Tensor], Tensor] | None = None,
        pin_memory: bool = False,
        with_index: bool = False,
        epoch_fn: Callable[[], int] | None = None,
        resume_at: tuple[int, int] | Callable[[], tuple[int, int] | None] | None = None,
        examples_per_epoch: int | None = None,
        labels: Tensor | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if examples_per_epoch is not None and examples_per_epoch < 1:
            raise ValueError(f"examples_per_epoch must be >= 1, got {examples_per_epoch}")
        self.source = source
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.transform = transform
        self.pin_memory = pin_memory and torch.cuda.is_available()
        self.with_index = with_index
        self.epoch_fn = epoch_fn
        self.epoch = 0
        # (epoch, batches): the first pass over that epoch starts after those batches,
        # which a resumed run's interrupted epoch had already trained on. A callable is
        # asked at the first pass: the position may be known only after the loader is
        # built (Lightning builds it while the model sizes its schedule, before the
        # callbacks' on_fit_start).
        self.resume_at = resume_at
        self.examples_per_epoch = examples_per_epoch if shuffle else None
        if labels is not None and len(labels) != len(source):
            raise ValueError(f"{len(labels)} labels for a split of {len(source)} examples")
        self.labels = labels

    def _epoch_examples(self) -> int:
        return epoch_examples(len(self.source), self.examples_per_epoch)

    def _stream(self, start: int, count: int) -> Tensor:
        """Positions `start` .. `start + count` of the stream of permutations."""
        n = len(self.source)
        first, last = start // n, (start + count - 1) // n
        perms = [
            torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + p))
            for p in range(first, last + 1)
        ]
        offset = start - first * n
        return torch.cat(perms)[offset : offset + count]

    def _shard(self) -> Tensor:
        n = len(self.source)
        if self.shuffle:
            epoch = self.epoch_fn() if self.epoch_fn is not None else self.epoch
            count = self._epoch_examples()
            order = self._stream(epoch * count, count)
            per_rank = count // self.world_size
            return order[self.rank :: self.world_size][:per_rank]
        start = self.rank * n // self.world_size
        stop = (self.rank + 1) * n // self.world_size
        return torch.arange(start, stop)

    def _shard_len(self) -> int:
        n = len(self.source)
        if self.shuffle:
            return self._epoch_examples() // self.world_size
        return (self.rank + 1) * n // self.world_size - self.rank * n // self.world_size

    def __len__(self) -> int:
        n = self._shard_len()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Tensor | tuple[Tensor, ...]]:
        epoch = self.epoch_fn() if self.epoch_fn is not None else self.epoch
        index = self._shard()
        self.epoch += 1
        n_batches = len(self)
        start = 0
        resume_at = self.resume_at() if callable(self.resume_at) else self.resume_at
        if resume_at is not None and resume_at[0] == epoch:
            start = min(resume_at[1], n_batches)
        self.resume_at = None
        for b in range(start, n_batches):
            batch_index = index[b * self.batch_size : (b + 1) * self.batch_size]
            batch = self.source.batch(batch_index)
            if self.transform is not None:
                batch = self.transform(batch)
            if self.pin_memory and batch.device.type == "cpu":  # GPU-resident data needs none
                batch = batch.pin_memory()
            parts = (batch, batch_index) if self.with_index else (batch,)
            if self.labels is not None:
                parts = (*parts, self.labels.index_select(0, batch_index).to(batch.device))
            yield parts if len(parts) > 1 else batch
