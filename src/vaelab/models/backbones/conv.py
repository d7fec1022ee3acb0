"""Strided-convolution encoder and transposed-convolution decoder (Burgess et al. 2018)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from typing_extensions import override

from vaelab.config.constraints import NonNegativeInt, Widths
from vaelab.models.backbones._common import (
    KERNEL,
    PADDING,
    STRIDE,
    check_fits,
    flatten_to_features,
    latent_to_feature_map,
    make_activation,
    upsample,
)


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, fc_dim): one k4 s2 convolution per entry of `channels`.

    `fc_dim=0` skips the fully connected layer and returns the flattened feature map.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        channels: Widths = (32, 32, 64, 64),
        fc_dim: NonNegativeInt = 256,
        activation: str = "ReLU",
    ) -> None:
        super().__init__()
        sizes = check_fits(tuple(in_shape), len(channels), "model.encoder")
        layers: list[nn.Module] = []
        c_in = in_shape[0]
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, KERNEL, STRIDE, PADDING), make_activation(activation)]
            c_in = c_out
        tail, self.out_features = flatten_to_features(c_in, sizes[-1], fc_dim, activation)
        self.net = nn.Sequential(*layers, *tail)

    @override
    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x)
        return out


class ConvDecoder(nn.Module):
    """(B, latent_dim) -> (B, *out_shape), mirroring `ConvEncoder`.

    `channels` run from the deepest feature map to the shallowest; the last transposed
    convolution emits `out_shape[0]` channels of raw likelihood parameters.
    """

    def __init__(
        self,
        latent_dim: int,
        out_shape: Sequence[int],
        channels: Widths = (64, 64, 32, 32),
        fc_dim: NonNegativeInt = 256,
        activation: str = "ReLU",
    ) -> None:
        super().__init__()
        sizes = check_fits(tuple(out_shape), len(channels), "model.decoder")
        layers = latent_to_feature_map(latent_dim, fc_dim, (channels[0], *sizes[-1]), activation)
        outs = [*channels[1:], out_shape[0]]
        for i, (c_in, c_out) in enumerate(zip(channels, outs, strict=True)):
            layers.append(upsample(c_in, c_out, sizes[-2 - i], sizes[-1 - i]))
            if i < len(channels) - 1:
                layers.append(make_activation(activation))
        self.net = nn.Sequential(*layers)

    @override
    def forward(self, z: Tensor) -> Tensor:
        out: Tensor = self.net(z)
        return out
