"""The built-in shapes data set: grid bookkeeping, pixels that match the factors, splits."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from helpers import check_arguments
from torch import Tensor

from vaelab.data.batching import BatchLoader
from vaelab.data.shapes import (
    FACTOR_NAMES,
    FACTOR_SIZES,
    N_IMAGES,
    ShapesDataModule,
    ShapesRenderer,
    ShapesSource,
    factor_values,
    factors_to_index,
    factors_to_values,
    index_to_factors,
    render,
)
from vaelab.errors import ConfigError

SQUARE, ELLIPSE, HEART = 0, 1, 2
MAX_SCALE, MAX_POS = FACTOR_SIZES[1] - 1, FACTOR_SIZES[3] - 1


def grid(**fixed: int | list[int]) -> Tensor:
    """Factor rows (N, 5) for every combination of the given levels (ints or lists)."""
    levels = [fixed.get(name, 0) for name in FACTOR_NAMES]
    levels = [[v] if isinstance(v, int) else v for v in levels]
    mesh = torch.meshgrid(*[torch.tensor(v) for v in levels], indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], 1)


def centroid(images: Tensor) -> tuple[Tensor, Tensor]:
    """(row, column) centre of mass, in pixels, of each image (N, 1, R, R)."""
    r = images.shape[-1]
    mass = images.sum((1, 2, 3))
    pos = torch.arange(r, dtype=images.dtype)
    rows = (images.sum((1, 3)) * pos).sum(1) / mass
    cols = (images.sum((1, 2)) * pos).sum(1) / mass
    return rows, cols


def reference_render(factors: Tensor, r: int) -> Tensor:
    """The documented geometry, written out per image in float64 on the full frame."""
    out = torch.zeros(len(factors), 1, r, r)
    centres = (torch.arange(r, dtype=torch.float64) + 0.5) / r
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    for n, (shape, scale, orient, px, py) in enumerate(factors.tolist()):
        radius = 0.17 * (0.5 + 0.1 * scale)
        theta = 2 * math.pi * orient / 39
        dx, dy = x - (0.2 + 0.6 * px / 31), (0.2 + 0.6 * py / 31) - y  # dy: up is positive
        u = (math.cos(theta) * dx + math.sin(theta) * dy) / radius
        v = (-math.sin(theta) * dx + math.cos(theta) * dy) / radius
        if shape == SQUARE:
            inside = (u.abs() <= 2**-0.5) & (v.abs() <= 2**-0.5)
        elif shape == ELLIPSE:
            inside = u**2 + (2 * v) ** 2 <= 1
        else:
            hx, hy = 1.25 * u, 1.25 * v + 0.25
            inside = (hx**2 + hy**2 - 1) ** 3 - hx**2 * hy**3 <= 0
        out[n, 0] = inside.float()
    return out


# --- the grid ---------------------------------------------------------------------------


def test_grid_size_and_factor_values() -> None:
    assert N_IMAGES == 737_280 == math.prod(FACTOR_SIZES)
    assert FACTOR_NAMES == ("shape", "scale", "orientation", "pos_x", "pos_y")
    values = factor_values()
    assert [len(values[name]) for name in FACTOR_NAMES] == [3, 6, 40, 32, 32]
    assert values["scale"][[0, -1]].tolist() == [0.5, 1.0]
    assert values["orientation"][-1].item() == pytest.approx(2 * math.pi)
    assert values["pos_x"][[0, -1]].tolist() == values["pos_y"][[0, -1]].tolist() == [0.0, 1.0]
    f = torch.tensor([[2, 5, 39, 31, 0], [0, 1, 10, 0, 16]])
    expected = [[2, 1.0, 2 * math.pi, 1.0, 0.0], [0, 0.6, 20 * math.pi / 39, 0.0, 16 / 31]]
    assert torch.allclose(factors_to_values(f), torch.tensor(expected, dtype=torch.float64))


def test_index_factor_round_trip_over_the_whole_grid() -> None:
    index = torch.arange(N_IMAGES)
    factors = index_to_factors(index)
    assert factors.shape == (N_IMAGES, 5) and factors.dtype == torch.int64
    assert torch.equal(factors_to_index(factors), index)
    # Same C order as numpy (and the dSprites archive): shape slowest, pos_y fastest.
    expected = np.stack(np.unravel_index(index.numpy(), FACTOR_SIZES), 1)
    assert np.array_equal(factors.numpy(), expected)
    for k, size in enumerate(FACTOR_SIZES):
        assert torch.bincount(factors[:, k]).tolist() == [N_IMAGES // size] * size


@pytest.mark.parametrize(
    ("call", "bad", "match"),
    [
        (index_to_factors, torch.tensor([0, N_IMAGES]), "flat indices must lie in"),
        (index_to_factors, torch.tensor([-1]), "flat indices must lie in"),
        (index_to_factors, torch.tensor([0.5]), "integer tensor"),
        (factors_to_index, torch.tensor([[0, 6, 0, 0, 0]]), "factor 'scale'"),
        (factors_to_index, torch.tensor([[0, 0, 0, 0]]), r"\(N, 5\)"),
        (render, torch.tensor([[3, 0, 0, 0, 0]]), "factor 'shape'"),
    ],
)
def test_bad_indices_are_rejected(call, bad: Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call(bad)


# --- pixels ---------------------------------------------------------------------------


def test_renderer_matches_the_documented_geometry_exactly() -> None:
    gen = torch.Generator().manual_seed(1)
    for r in (64, 28):
        index = torch.randint(0, N_IMAGES, (150,), generator=gen)
        assert torch.equal(render(index, r), reference_render(index_to_factors(index), r))


@pytest.mark.parametrize("r", [64, 32, 28])
def test_images_are_binary_nonempty_and_never_touch_the_border(r: int) -> None:
    # The largest shapes at every orientation in the four corners, and every shape at the
    # smallest scale: the extremes of the grid.
    corners = grid(
        shape=[0, 1, 2],
        scale=MAX_SCALE,
        orientation=list(range(40)),
        pos_x=[0, MAX_POS],
        pos_y=[0, MAX_POS],
    )
    smallest = grid(shape=[0, 1, 2], scale=0, orientation=list(range(40)), pos_x=7, pos_y=20)
    images = render(torch.cat([corners, smallest]), r)
    assert images.shape == (len(corners) + len(smallest), 1, r, r)
    assert images.dtype == torch.float32
    assert torch.equal(images, (images > 0.5).float())  # only exact 0.0 and 1.0
    smallest_ellipse = math.pi / 2 * (0.17 * 0.5 * r) ** 2  # the smallest shape's area
    assert images.sum((1, 2, 3)).min() >= 0.6 * smallest_ellipse
    border = images[..., 0, :].sum() + images[..., -1, :].sum()
    border += images[..., :, 0].sum() + images[..., :, -1].sum()
    assert border == 0
    # ...but the corners are close to it: the shape spans the range the docstring says.
    rows, cols = centroid(images[: len(corners)])
    for c in (rows, cols):
        assert c.min() < 0.25 * r and c.max() > 0.75 * r


def test_pos_x_moves_right_and_pos_y_moves_down() -> None:
    r = 64
    for shape in (SQUARE, ELLIPSE, HEART):
        along_x = render(
            grid(shape=shape, scale=3, orientation=7, pos_x=list(range(32)), pos_y=10), r
        )
        rows, cols = centroid(along_x)
        assert (cols.diff() > 0).all()
        assert rows.max() - rows.min() < 0.5  # no drift in the other direction
        # The centre travels 0.6 of the image: 38.4 pixels at 64x64.
        assert cols[-1] - cols[0] == pytest.approx(0.6 * r, abs=1.0)

        along_y = render(
            grid(shape=shape, scale=3, orientation=7, pos_x=20, pos_y=list(range(32))), r
        )
        rows, cols = centroid(along_y)
        assert (rows.diff() > 0).all()
        assert cols.max() - cols.min() < 0.5
        assert rows[-1] - rows[0] == pytest.approx(0.6 * r, abs=1.0)


def test_area_grows_with_scale_and_the_shapes_differ() -> None:
    r = 64
    scales = list(range(6))
    for shape in (SQUARE, ELLIPSE, HEART):
        for orient in (0, 5, 13):
            area = render(grid(shape=shape, scale=scales, orientation=orient, pos_x=16), r)
            area = area.sum((1, 2, 3))
            assert (area.diff() > 0).all()
            # Extent proportional to scale: area ratio (1 / 0.5)^2 = 4.
            assert area[-1] / area[0] == pytest.approx(4.0, rel=0.1)
    # At scale 1 the enclosing radius is 0.17 of the width; in units of it the areas are
    # 2 (square), pi/2 (ellipse) and 2.344 (heart, measured on a fine grid). At 128x128
    # the pixel count is within 2% of them.
    r = 128
    area = render(grid(shape=[0, 1, 2], scale=MAX_SCALE, pos_x=16, pos_y=16), r).sum((1, 2, 3))
    unit = (0.17 * r) ** 2
    assert area.tolist() == pytest.approx([2 * unit, math.pi / 2 * unit, 2.344 * unit], rel=0.03)
    assert area[HEART] > area[SQUARE] > area[ELLIPSE]


def test_orientation_turns_the_ellipse_but_keeps_its_area() -> None:
    r = 64
    orients = list(range(40))
    images = render(
        grid(shape=ELLIPSE, scale=MAX_SCALE, orientation=orients, pos_x=16, pos_y=16), r
    )
    mass = images.sum((1, 2, 3))
    assert mass.mean() == pytest.approx(math.pi / 2 * (0.17 * r) ** 2, rel=0.01)
    assert (mass.max() - mass.min()) / mass.mean() < 0.06  # 182 to 190 pixels: aliasing only
    # Principal axis from the second moments, with y up so angles turn counter-clockwise.
    rows, cols = centroid(images)
    pos = torch.arange(r, dtype=torch.float32)
    x = (pos.view(1, 1, r) - cols.view(-1, 1, 1)).expand(-1, r, r)
    y = (rows.view(-1, 1, 1) - pos.view(1, r, 1)).expand(-1, r, r)
    w = images[:, 0]
    cxx, cyy, cxy = (w * x * x).sum((1, 2)), (w * y * y).sum((1, 2)), (w * x * y).sum((1, 2))
    angle = 0.5 * torch.atan2(2 * cxy, cxx - cyy)
    theta = factor_values()["orientation"].float()
    error = torch.remainder(angle - theta + math.pi / 2, math.pi) - math.pi / 2  # mod pi
    assert error.abs().max() < math.radians(3)
    # Aspect 2:1: the eigenvalues of the second-moment matrix differ by a factor 4.
    spread = torch.sqrt((cxx - cyy) ** 2 + 4 * cxy**2)
    ratio = (cxx + cyy + spread) / (cxx + cyy - spread)
    assert ratio.min() > 3.6 and ratio.max() < 4.4


def test_orientation_endpoints_coincide_and_the_heart_points_down() -> None:
    # linspace(0, 2*pi, 40) as in dSprites: the first and the last angle are one rotation.
    ends = render(grid(shape=[0, 1, 2], scale=4, orientation=[0, 39], pos_x=9, pos_y=22))
    assert torch.equal(ends[0::2], ends[1::2])
    heart = render(grid(shape=HEART, scale=MAX_SCALE, pos_x=16, pos_y=16))[0, 0]
    rows = heart.sum(1).nonzero().squeeze(1)
    width = heart.sum(1)[rows]
    assert width[-1] <= 3  # the point, at the bottom
    row_mass, _ = centroid(heart.view(1, 1, 64, 64))
    assert row_mass < (rows[0] + rows[-1]) / 2  # the lobes carry the mass, above


def test_rendering_does_not_depend_on_the_batch() -> None:
    gen = torch.Generator().manual_seed(2)
    index = torch.randint(0, N_IMAGES, (300,), generator=gen)
    together = render(index)
    assert torch.equal(render(index.flip(0)), together.flip(0))
    for i in (0, 1, 150, 299):
        assert torch.equal(render(index[i : i + 1]), together[i : i + 1])
    assert torch.equal(render(index_to_factors(index)), together)
    assert torch.equal(ShapesRenderer(64)(index), together)


# --- splits and the DataModule ----------------------------------------------------------


def test_splits_have_the_asked_sizes_and_are_disjoint() -> None:
    dm = ShapesDataModule(n_val=10_000, n_test=10_000)
    dm.setup()
    assert dm.split_sizes() == {"train": N_IMAGES - 20_000, "val": 10_000, "test": 10_000}
    everything = torch.cat([dm.splits[s].indices for s in ("train", "val", "test")])
    assert torch.equal(everything.sort().values, torch.arange(N_IMAGES))  # disjoint, covering

    small = ShapesDataModule(n_train=5_000, n_val=300, n_test=200)
    sizes = {name: len(ix) for name, ix in small.split_indices().items()}
    assert sizes == {"train": 5_000, "val": 300, "test": 200}
    assert torch.cat(list(small.split_indices().values())).unique().numel() == 5_500


def test_splits_are_deterministic_from_the_seed() -> None:
    a = ShapesDataModule(n_train=2_000, n_val=500, n_test=500, seed=3).split_indices()
    b = ShapesDataModule(n_train=2_000, n_val=500, n_test=500, seed=3).split_indices()
    c = ShapesDataModule(n_train=2_000, n_val=500, n_test=500, seed=4).split_indices()
    for name in ("train", "val", "test"):
        assert torch.equal(a[name], b[name])
        assert (a[name] != c[name]).float().mean() > 0.99
    # val and test stay put when the training set grows.
    d = ShapesDataModule(n_train=9_000, n_val=500, n_test=500, seed=3).split_indices()
    assert torch.equal(a["val"], d["val"]) and torch.equal(a["test"], d["test"])
    assert torch.equal(a["train"], d["train"][:2_000])


def test_same_seed_gives_the_same_pixels_and_factors() -> None:
    dms = [ShapesDataModule(n_train=1_000, n_val=100, n_test=100, seed=5) for _ in range(2)]
    for dm in dms:
        dm.setup()
    first = torch.arange(64)
    assert torch.equal(dms[0].splits["val"].batch(first), dms[1].splits["val"].batch(first))
    factors = dms[0].example_factors("val")
    assert factors.shape == (100, 5) and factors.dtype == torch.int64
    assert torch.equal(factors, index_to_factors(dms[0].splits["val"].indices))
    # Row i of factors() is the i-th example the (unshuffled) val loader serves.
    batches = list(dms[0].val_dataloader())
    served = torch.cat([x for x, _ in batches])
    assert torch.equal(served, render(factors))
    assert torch.equal(torch.cat([index for _, index in batches]), torch.arange(100))
    # The val split is a random draw: every shape shows up among the first examples.
    assert set(factors[:32, 0].tolist()) == {0, 1, 2}


def test_source_renders_its_own_indices() -> None:
    indices = torch.tensor([5, 737_279, 123_456, 0])
    source = ShapesSource(indices, resolution=32)
    assert len(source) == 4
    pick = torch.tensor([2, 0])
    assert torch.equal(source.batch(pick), render(indices[pick], 32))
    assert torch.equal(source.factors(pick), index_to_factors(indices[pick]))
    assert source.factors(torch.tensor([1])).tolist() == [[2, 5, 39, 31, 31]]
    with pytest.raises(ValueError, match="flat indices"):
        ShapesSource(torch.tensor([N_IMAGES]))


def test_train_loader_serves_shuffled_float_batches() -> None:
    dm = ShapesDataModule(n_train=1_000, n_val=300, n_test=200, batch_size=64)
    assert dm.dims == (1, 64, 64) and dm.levels == 2
    loader = dm.train_dataloader()
    assert isinstance(loader, BatchLoader)
    epoch1 = list(loader)
    epoch2 = list(loader)
    assert len(loader) == len(epoch1) == 1_000 // 64  # drop_last for training
    assert all(b.shape == (64, 1, 64, 64) and b.dtype == torch.float32 for b in epoch1)
    assert not torch.equal(epoch1[0], epoch2[0])  # a new order each epoch
    # Same examples, new order: the pixel totals of the 15 full batches are close.
    assert torch.cat(epoch1).sum() == pytest.approx(torch.cat(epoch2).sum().item(), rel=0.05)
    val = list(dm.val_dataloader())
    assert len(dm.val_dataloader()) == len(val) == 5
    assert [len(x) for x, _ in val] == [64, 64, 64, 64, 44]


def test_examples_per_epoch_serves_fresh_images_every_epoch() -> None:
    dm = ShapesDataModule(
        resolution=32, n_val=100, n_test=100, batch_size=50, examples_per_epoch=500, seed=3
    )
    loader = dm.train_dataloader()
    assert len(loader) == 10 and dm.train_size() == N_IMAGES - 200  # N stays the split
    train = dm.splits["train"].indices
    epochs = [torch.cat(list(loader)) for _ in range(3)]
    assert all(e.shape == (500, 1, 32, 32) for e in epochs)
    # Each epoch renders the next 500 grid indices of the seeded stream: independently
    # recomputed here, from the loader's rule (permutation 0 of the split from seed 3).
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(3))
    for e, images in enumerate(epochs):
        assert torch.equal(images, render(train[order[e * 500 : (e + 1) * 500]], 32))


def test_an_epoch_shorter_than_a_batch_is_refused_in_one_line() -> None:
    dm = ShapesDataModule(n_val=100, n_test=100, batch_size=64, examples_per_epoch=50)
    with pytest.raises(ConfigError, match=r"an epoch \(data.examples_per_epoch\) has 50 ex"):
        dm.train_dataloader()


def test_resolution_32_gives_32_by_32_images() -> None:
    dm = ShapesDataModule(resolution=32, n_train=256, n_val=64, n_test=64, batch_size=32)
    assert dm.dims == (1, 32, 32)
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (32, 1, 32, 32)
    assert dm.example_batch(8).shape == (8, 1, 32, 32)
    # The same scene at half the resolution: about a quarter of the pixels are set.
    index = dm.splits["val"].indices[:64]
    assert render(index, 32).sum() / render(index, 64).sum() == pytest.approx(0.25, rel=0.05)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"resolution": 4}, "data.resolution=4 must be an integer >= 8"),
        ({"n_val": -1}, "data.n_val=-1 must be an integer >= 0"),
        ({"n_train": 0}, "data.n_train=0 must be an integer >= 1 or null"),
    ],
)
def test_bad_arguments_raise_a_clear_error(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(match)):
        check_arguments("vaelab.data.shapes.ShapesDataModule", "data", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_val": 400_000, "n_test": 400_000}, "leaves no training images"),
        ({"n_train": 720_000}, "exceeds the 737280 images"),
    ],
)
def test_splits_that_do_not_fit_the_grid_raise_a_clear_error(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ShapesDataModule(**kwargs)
