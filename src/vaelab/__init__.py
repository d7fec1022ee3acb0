"""vaelab: a beta-VAE experiment lab on PyTorch Lightning, Hydra and Weights & Biases.

The package root imports nothing heavy, so that `python src/train.py --help` and the
config checks start fast; import torch-based pieces from their modules.
"""

__version__ = "0.1.0"
