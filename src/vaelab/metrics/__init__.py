"""Evaluation metrics as plain functions on tensors and arrays (no Lightning).

- `likelihood`: the IWAE bound on -log p(x), bits per dimension.
- `latents`: KL per latent dimension, active units.
- `disentanglement`: MIG, FactorVAE score, DCI against known factors, and the helpers
  they share (discretising, mutual information); `sap`, `beta_vae_score`,
  `modularity` (modularity and explicitness), `irs`, `unsupervised`: the other scores.
- `protocol`: the dlib and fast sample counts and the one evaluation running them all;
  `names`: the metrics' names, import-free.
- `heldout`: the test stage's extras (IWAE bound, active units, latent statistics).
- `reconstruction`: PSNR and SSIM per image.
"""
