"""Train/val/test indices for datasets that publish no test split (digits, image folders)."""

from __future__ import annotations

from torch import Tensor

from vaelab.data.memory import split_train_val

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
    rest, test = split_train_val(n, test_size, TEST_SPLIT_SEED)
    if isinstance(val_size, float):
        val_size = round(val_size * n)
    train, val = split_train_val(len(rest), val_size, seed)
    return {"train": rest[train], "val": rest[val], "test": test}
