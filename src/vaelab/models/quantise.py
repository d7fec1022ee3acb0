"""Discrete latents (`latent=vq`): the vector-quantised VAE of van den Oord et al. 2017,
"Neural discrete representation learning".

The encoder's features give `positions` vectors z_e of `embedding_dim` numbers each
(`latent_dim` = positions × embedding_dim, the size the decoder reads, so every backbone
keeps its meaning). Each is replaced by its nearest entry of a codebook of `codes`
vectors, z_q = e_k with k = argmin ‖z_e − e_j‖, and the decoder reads the quantised
vectors. Gradients pass from z_q to z_e unchanged (the straight-through estimator).

- The codebook follows the encoder's outputs by exponential moving averages (the
  paper's Appendix A.1, decay γ = `decay`): each entry is the running mean of the
  vectors assigned to it, with Laplace smoothing of the counts. It has no gradient.
- A code whose running count falls below `restart_below` is dead: it is moved onto a
  random encoder output of the batch (as in Dhariwal et al. 2020's Jukebox), so that
  the whole codebook stays in use. `restarts` counts them.
- The commitment loss ‖z_e − sg(z_q)‖² keeps the encoder near its codes; `objective=vq`
  weighs it with β (the paper: 0.25).
- Perplexity exp(H) of the batch's code frequencies (K when every code is used alike,
  1 when one code takes everything) and the share of codes used are logged.

The posterior is a point mass on one code per position and the training prior is
uniform over the codes, so KL(q(k|x) ‖ p(k)) = positions · log K, a constant: the
−ELBO is the reconstruction term plus that, and the IWAE bound equals the ELBO at every
k. A learned prior over the indices (`sampler=code_prior`, vaelab.samplers.code_prior)
is fitted afterwards, from the checkpoint, and gives the pair's bits per dimension.

This module is a `LatentStructure` beside vaelab.models.hierarchy's: `QuantisedPrior`
is its uniform prior, for prior samples and the prior's density on the codebook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vaelab.config.constraints import Fraction, NonNegative, PositiveInt
from vaelab.errors import ConfigError
from vaelab.models.hierarchy import LatentStructure
from vaelab.models.priors import Prior


@dataclass(frozen=True)
class Quantised:
    """What quantising a batch gave.

    Attributes:
        z_e: the encoder's vectors (B, latent_dim).
        z_q: the quantised vectors, straight-through to z_e (B, latent_dim).
        indices: each position's code (B, positions).
        commitment: ‖z_e − sg(z_q)‖² per example (B,).
        perplexity: exp of the entropy of the batch's code frequencies.
        codes_used: the share of the codebook the batch used.
        restarts: dead codes moved onto encoder outputs in this step (training only).
    """

    z_e: Tensor
    z_q: Tensor
    indices: Tensor
    commitment: Tensor
    perplexity: Tensor
    codes_used: Tensor
    restarts: Tensor


class VectorQuantiser(LatentStructure):
    """A codebook of `codes` vectors of `embedding_dim` numbers, updated by moving averages
    (see the module docstring).

    Args:
        latent_dim: what the decoder reads: positions × embedding_dim.
        features: the encoder backbone's output size (the VAE passes it).
        codes: K, the codebook's size.
        embedding_dim: numbers per code vector; must divide latent_dim.
        decay: the moving averages' decay γ.
        restart_below: the running count under which a code is restarted (0: never).
    """

    single_group = False
    #: The posterior is a point mass on codes: objectives and metrics that need a
    #: density of continuous latents refuse it.
    discrete: ClassVar[bool] = True

    def __init__(
        self,
        latent_dim: PositiveInt,
        features: PositiveInt,
        codes: PositiveInt = 512,
        embedding_dim: PositiveInt = 2,
        decay: Fraction = 0.99,
        restart_below: NonNegative = 0.01,
    ) -> None:
        super().__init__(latent_dim)
        if self.latent_dim % int(embedding_dim):
            raise ConfigError(
                f"latent=vq needs latent_dim to be a multiple of latent.embedding_dim, but "
                f"{self.latent_dim} is not a multiple of {embedding_dim}: use e.g. "
                f"latent_dim={int(embedding_dim) * max(1, self.latent_dim // int(embedding_dim))}"
            )
        self.codes, self.embedding_dim = int(codes), int(embedding_dim)
        self.positions = self.latent_dim // self.embedding_dim
        self.decay, self.restart_below = float(decay), float(restart_below)
        self.head = nn.Linear(int(features), self.latent_dim)
        codebook = torch.randn(self.codes, self.embedding_dim)
        self.register_buffer("codebook", codebook)
        self.register_buffer("ema_count", torch.ones(self.codes))
        self.register_buffer("ema_sum", codebook.clone())
        # The codebook starts on encoder outputs of the first training batch, where the
        # encoder's vectors are, rather than on noise where few would be assigned.
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    codebook: Tensor
    ema_count: Tensor
    ema_sum: Tensor
    started: Tensor

    @property
    def group_sizes(self) -> dict[str, int]:
        return {"z": self.latent_dim}

    @property
    def kl(self) -> float:
        """KL(q(k|x) ‖ uniform) of one example: positions · log K nats."""
        return self.positions * math.log(self.codes)

    def nearest(self, z_e: Tensor) -> Tensor:
        """The index of the nearest code of each vector: (..., embedding_dim) -> (...)."""
        flat = z_e.reshape(-1, self.embedding_dim)
        # ‖z − e‖² = ‖z‖² − 2 z·e + ‖e‖²; ‖z‖² is the same for every code
        distances = self.codebook.square().sum(1) - 2 * flat @ self.codebook.T
        return distances.argmin(1).view(z_e.shape[:-1])

    def lookup(self, indices: Tensor) -> Tensor:
        """Code vectors of indices (B, positions), flattened: (B, latent_dim)."""
        return F.embedding(indices, self.codebook).flatten(-2)

    def forward(self, h: Tensor) -> Quantised:
        """Quantise the encoder's features `h` (B, F); in training mode, also move the
        codebook (moving averages, dead-code restarts)."""
        return self.quantise(h, update=self.training)

    def indices(self, h: Tensor) -> Tensor:
        """The code of each position (B, positions), the codebook left as it is."""
        return self.nearest(self.head(h).view(-1, self.positions, self.embedding_dim))

    def quantise(self, h: Tensor, update: bool = False) -> Quantised:
        """Quantise `h` (B, F); with `update`, move the codebook first."""
        z_e = self.head(h)
        vectors = z_e.view(-1, self.positions, self.embedding_dim)
        indices = self.nearest(vectors.detach())
        restarts = torch.zeros((), device=h.device)
        if update:
            restarts = self._update(
                vectors.detach().reshape(-1, self.embedding_dim), indices.flatten()
            )
        z_q = self.lookup(indices)
        commitment = (z_e - z_q).square().sum(-1)  # z_q holds no gradient: sg(z_q)
        counts = torch.bincount(indices.flatten(), minlength=self.codes).float()
        share = counts / counts.sum()
        entropy = -(share * torch.log(share.clamp_min(1e-12))).sum()
        return Quantised(
            z_e=z_e,
            z_q=z_e + (z_q - z_e).detach(),
            indices=indices,
            commitment=commitment,
            perplexity=entropy.exp(),
            codes_used=(counts > 0).float().mean(),
            restarts=restarts,
        )

    @torch.no_grad()
    def _update(self, vectors: Tensor, indices: Tensor) -> Tensor:
        """One moving-average step of the codebook from the batch's assignments; then
        restart the dead codes. Returns how many were restarted."""
        if not bool(self.started):
            picks = vectors[torch.randint(len(vectors), (self.codes,), device=vectors.device)]
            self.codebook.copy_(picks)
            self.ema_sum.copy_(picks)
            self.started.fill_(True)
            indices = self.nearest(vectors)
        one_hot = F.one_hot(indices, self.codes).to(vectors.dtype)
        counts, sums = one_hot.sum(0), one_hot.T @ vectors
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # Under DDP each rank sees its share of the batch: the moving averages take
            # the whole batch's assignments, as one process with the whole batch would,
            # so every rank moves its codebook alike. (A restart below picks a rank's own
            # vectors; DDP's buffer broadcast then gives every rank rank 0's.)
            torch.distributed.all_reduce(counts)
            torch.distributed.all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        # Laplace smoothing: a code with no assignment keeps a finite mean
        total = self.ema_count.sum()
        smoothed = (self.ema_count + 1e-5) / (total + self.codes * 1e-5) * total
        self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(1))
        dead = self.ema_count < self.restart_below
        n_dead = int(dead.sum())
        if n_dead:
            picks = vectors[torch.randint(len(vectors), (n_dead,), device=vectors.device)]
            self.codebook[dead] = picks
            self.ema_sum[dead] = picks
            self.ema_count[dead] = 1.0
        return torch.tensor(float(n_dead), device=vectors.device)


class QuantisedPrior(Prior):
    """The uniform prior over a quantiser's codes at every position."""

    def __init__(self, quantiser: VectorQuantiser) -> None:
        super().__init__(quantiser.latent_dim)
        self._quantiser = [quantiser]  # registered once, by the VAE

    def log_prob(self, z: Tensor) -> Tensor:
        """log p of latents on the codebook: −positions · log K (the same for all)."""
        return torch.full(z.shape[:-1], -self._quantiser[0].kl, dtype=z.dtype, device=z.device)

    def sample(
        self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """`n` latents of uniformly drawn codes (the temperature has no effect)."""
        quantiser = self._quantiser[0]
        indices = torch.randint(quantiser.codes, (n, quantiser.positions), generator=generator)
        return quantiser.lookup(indices.to(quantiser.codebook.device))
