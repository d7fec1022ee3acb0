"""Latent health: KL per latent dimension and active units.

A dimension the posterior ignores (q(z_d|x) = p(z_d) for every x) costs no KL and
carries no information about x: posterior collapse. Burda et al. (2016) count a
dimension as active when the posterior mean moves with the data,
Cov_x(E_q[z_d|x]) > 0.01.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Independent, Normal, kl_divergence

#: Burda et al.'s threshold on the variance over the data of the posterior mean.
ACTIVE_THRESHOLD = 0.01


def kl_per_dimension(posterior: Independent[Normal] | Normal) -> Tensor:
    """KL(q(z_d|x) ‖ N(0, 1)) per example and dimension (B, D), for a diagonal Gaussian
    posterior; rows sum to the example's KL."""
    base = posterior.base_dist if isinstance(posterior, Independent) else posterior
    prior = Normal(torch.zeros_like(base.mean), torch.ones_like(base.mean), validate_args=False)
    return kl_divergence(base, prior)


def posterior_mean_variance(means: Tensor) -> Tensor:
    """Variance over examples of each dimension of the posterior mean: (N, D) -> (D,).

    The population variance (divide by N), as in Burda et al.'s Cov_x.
    """
    return means.double().var(dim=0, unbiased=False).to(means.dtype)


def variance_from_moments(mean: Tensor, mean_of_squares: Tensor) -> Tensor:
    """Var = E[m^2] - E[m]^2 per dimension, from running first and second moments (what
    a sum-and-count metric reduces exactly across DDP ranks); clamped at 0 against
    rounding."""
    return (mean_of_squares.double() - mean.double() ** 2).clamp_min(0).to(mean.dtype)


def active_dimensions(variance: Tensor, threshold: float = ACTIVE_THRESHOLD) -> Tensor:
    """Boolean mask (D,) of the active dimensions: variance of the posterior mean over
    the data above `threshold`."""
    return variance > threshold


def active_units(variance: Tensor, threshold: float = ACTIVE_THRESHOLD) -> int:
    """Number of active dimensions (see `active_dimensions`)."""
    return int(active_dimensions(variance, threshold).sum())


def dimensions_by_kl(kl_per_dim: Tensor, mask: Tensor | None = None) -> list[int]:
    """Dimension indices ordered by KL, largest first; only those in `mask` if given.

    Ties keep index order, so the order is deterministic.
    """
    kl = kl_per_dim.detach().double().cpu()
    order = sorted(range(len(kl)), key=lambda d: (-float(kl[d]), d))
    if mask is None:
        return order
    keep = mask.detach().cpu().bool()
    return [d for d in order if bool(keep[d])]


def dimensions_by_information(
    kl_per_dim: Tensor | None, variance: Tensor, mask: Tensor | None = None
) -> list[int]:
    """`dimensions_by_kl` where the KL per dimension exists; for a model without one (a
    learned prior, a flow posterior) the dimensions ordered by the variance of their
    posterior mean over the data, the quantity that defines an active unit."""
    return dimensions_by_kl(variance if kl_per_dim is None else kl_per_dim, mask)
