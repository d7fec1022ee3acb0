"""Likelihood bounds: the importance-weighted bound (IWAE) and bits per dimension.

Units follow docs/design.md: nats per example, summed over every data dimension. Noise
streams fixed per example (so that a bound does not depend on batching) come from
`vaelab.models.noise`.

The IWAE bound of Burda et al. (2016) with k samples z_1..z_k ~ q(z|x) is

    log p(x) >= L_k = E[ log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x) ],

L_1 is the ELBO, L_k rises with k and tends to log p(x). `iwae_nll` returns the
single-draw estimate of -L_k per example, the number papers report as "NLL".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, Normal

from vaelab.models.noise import NoiseStream

#: z0 (S, B, D) -> (z, log|det ∂z/∂z0|) of a flow posterior.
Flow = Callable[[Tensor], tuple[Tensor, Tensor]]


def iwae_log_weights(
    x: Tensor,
    posterior: Independent[Normal],
    decode: Callable[[Tensor], Distribution],
    z: Tensor,
    prior: Distribution | None = None,
    flow: Flow | None = None,
    log_prior: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """log w = log p(x|z) + log p(z) - log q(z|x) for samples z (S, B, D): shape (S, B).

    `decode` maps latents (N, D) to p(x|z) with batch shape (N,) and one whole example
    as its event; the S * B latents go through it in one call. With `flow`, `z` are the
    draws of `posterior` before the flow, and log q(z|x) = log q0(z0|x) − log|det|.
    `log_prior` (a learned prior's log-density) stands in for `prior` when given.
    """
    s, b, d = z.shape
    q: Distribution = posterior  # Independent.log_prob carries no annotations in torch
    log_q = q.log_prob(z)
    if flow is not None:
        z, log_det = flow(z)
        log_q = log_q - log_det
    if log_prior is None:
        log_prior = (prior if prior is not None else standard_normal(d, z)).log_prob
    flat = decode(z.reshape(s * b, d))
    targets = x.unsqueeze(0).expand(s, *x.shape).reshape(s * b, *x.shape[1:])
    log_px = flat.log_prob(targets).view(s, b)
    return log_px + log_prior(z) - log_q


def iwae_nll(
    x: Tensor,
    posterior: Independent[Normal],
    decode: Callable[[Tensor], Distribution],
    k: int,
    max_decoded: int = 4096,
    noise: NoiseStream | None = None,
    prior: Distribution | None = None,
    flow: Flow | None = None,
    log_prior: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """-L_k per example (B,), in nats: the IWAE bound on -log p(x) with `k` samples.

    Args:
        x: a batch of examples (B, ...).
        posterior: q(z|x), batch (B,), event (D,), reparameterised as mean + std * eps.
        decode: latents (N, D) -> p(x|z) with batch (N,).
        k: importance samples per example (k = 1: the single-sample ELBO).
        max_decoded: latents decoded per pass. The k samples are taken in chunks of
            max(1, max_decoded // B) per example and combined by a running
            log-sum-exp, so memory stays that of `max_decoded` decoded examples
            whatever k is.
        noise: the standard normal draws to use (see
            `vaelab.models.noise.per_example_noise`); default fresh draws from the global
            generator.
        prior: p(z); default the standard normal.
        flow: a flow posterior's map z0 -> (z, log|det|), applied to the draws of
            `posterior` (its base Gaussian).
        log_prior: log p(z) of a learned prior, in place of `prior`.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    b = x.shape[0]
    mean, std = posterior.base_dist.mean, posterior.base_dist.stddev
    chunk = max(1, max_decoded // max(b, 1))
    total = torch.full((b,), -math.inf, dtype=torch.float64, device=x.device)
    done = 0
    while done < k:
        n = min(chunk, k - done)
        eps = noise(n) if noise is not None else torch.randn(b, n, mean.shape[-1])
        z = mean + std * eps.to(mean).transpose(0, 1)  # (n, B, D)
        log_w = iwae_log_weights(x, posterior, decode, z, prior, flow, log_prior)
        # float64 accumulation: with large k the sum of many weights near the maximum
        # loses nothing to rounding.
        total = torch.logaddexp(total, torch.logsumexp(log_w.double(), dim=0))
        done += n
    return (math.log(k) - total).to(x.dtype if x.is_floating_point() else torch.float32)


def standard_normal(dim: int, like: Tensor) -> Independent[Normal]:
    """N(0, I) over `dim` latents, on the device and dtype of `like`."""
    zeros = torch.zeros(dim, dtype=like.dtype, device=like.device)
    return Independent(Normal(zeros, torch.ones_like(zeros), validate_args=False), 1)


def bits_per_dim(nll_nats: float | Tensor, data_shape: Sequence[int] | int) -> float | Tensor:
    """A negative log-likelihood in nats per example as bits per data dimension.

    Meaningful as a code length only for a likelihood that is discrete over the data's
    levels (Bernoulli on binary data, a discretised logistic on 8-bit data).
    """
    dims = data_shape if isinstance(data_shape, int) else math.prod(data_shape)
    return nll_nats / (dims * math.log(2))
