"""Image grids as PNG files, on torch and Pillow alone (torchvision does not import here)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from vaelab.runs.atomic import atomic_path


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


@dataclass(frozen=True)
class RowLabels:
    """A text left of each row of a `make_grid` image whose cells are `cell` pixels high
    with `padding` between them (e.g. the factor a traversed dimension follows)."""

    texts: Sequence[str]
    cell: int
    padding: int = 2

    def apply(self, picture: Image.Image, upscale: int) -> Image.Image:
        font = ImageFont.load_default()
        measure = ImageDraw.Draw(picture)
        width = max(int(measure.textlength(t, font=font)) for t in self.texts) + 8
        mode_white = 255 if picture.mode == "L" else (255, 255, 255)
        canvas = Image.new(picture.mode, (picture.width + width, picture.height), mode_white)
        canvas.paste(picture, (width, 0))
        draw = ImageDraw.Draw(canvas)
        black = 0 if picture.mode == "L" else (0, 0, 0)
        for i, text in enumerate(self.texts):
            middle = (self.padding + i * (self.cell + self.padding) + self.cell / 2) * upscale
            draw.text((4, middle), text, fill=black, font=font, anchor="lm")
        return canvas


def _picture(image: Tensor, upscale: int, labels: RowLabels | None) -> Image.Image:
    picture = to_pil(image)
    if upscale > 1:
        picture = picture.resize(
            (picture.width * upscale, picture.height * upscale), Image.Resampling.NEAREST
        )
    return labels.apply(picture, upscale) if labels is not None else picture


def save_png(
    image: Tensor,
    path: str | os.PathLike[str],
    upscale: int = 1,
    labels: RowLabels | None = None,
) -> Path:
    """Write a (C, H, W) image as PNG (atomically); `upscale` enlarges small grids,
    `labels` puts a text left of each row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = _picture(image, upscale, labels)
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
    labels: RowLabels | None = None,
) -> Path:
    """Write (C, H, W) images in [0, 1] as an animated GIF that loops (atomically).

    Pillow merges identical consecutive frames into one longer frame, so the file may
    hold fewer frames than given; the total duration is always len(frames) * duration_ms.
    """
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures = [_picture(frame, upscale, labels) for frame in frames]
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
