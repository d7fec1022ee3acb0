"""Shapes: a procedurally rendered equivalent of dSprites, so the default run needs no download.

The factor grid is dSprites' own: 3 shapes x 6 scales x 40 orientations x 32 x 32
positions = 737,280 binary images. Images are rendered on demand from their factor
indices, so no split is
ever held in memory as pixels: a split is a tensor of flat grid indices.

Geometry (resolution-independent, so a 32x32 and a 64x64 image show the same scene):

- The image is the unit square [0, 1]^2 with pixel (row i, column j) centred at
  ((j + 0.5) / R, (i + 0.5) / R) as (x, y); a pixel is 1 when its centre lies inside
  the shape, else 0.
- ``pos_x`` moves the shape right (the column index grows) and ``pos_y`` moves it
  down (the row index grows), as in array/image coordinates. The centre is
  ``0.2 + 0.6 * value`` for a value in [0, 1], so it ranges over [0.2, 0.8].
- Every shape fits in a circle of radius ``scale * MAX_RADIUS`` around its centre
  (0.17 at scale 1, so the largest shape is about a third of the image wide). With
  the centre at least 0.2 from the edge, no shape leaves the frame at any
  orientation, and for R >= 17 no border pixel is ever set.
- ``orientation`` rotates the shape counter-clockwise as seen on screen. As in
  dSprites, the 40 angles are ``linspace(0, 2*pi, 40)``: the first and the last are
  the same rotation, and the square (4-fold) and the ellipse (2-fold) repeat sooner.
- Shapes, in a frame scaled so the enclosing circle has radius 1: 0 square (side
  sqrt(2)), 1 ellipse (semi-axes 1 and 0.5, major axis horizontal at orientation 0),
  2 heart (the implicit curve (x^2+y^2-1)^3 - x^2 y^3 <= 0, point down at
  orientation 0, shrunk by 1.25 about (0, 0.25), the point that minimises its
  enclosing radius).

Flat grid indices follow numpy's C order over ``FACTOR_SIZES`` (shape slowest,
pos_y fastest), as the dSprites archive orders its images.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor

from vaelab.config.constraints import NonNegativeInt, PositiveInt, Seed
from vaelab.data.batching import BatchSource
from vaelab.data.factors import FactorSpace
from vaelab.data.memory import InMemoryDataModule
from vaelab.errors import ConfigError

FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES: tuple[int, ...] = (3, 6, 40, 32, 32)
SHAPE_NAMES: tuple[str, ...] = ("square", "ellipse", "heart")
N_IMAGES: int = math.prod(FACTOR_SIZES)  # 737,280

MAX_RADIUS = 0.17  # enclosing radius of every shape at scale 1, in image widths
POS_MIN, POS_MAX = 0.2, 0.8  # range of the shape centre; 0.2 - 0.17 leaves a margin
MIN_RESOLUTION = 8
#: Image side in pixels: below 8 the smallest shapes vanish.
Resolution = Annotated[int, Field(ge=MIN_RESOLUTION)]

# C-order strides of the grid: flat = sum(factor * stride).
_STRIDES: tuple[int, ...] = tuple(math.prod(FACTOR_SIZES[k + 1 :]) for k in range(5))
# The heart curve spans x in [-1.14, 1.14], y in [-1, 1.24]; about (0, 0.25) every
# point lies within 1.25, so this maps the unit enclosing circle onto it.
_HEART_RADIUS = 1.25
_HEART_CENTRE_Y = 0.25


def factor_values() -> dict[str, Tensor]:
    """The value of every level of every factor, as float64 tensors keyed by name.

    shape: 0, 1, 2 (categorical: square, ellipse, heart); scale: linspace(0.5, 1, 6);
    orientation: linspace(0, 2*pi, 40) radians; pos_x, pos_y: linspace(0, 1, 32).
    """
    f64 = torch.float64
    return {
        "shape": torch.arange(FACTOR_SIZES[0], dtype=f64),
        "scale": torch.linspace(0.5, 1.0, FACTOR_SIZES[1], dtype=f64),
        "orientation": torch.linspace(0.0, 2 * math.pi, FACTOR_SIZES[2], dtype=f64),
        "pos_x": torch.linspace(0.0, 1.0, FACTOR_SIZES[3], dtype=f64),
        "pos_y": torch.linspace(0.0, 1.0, FACTOR_SIZES[4], dtype=f64),
    }


def factors_to_values(factors: Tensor) -> Tensor:
    """Map factor indices (N, 5) to factor values (N, 5) float64, columns as FACTOR_NAMES."""
    factors = _check_factors(factors)
    values = factor_values()
    return torch.stack([values[name][factors[:, k]] for k, name in enumerate(FACTOR_NAMES)], 1)


def index_to_factors(index: Tensor) -> Tensor:
    """Flat grid indices (N,) -> factor indices (N, 5) int64 (like numpy.unravel_index)."""
    index = _check_index(index)
    return torch.stack([index // s % n for s, n in zip(_STRIDES, FACTOR_SIZES, strict=True)], 1)


def factors_to_index(factors: Tensor) -> Tensor:
    """Factor indices (N, 5) -> flat grid indices (N,) int64 (like numpy.ravel_multi_index)."""
    factors = _check_factors(factors)
    return factors @ torch.tensor(_STRIDES, dtype=torch.long)


def _check_index(index: Tensor) -> Tensor:
    index = torch.as_tensor(index)
    if index.dim() != 1 or index.is_floating_point() or index.is_complex():
        raise ValueError(f"expected a 1-d integer tensor of flat indices, got {_describe(index)}")
    index = index.long()
    if index.numel() and (index.min() < 0 or index.max() >= N_IMAGES):
        raise ValueError(f"flat indices must lie in [0, {N_IMAGES}), got {_range(index)}")
    return index


def _check_factors(factors: Tensor) -> Tensor:
    factors = torch.as_tensor(factors)
    if factors.dim() != 2 or factors.shape[1] != 5 or factors.is_floating_point():
        raise ValueError(f"expected an (N, 5) integer tensor of factors, got {_describe(factors)}")
    factors = factors.long()
    sizes = torch.tensor(FACTOR_SIZES)
    if factors.numel() and ((factors < 0).any() or (factors >= sizes).any()):
        bad = int(((factors < 0) | (factors >= sizes)).any(0).nonzero()[0])
        raise ValueError(
            f"factor {FACTOR_NAMES[bad]!r} must lie in [0, {FACTOR_SIZES[bad]}), "
            f"got {_range(factors[:, bad])}"
        )
    return factors


def _describe(t: Tensor) -> str:
    return f"{t.dtype} tensor of shape {tuple(t.shape)}"


def _range(t: Tensor) -> str:
    return f"values in [{int(t.min())}, {int(t.max())}]"


class ShapesRenderer:
    """Renders grid images from factor or flat indices, vectorised over the batch.

    A pure function of its input: the same index gives the same pixels whatever the
    batch around it. That holds bit for bit because every per-example constant is
    looked up from tables computed once (a batched cos/sin may round differently from
    a single one), and the per-pixel work is plain elementwise arithmetic, which
    torch's vectorised and scalar loops round identically.
    """

    def __init__(self, resolution: int = 64) -> None:
        if not isinstance(resolution, int) or resolution < MIN_RESOLUTION:
            raise ValueError(f"resolution must be an int >= {MIN_RESOLUTION}, got {resolution!r}")
        self.resolution = resolution
        values = factor_values()
        # Tables in float64, stored in float32: one rounding, independent of the batch.
        angle = values["orientation"]
        self._cos = angle.cos().float()
        self._sin = angle.sin().float()
        self._inv_radius = (1.0 / (values["scale"] * MAX_RADIUS)).float()
        self._pos_x = (POS_MIN + (POS_MAX - POS_MIN) * values["pos_x"]).float()
        self._pos_y = (POS_MIN + (POS_MAX - POS_MIN) * values["pos_y"]).float()
        # Pixel centres, the same along rows and columns.
        self._centres = ((torch.arange(resolution, dtype=torch.float64) + 0.5) / resolution).float()
        # A shape covers only its enclosing circle, so each example is rendered in a
        # square patch around its centre and pasted into an empty image: at 64x64 the
        # patch is 24x24, a seventh of the pixels. Half-width h >= radius + 1 pixel
        # covers every pixel centre within the radius of the centre (see `_patch_start`).
        half = math.ceil(MAX_RADIUS * resolution) + 1
        self._patch = min(2 * half, resolution)
        self._half = half
        self._offsets = torch.arange(self._patch)

    def _patch_start(self, centre: Tensor) -> Tensor:
        """First pixel (row or column) of the patch around `centre` (in [0, 1]), per example.

        With f = floor(centre * R), a pixel k whose centre k + 0.5 is within
        MAX_RADIUS * R of centre * R satisfies f - h < k < f + h, so [f - h, f + h)
        holds it. Clamping into the image only moves the patch away from an edge the
        shape does not reach.
        """
        first = (centre.double() * self.resolution).floor().long() - self._half
        return first.clamp(0, self.resolution - self._patch)

    def __call__(self, index: Tensor) -> Tensor:
        """Render flat indices (N,) or factor indices (N, 5) as float (N, 1, R, R) in {0, 1}."""
        index = torch.as_tensor(index)
        factors = index_to_factors(index) if index.dim() == 1 else _check_factors(index)
        shape, scale, orient, pos_x, pos_y = factors.unbind(1)
        n, r, p = len(factors), self.resolution, self._patch
        cx, cy = self._pos_x[pos_x], self._pos_y[pos_y]
        cols = self._patch_start(cx).view(n, 1) + self._offsets  # (N, P) image columns
        rows = self._patch_start(cy).view(n, 1) + self._offsets  # (N, P) image rows
        # The shape's frame: (u, v) = R(-theta) (p - c) / (scale * MAX_RADIUS), with v
        # pointing up on screen. Folding cos/radius and sin/radius into two numbers per
        # example leaves a handful of operations on the (N, P, P) patch.
        a = (self._cos[orient] * self._inv_radius[scale]).view(n, 1, 1)
        b = (self._sin[orient] * self._inv_radius[scale]).view(n, 1, 1)
        dx = (self._centres[cols] - cx.view(n, 1)).view(n, 1, p)  # right is positive
        dy = (cy.view(n, 1) - self._centres[rows]).view(n, p, 1)  # up is positive
        u = a * dx + b * dy
        v = a * dy - b * dx
        inside = torch.empty(n, p, p, dtype=torch.bool)
        # Each shape's inside test runs only on its own examples.
        for k, test in enumerate((_square, _ellipse, _heart)):
            sel = (shape == k).nonzero().squeeze(1)
            if sel.numel():
                inside[sel] = test(u[sel], v[sel])
        out = torch.zeros(n, 1, r, r)
        out[torch.arange(n).view(n, 1, 1), 0, rows.view(n, p, 1), cols.view(n, 1, p)] = (
            inside.float()
        )
        return out


def _square(u: Tensor, v: Tensor) -> Tensor:
    half = 1.0 / math.sqrt(2.0)  # corners on the unit circle
    return (u.abs() <= half) & (v.abs() <= half)


def _ellipse(u: Tensor, v: Tensor) -> Tensor:
    # Semi-axes 1 and 0.5: the 2:1 aspect makes the orientation visible.
    v2 = v * 2.0
    return u * u + v2 * v2 <= 1.0


def _heart(u: Tensor, v: Tensor) -> Tensor:
    x = u * _HEART_RADIUS
    y = v * _HEART_RADIUS + _HEART_CENTRE_Y
    x2 = x * x
    q = x2 + y * y - 1.0
    return q * q * q <= x2 * (y * y * y)


@lru_cache(maxsize=8)
def _renderer(resolution: int) -> ShapesRenderer:
    return ShapesRenderer(resolution)


def render(index: Tensor, resolution: int = 64) -> Tensor:
    """Render flat indices (N,) or factor indices (N, 5) as float (N, 1, R, R) in {0, 1}."""
    return _renderer(resolution)(index)


class ShapesSource:
    """A split of the shapes grid: a set of flat indices, rendered a batch at a time.

    Implements the `BatchSource` protocol; `factors` gives the ground-truth factor
    indices of the same examples, for disentanglement metrics.
    """

    def __init__(self, indices: Tensor, resolution: int = 64) -> None:
        self.indices = _check_index(indices)
        self.renderer = _renderer(resolution)
        self.resolution = resolution

    def __len__(self) -> int:
        return self.indices.shape[0]

    def batch(self, index: Tensor) -> Tensor:
        """The images at positions `index` of this split: float (B, 1, R, R) in {0, 1}."""
        return self.renderer(self.indices[index])

    def factors(self, index: Tensor) -> Tensor:
        """The factor indices (B, 5) int64 of the examples at positions `index`."""
        return index_to_factors(self.indices[index])


class ShapesDataModule(InMemoryDataModule):
    """The shapes grid split into train/val/test by one seeded permutation.

    val takes the first `n_val` indices of a permutation of the 737,280 grid indices
    drawn from `seed`, test the next `n_test`, train the next `n_train` (all the
    rest when None), so the splits are disjoint and val/test do not move when
    `n_train` changes. Each split keeps the permutation's order rather than sorting
    it, so the first examples of val (the reconstruction grid) vary in every factor.
    Nothing is rendered at setup; each batch is rendered when the loader asks for it.
    With `examples_per_epoch`, an epoch is that many images (at most `n_train`), each
    epoch the next ones of the shuffled training stream: with `n_train=None` a run sees
    fresh images every epoch instead of a fixed subset many times.

    Its ground truth (`vaelab.data.factors`): `factor_space()` renders any factor
    combination, `example_factors(split)` gives the factors of every example.
    """

    factor_names: tuple[str, ...] = FACTOR_NAMES
    factor_sizes: tuple[int, ...] = FACTOR_SIZES

    def __init__(
        self,
        resolution: Resolution = 64,
        n_train: PositiveInt | None = None,
        n_val: NonNegativeInt = 10000,
        n_test: NonNegativeInt = 10000,
        batch_size: PositiveInt = 128,
        eval_batch_size: PositiveInt | None = None,
        seed: Seed = 0,
        pin_memory: bool = False,
        examples_per_epoch: PositiveInt | None = None,
    ) -> None:
        super().__init__(
            batch_size, eval_batch_size, seed, pin_memory, examples_per_epoch=examples_per_epoch
        )
        remaining = N_IMAGES - n_val - n_test
        if remaining < 1:
            raise ConfigError(
                f"data.n_val + data.n_test = {n_val + n_test} leaves no training images "
                f"out of the {N_IMAGES} in the shapes grid; lower them (e.g. data.n_val=5000)"
            )
        if n_train is not None and n_train > remaining:
            raise ConfigError(
                f"data.n_train + data.n_val + data.n_test = {n_train + n_val + n_test} exceeds "
                f"the {N_IMAGES} images in the shapes grid; lower data.n_train or use "
                "data.n_train=null (all the rest)"
            )
        self.resolution = resolution
        self.n_train = remaining if n_train is None else n_train
        self.n_val = n_val
        self.n_test = n_test
        self.dims = (1, resolution, resolution)
        self.levels = 2

    def train_size(self) -> int:
        return self.n_train

    def split_indices(self) -> dict[str, Tensor]:
        """The flat grid indices of each split, from the seeded permutation."""
        perm = torch.randperm(N_IMAGES, generator=torch.Generator().manual_seed(self.seed))
        bounds = (0, self.n_val, self.n_val + self.n_test, self.n_val + self.n_test + self.n_train)
        names = ("val", "test", "train")
        return {name: perm[bounds[k] : bounds[k + 1]] for k, name in enumerate(names)}

    def build_splits(self) -> dict[str, BatchSource]:
        return {
            name: ShapesSource(indices, self.resolution)
            for name, indices in self.split_indices().items()
        }

    def factor_space(self) -> FactorSpace:
        """dSprites' five factors, rendered at this module's resolution."""
        resolution = self.resolution
        return FactorSpace(
            self.factor_names, self.factor_sizes, lambda factors: render(factors, resolution)
        )

    def example_factors(self, split: str) -> Tensor:
        """The factor indices (N, 5) int64 of every example of `split`.

        Row i belongs to example i of the split: the order in which the val and test
        loaders (unshuffled) serve it, and the order of `example_batch`.
        """
        self.setup()
        source = self.splits[split]
        if not isinstance(source, ShapesSource):
            raise TypeError(f"split {split!r} is not a ShapesSource")
        return source.factors(torch.arange(len(source)))
