"""The unsupervised scores of disentanglement_lib (Locatello et al. 2019): statistics
of the representation alone, no factors needed.

- Gaussian total correlation: the TC of a Gaussian with the codes' covariance Σ,
  ½ (Σ_d log Σ_dd − log det Σ), in nats; 0 exactly when the codes are uncorrelated.
- Gaussian Wasserstein correlation: the squared 2-Wasserstein distance between that
  Gaussian and the one with only Σ's diagonal, 2 tr Σ − 2 tr (Σ diag(Σ))^½, and the
  same divided by tr Σ (`_norm`).
- Mutual information score: the mean discrete mutual information between every pair
  of distinct codes, each discretised into 20 equal-width bins, in nats.

As in the study: codes are the posterior means of 10,000 observations sampled
uniformly from the factor grid; Σ is the unbiased sample covariance. Active units, the
fourth unsupervised number, is `vaelab.metrics.latents.active_units`.

A code that never varies (a collapsed posterior, a dead unit) is independent of the
others and adds nothing to either Gaussian score, so both are taken over the codes
that vary; codes none of which vary score 0 (`_norm` too: there is no correlation to
normalise), where the closed forms would divide by zero.
"""

from __future__ import annotations

import numpy as np

from vaelab.metrics.disentanglement import MIG_BINS, histogram_discretize, mutual_information


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """½ (Σ_d log Σ_dd − log det Σ) of a covariance matrix (D, D), in nats."""
    return float(0.5 * (np.log(np.diag(cov)).sum() - np.linalg.slogdet(cov)[1]))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    """2 tr Σ − 2 tr (Σ diag(Σ))^½ of a covariance matrix (D, D)."""
    from scipy.linalg import sqrtm

    root = sqrtm(cov * np.diag(cov)[None, :])
    return float(2 * np.trace(cov) - 2 * np.trace(root).real)


def unsupervised_scores(codes: np.ndarray, n_bins: int = MIG_BINS) -> dict[str, float]:
    """The four scores of codes (N, D), keyed as in eval.json."""
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or len(codes) < 2:
        raise ValueError(f"expected codes (N, D) with N >= 2, got {codes.shape}")
    cov = np.atleast_2d(np.cov(codes, rowvar=False))
    varying = np.diag(cov) > 0
    total_correlation = wasserstein = wasserstein_norm = 0.0
    if varying.any():
        cov = cov[np.ix_(varying, varying)]
        total_correlation = gaussian_total_correlation(cov)
        wasserstein = gaussian_wasserstein_correlation(cov)
        wasserstein_norm = wasserstein / float(np.trace(cov))
    d = codes.shape[1]
    binned = histogram_discretize(codes, n_bins)
    mi = mutual_information(binned, binned)
    np.fill_diagonal(mi, 0.0)
    return {
        "gaussian_total_correlation": total_correlation,
        "gaussian_wasserstein_correlation": wasserstein,
        "gaussian_wasserstein_correlation_norm": wasserstein_norm,
        "mutual_info_score": float(mi.sum() / (d * d - d)) if d > 1 else 0.0,
    }
