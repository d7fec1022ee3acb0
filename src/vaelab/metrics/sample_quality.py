"""Quality checks of binary-image VAEs that a user can see: blank prior samples and how
closely thresholded reconstructions cover the shapes they came from.

- `blank_fraction`: the share of images with fewer than `min_pixels` pixels above the
  threshold. A VAE whose aggregate posterior leaves holes in the prior decodes samples
  from those holes as empty canvases.
- `intersection_over_union`: per image, |A ∩ B| / |A ∪ B| of the two thresholded masks
  (1 where both are empty): a reconstruction that turns a square into a round blob
  loses the corners and scores below one.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _masks(images: Tensor, threshold: float) -> Tensor:
    return (images > threshold).flatten(1)


def blank_fraction(images: Tensor, threshold: float = 0.5, min_pixels: int = 20) -> float:
    """The fraction of `images` (N, ...) with fewer than `min_pixels` values above
    `threshold`."""
    lit = _masks(images, threshold).sum(dim=1)
    return float((lit < min_pixels).float().mean())


def intersection_over_union(a: Tensor, b: Tensor, threshold: float = 0.5) -> Tensor:
    """Per-image IoU (N,) of `a` and `b` (N, ...) thresholded at `threshold`."""
    if a.shape != b.shape:
        raise ValueError(f"images of shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
    ma, mb = _masks(a, threshold), _masks(b, threshold)
    inter = (ma & mb).sum(dim=1).float()
    union = (ma | mb).sum(dim=1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
