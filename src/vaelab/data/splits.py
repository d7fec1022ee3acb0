"""Train/val/test indices for datasets that publish no test split (digits, image folders)."""

from __future__ import annotations

from torch import Tensor

from vaelab.data.memory import carved_count, remaining_after, split_train_val

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
