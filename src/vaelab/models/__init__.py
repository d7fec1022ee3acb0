"""Models: the VAE LightningModule and its backbones."""

from vaelab.models.vae import VAE

__all__ = ["VAE"]
