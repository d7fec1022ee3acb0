"""Evaluation metrics as plain functions on tensors and arrays (no Lightning).

- `likelihood`: the IWAE bound on -log p(x), bits per dimension.
- `latents`: KL per latent dimension, active units.
- `disentanglement`: MIG, FactorVAE score, DCI against known factors.
- `reconstruction`: PSNR and SSIM per image.
"""
