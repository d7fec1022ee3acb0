"""Image grids as PNG files, on torch and Pillow alone (torchvision does not import here)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from vaelab.atomic import atomic_path


def make_grid(images: Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 1.0) -> Tensor:
    """Tile (N, C, H, W) images in [0, 1] into one (C, H', W') image, `nrow` per row.

    Values are clamped to [0, 1]; grey-level images stay one channel.
    """
    if images.dim() != 4:
        raise ValueError(f"expected (N, C, H, W) images, got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    ncol = min(nrow, n)
    nrows = -(-n // ncol)
    grid = torch.full(
        (c, nrows * (h + padding) + padding, ncol * (w + padding) + padding),
        pad_value,
        dtype=torch.float32,
    )
    for i, image in enumerate(images.detach().float().clamp(0, 1).cpu()):
        top = (i // ncol) * (h + padding) + padding
        left = (i % ncol) * (w + padding) + padding
        grid[:, top : top + h, left : left + w] = image
    return grid


def to_pil(image: Tensor) -> Image.Image:
    """(C, H, W) in [0, 1] with C in {1, 3} -> an 8-bit PIL image."""
    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    if array.shape[0] == 1:
        return Image.fromarray(array[0], mode="L")
    return Image.fromarray(np.ascontiguousarray(array.transpose(1, 2, 0)), mode="RGB")


def save_png(image: Tensor, path: str | os.PathLike[str], upscale: int = 1) -> Path:
    """Write a (C, H, W) image as PNG (atomically); `upscale` enlarges small grids."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = to_pil(image)
    if upscale > 1:
        picture = picture.resize(
            (picture.width * upscale, picture.height * upscale), Image.Resampling.NEAREST
        )
    with atomic_path(path, what="image") as tmp:
        picture.save(tmp, format="PNG")
    return path


def interleave_rows(originals: Tensor, reconstructions: Tensor, nrow: int) -> Tensor:
    """Stack images so each grid row of originals is followed by their reconstructions."""
    rows = []
    for start in range(0, originals.shape[0], nrow):
        rows += [originals[start : start + nrow], reconstructions[start : start + nrow]]
    return torch.cat(rows)


def save_gif(
    frames: Sequence[Tensor],
    path: str | os.PathLike[str],
    duration_ms: int = 120,
    upscale: int = 1,
) -> Path:
    """Write (C, H, W) images in [0, 1] as an animated GIF that loops (atomically).

    Pillow merges identical consecutive frames into one longer frame, so the file may
    hold fewer frames than given; the total duration is always len(frames) * duration_ms.
    """
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures = [to_pil(frame) for frame in frames]
    if upscale > 1:
        pictures = [
            p.resize((p.width * upscale, p.height * upscale), Image.Resampling.NEAREST)
            for p in pictures
        ]
    with atomic_path(path, what="image") as tmp:
        pictures[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=pictures[1:],
            duration=duration_ms,
            loop=0,
        )
    return path
