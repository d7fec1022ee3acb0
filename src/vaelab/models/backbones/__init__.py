"""Encoder and decoder backbones: plain `nn.Module`s built from an image shape.

Encoders take `in_shape=(C, H, W)` and map (B, C, H, W) to (B, out_features).
Decoders take `latent_dim` and `out_shape=(C_out, H, W)` and map (B, latent_dim) to
(B, C_out, H, W). They know nothing of VAEs; the VAE adds the posterior heads and
asks the likelihood how many output channels it needs.
"""

from vaelab.models.backbones.conv import ConvDecoder, ConvEncoder
from vaelab.models.backbones.mlp import MLPDecoder, MLPEncoder
from vaelab.models.backbones.resnet import ResNetDecoder, ResNetEncoder

__all__ = [
    "ConvDecoder",
    "ConvEncoder",
    "MLPDecoder",
    "MLPEncoder",
    "ResNetDecoder",
    "ResNetEncoder",
]
