"""Residual encoder and decoder: pre-activation blocks between stride-2 resamplings."""

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


class ResidualBlock(nn.Module):
    """x + conv3x3(act(conv3x3(act(x)))): identity path keeps gradients flowing."""

    def __init__(self, channels: int, activation: str = "ReLU") -> None:
        super().__init__()
        self.body = nn.Sequential(
            make_activation(activation),
            nn.Conv2d(channels, channels, 3, padding=1),
            make_activation(activation),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    @override
    def forward(self, x: Tensor) -> Tensor:
        body: Tensor = self.body(x)
        return x + body


def _blocks(channels: int, n: int, activation: str) -> list[nn.Module]:
    return [ResidualBlock(channels, activation) for _ in range(n)]


class ResNetEncoder(nn.Module):
    """(B, C, H, W) -> (B, fc_dim): per entry of `channels`, a stride-2 convolution to
    that width followed by `blocks_per_stage` residual blocks."""

    def __init__(
        self,
        in_shape: Sequence[int],
        channels: Widths = (32, 64, 128),
        blocks_per_stage: NonNegativeInt = 1,
        fc_dim: NonNegativeInt = 256,
        activation: str = "ReLU",
    ) -> None:
        super().__init__()
        sizes = check_fits(tuple(in_shape), len(channels), "model.encoder")
        layers: list[nn.Module] = [nn.Conv2d(in_shape[0], channels[0], 3, padding=1)]
        c_in = channels[0]
        for c_out in channels:
            layers.append(nn.Conv2d(c_in, c_out, KERNEL, STRIDE, PADDING))
            layers += _blocks(c_out, blocks_per_stage, activation)
            c_in = c_out
        tail, self.out_features = flatten_to_features(c_in, sizes[-1], fc_dim, activation)
        self.net = nn.Sequential(*layers, make_activation(activation), *tail)

    @override
    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x)
        return out


class ResNetDecoder(nn.Module):
    """(B, latent_dim) -> (B, *out_shape), mirroring `ResNetEncoder`: residual blocks,
    then a stride-2 transposed convolution, from the deepest width to the shallowest."""

    def __init__(
        self,
        latent_dim: int,
        out_shape: Sequence[int],
        channels: Widths = (128, 64, 32),
        blocks_per_stage: NonNegativeInt = 1,
        fc_dim: NonNegativeInt = 256,
        activation: str = "ReLU",
    ) -> None:
        super().__init__()
        sizes = check_fits(tuple(out_shape), len(channels), "model.decoder")
        layers = latent_to_feature_map(latent_dim, fc_dim, (channels[0], *sizes[-1]), activation)
        outs = [*channels[1:], channels[-1]]
        for i, (c_in, c_out) in enumerate(zip(channels, outs, strict=True)):
            layers += _blocks(c_in, blocks_per_stage, activation)
            layers.append(upsample(c_in, c_out, sizes[-2 - i], sizes[-1 - i]))
        layers += [make_activation(activation), nn.Conv2d(channels[-1], out_shape[0], 3, padding=1)]
        self.net = nn.Sequential(*layers)

    @override
    def forward(self, z: Tensor) -> Tensor:
        out: Tensor = self.net(z)
        return out
