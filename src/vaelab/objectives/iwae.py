"""IWAE (Burda et al. 2016, "Importance weighted autoencoders") as the training loss.

    −L_k = −log (1/k) Σ_s p(x, z_s) / q(z_s|x),   z_s ~ q(z|x),

per example, averaged over the batch: a bound on −log p(x) that tightens with k. At
k = 1 it is the ELBO; vaelab then uses the ELBO's analytic KL (as `test/nll_iwae` does
at k = 1), so `objective=iwae objective.k=1` trains exactly as `objective=beta_vae`.
Logged: `iwae_bound`, the batch mean of −L_k (≤ nelbo in expectation).

Memory: decoded all at once, the k·B samples and their graph are held for the backward
pass, k times the ELBO's. With `max_decoded`, the samples are decoded at most that many
latents at a time under activation checkpointing (`torch.utils.checkpoint`): only each
chunk's log-likelihoods are kept, and the backward pass decodes each chunk again, so
memory is that of `max_decoded` decoded examples whatever k is, for one more decoder
forward pass per chunk. The bound and its gradient are the same either way. The first
sample of each example is the batch's own z.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from vaelab.config.constraints import PositiveInt
from vaelab.objectives.base import LatentBatch, Objective, ObjectiveOutput, gaussian_log_density


def iwae_bound(batch: LatentBatch, k: int, max_decoded: int | None = None) -> Tensor:
    """−L_k per example (B,), k ≥ 2, from z (the first sample) and k − 1 fresh ones;
    `max_decoded`: latents decoded per pass (see the module docstring)."""
    if batch.draws is not None:
        return _iwae_bound_drawn(batch, k, max_decoded)
    std = torch.exp(0.5 * batch.log_var)
    eps = torch.randn((k - 1, *batch.mean.shape), dtype=std.dtype, device=std.device)
    extra = batch.mean + std * eps  # (k - 1, B, D)
    log_px_extra = _extra_log_likelihoods(batch, extra, max_decoded)
    z = torch.cat([batch.z.unsqueeze(0), extra])  # (k, B, D)
    log_px = torch.cat([batch.log_px.unsqueeze(0), log_px_extra])
    zeros = torch.zeros_like(batch.mean)
    log_pz = gaussian_log_density(z, zeros, zeros).sum(-1)
    log_qz = gaussian_log_density(z, batch.mean, batch.log_var).sum(-1)
    return math.log(k) - torch.logsumexp(log_px + log_pz - log_qz, dim=0)


def _iwae_bound_drawn(batch: LatentBatch, k: int, max_decoded: int | None) -> Tensor:
    """`iwae_bound` for a learned prior or a flow posterior: the draws and densities
    come from the model (`LatentBatch.draws`)."""
    assert batch.draws is not None and batch.log_qz_x is not None
    extra, log_q_extra = batch.draws.draw(k - 1)
    log_px_extra = _extra_log_likelihoods(batch, extra, max_decoded)
    z = torch.cat([batch.z.unsqueeze(0), extra])
    log_px = torch.cat([batch.log_px.unsqueeze(0), log_px_extra])
    log_qz = torch.cat([batch.log_qz_x.unsqueeze(0), log_q_extra])
    return math.log(k) - torch.logsumexp(log_px + batch.draws.log_prior(z) - log_qz, dim=0)


def _extra_log_likelihoods(batch: LatentBatch, z: Tensor, max_decoded: int | None) -> Tensor:
    """log p(x|z) for samples z (S, B, D): (S, B), decoded whole or `max_decoded`
    latents at a time (whole samples of the batch per chunk, at least one)."""
    s, b, d = z.shape

    def log_px(samples: Tensor) -> Tensor:  # (n, B, D) -> (n, B)
        n = samples.shape[0]
        targets = batch.x.unsqueeze(0).expand(n, *batch.x.shape).reshape(-1, *batch.x.shape[1:])
        return batch.log_likelihood(samples.reshape(n * b, d), targets).view(n, b)

    if max_decoded is None or s * b <= max_decoded:
        return log_px(z)
    per_chunk = max(1, max_decoded // b)
    parts = torch.split(z, per_chunk)
    return torch.cat([checkpoint(log_px, part, use_reentrant=False) for part in parts])


class IWAE(Objective):
    """−L_k with `k` importance samples per example (Burda et al. 2016: k = 5, 50);
    `max_decoded`: at most this many latents decoded per pass (None: all at once)."""

    terms = frozenset({"beta", "iwae_bound"})

    def __init__(self, k: PositiveInt = 5, max_decoded: PositiveInt | None = None) -> None:
        super().__init__()
        self.k = int(k)
        self.max_decoded = max_decoded

    def forward(self, batch: LatentBatch) -> ObjectiveOutput:
        # k = 1: the ELBO, summed in the order BetaVAE sums it
        if self.k == 1:
            loss = batch.recon_mean + batch.kl_mean
        else:
            loss = iwae_bound(batch, self.k, self.max_decoded).mean()
        return ObjectiveOutput(loss, {"beta": 1.0, "iwae_bound": loss.detach()})
