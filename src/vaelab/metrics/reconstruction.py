"""Reconstruction quality per image: PSNR and SSIM (torchmetrics' functional forms).

Both return one value per image, so that a caller averages them over a data set with
an exact sum-and-count mean (and across DDP ranks), as every other test metric here.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor

#: Per-image MSE floor: a perfect reconstruction scores 100 dB instead of infinity,
#: which would make the data set's mean meaningless.
MIN_MSE = 1e-10


def psnr(reconstruction: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image: 10 log10(range^2 / MSE), shape (B,).

    An exact reconstruction (MSE 0) scores the value at MSE = MIN_MSE (100 dB for
    range 1), not infinity.
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio

    _check(reconstruction, target)
    value = peak_signal_noise_ratio(
        reconstruction.float(),
        target.float(),
        data_range=data_range,
        reduction="none",
        dim=(1, 2, 3),
    )
    ceiling = 10.0 * torch.log10(torch.tensor(data_range**2 / MIN_MSE))
    return torch.minimum(value, ceiling.to(value))


def ssim(reconstruction: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Structural similarity per image (Wang et al. 2004; Gaussian window, σ = 1.5),
    averaged over its pixels and channels, shape (B,).

    The window is 11 pixels, or the largest odd size that fits smaller images.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check(reconstruction, target)
    side = min(11, reconstruction.shape[-1], reconstruction.shape[-2])
    kernel = side if side % 2 else side - 1
    # one tensor: neither return_full_image nor return_contrast_sensitivity is asked for
    return cast(
        Tensor,
        structural_similarity_index_measure(
            reconstruction.float(),
            target.float(),
            data_range=data_range,
            kernel_size=kernel,
            reduction="none",
        ),
    )


def _check(reconstruction: Tensor, target: Tensor) -> None:
    if reconstruction.shape != target.shape or reconstruction.dim() != 4:
        raise ValueError(
            f"expected two (B, C, H, W) batches of one shape, got {tuple(reconstruction.shape)} "
            f"and {tuple(target.shape)}"
        )
