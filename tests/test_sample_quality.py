"""Blank-sample share and thresholded IoU (vaelab.metrics.sample_quality) against numpy
on random masks, and on shapes rendered by the dataset itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaelab.data.shapes import render
from vaelab.metrics.sample_quality import blank_fraction, intersection_over_union


def test_blank_fraction_counts_images_with_too_few_lit_pixels() -> None:
    rng = np.random.default_rng(0)
    images = rng.random((200, 1, 16, 16)).astype(np.float32) * 0.45  # none above 0.5
    lit = rng.integers(0, 60, 200)
    for i, n in enumerate(lit):
        images[i].reshape(-1)[rng.choice(256, n, replace=False)] = 0.9
    want = float(np.mean(lit < 20))
    assert blank_fraction(torch.from_numpy(images)) == pytest.approx(want)
    assert blank_fraction(torch.from_numpy(images), min_pixels=1) == pytest.approx(
        float(np.mean(lit < 1))
    )


def test_iou_matches_numpy_and_is_one_for_two_empty_images() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((50, 1, 12, 12)).astype(np.float32)
    b = rng.random((50, 1, 12, 12)).astype(np.float32)
    b[0] = a[0] = 0.0  # both empty: identical masks
    ma, mb = a.reshape(50, -1) > 0.5, b.reshape(50, -1) > 0.5
    union = (ma | mb).sum(1)
    want = np.where(union > 0, (ma & mb).sum(1) / np.maximum(union, 1), 1.0)
    got = intersection_over_union(torch.from_numpy(a), torch.from_numpy(b))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    assert got[0] == 1.0


def test_iou_of_a_square_and_its_shifted_copy_is_the_closed_form() -> None:
    # One grid index apart in pos_x: the same square moved by whole pixels, so the
    # IoU is (w - d) h / ((w + d) h) for a w x h square moved d pixels.
    square = render(torch.tensor([0 * 40 * 32 * 32 + 0 * 32 * 32 + 0 * 32 + 8 * 32 + 8]), 64)
    moved = torch.roll(square, shifts=3, dims=-1)
    mask = square[0, 0] > 0.5
    w = int(mask.any(0).sum())
    got = float(intersection_over_union(square, moved)[0])
    assert got == pytest.approx((w - 3) / (w + 3), abs=0.03)
    assert float(intersection_over_union(square, square)[0]) == 1.0
