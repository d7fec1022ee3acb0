"""Carving splits out of a dataset: the one rule for every carved split's size
(`carved_count`, `remaining_after`), a validation split out of the training data
(`split_train_val`), and train/val/test indices for datasets that publish no test
split (digits, image folders)."""

from __future__ import annotations

import torch
from torch import Tensor

from vaelab.errors import ConfigError


def carved_count(size: int | float, n: int) -> int:
    """Examples a split of `size` takes out of `n`: a count (int) or a fraction (float)."""
    return round(size * n) if isinstance(size, float) else int(size)


def remaining_after(n: int, size: int | float, key: str) -> int:
    """Examples left of `n` once a split of `size` (set by config key `key`) is carved out;
    a `ConfigError` if none would be left. The one rule for every carved split."""
    left = n - carved_count(size, n)
    if left < 1:
        raise ConfigError(
            f"{key}={size} leaves no training data out of {n} examples; "
            f"it must be below {n} (a count) or below 1 (a fraction), e.g. {key}=0.1"
        )
    return left


def split_train_val(
    n: int, val_size: int | float, seed: int, key: str = "data.val_size"
) -> tuple[Tensor, Tensor]:
    """Carve a validation split out of `n` training examples with a fixed seed.

    `val_size` is a count (int) or a fraction of `n` (float < 1). Returns sorted
    (train_index, val_index), disjoint and covering range(n).
    """
    n_val = n - remaining_after(n, val_size, key)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


#: Seed of the test carve. Fixed, unlike the run's seed, so that every run of a sweep
#: (over seeds included) is scored on the same test examples.
TEST_SPLIT_SEED = 0


def carve_splits(
    n: int, val_size: int | float, test_size: int | float, seed: int
) -> dict[str, Tensor]:
    """Sorted indices of 'train', 'val' and 'test', disjoint and covering range(n).

    The test split is carved with `TEST_SPLIT_SEED`, the validation split from the
    rest with `seed`. Sizes are counts, or fractions (float) of all `n` examples.
    """
    rest, test = split_train_val(n, test_size, TEST_SPLIT_SEED, key="data.test_size")
    train, val = split_train_val(len(rest), carved_count(val_size, n), seed)
    return {"train": rest[train], "val": rest[val], "test": test}


def carved_train_size(n: int, val_size: int | float, test_size: int | float) -> int:
    """The training examples `carve_splits(n, val_size, test_size, ...)` leaves."""
    rest = remaining_after(n, test_size, "data.test_size")
    return remaining_after(rest, carved_count(val_size, n), "data.val_size")
