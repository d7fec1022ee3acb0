"""IRS, the Interventional Robustness Score (Suter et al. 2019, "Robustly Disentangled
Causal Mechanisms: Validating Deep Representations for Interventional Robustness").

For each factor k and each of its values v, the spread of every code over the examples
with factor k = v is measured as a high quantile of |z_d − E[z_d | g_k = v]|, averaged
over v: how much the code still moves when factor k is held fixed and the others vary.
Normalised by the code's largest deviation from its overall mean, 1 − that spread is
IRS_dk; each code scores its best factor, max_k IRS_dk, and the score is the average
over codes weighted by their largest deviation (codes that barely move count little).

Protocol choices, as disentanglement_lib makes them (Locatello et al. 2019): codes
that are constant over the sample are dropped (IRS 0 if none is left), factors are
discretised into 20 equal-width bins of their level indices like codes for MIG (so
factors with more than 20 levels are merged into 20 groups), the quantile is 0.99
(the paper's version is 1.0), 10,000 points in the study.
"""

from __future__ import annotations

import numpy as np

from vaelab.metrics.disentanglement import MIG_BINS, check_pair, histogram_discretize

#: disentanglement_lib's quantile of the within-group deviations.
IRS_QUANTILE = 0.99


def irs_matrix(
    codes: np.ndarray, factors: np.ndarray, quantile: float = IRS_QUANTILE
) -> tuple[np.ndarray, np.ndarray]:
    """IRS_dk (D, K) of codes (N, D) against discrete factors (N, K), and each code's
    largest deviation from its mean (D,), the normaliser and weight."""
    codes = np.asarray(codes, dtype=np.float64)
    largest = np.abs(codes - codes.mean(axis=0)).max(axis=0)
    spread = np.zeros((codes.shape[1], factors.shape[1]))
    for k in range(factors.shape[1]):
        values = np.unique(factors[:, k])
        for v in values:
            group = codes[factors[:, k] == v]
            spread[:, k] += np.quantile(np.abs(group - group.mean(axis=0)), quantile, axis=0)
        spread[:, k] /= len(values)
    return 1.0 - spread / largest[:, None], largest


def irs(
    codes: np.ndarray,
    factors: np.ndarray,
    quantile: float = IRS_QUANTILE,
    n_bins: int = MIG_BINS,
) -> dict[str, float]:
    """{'irs': the weighted score, 'irs/active_dims': codes that are not constant}."""
    codes, factors = np.asarray(codes, dtype=np.float64), np.asarray(factors)
    check_pair(codes, factors)
    active = codes.var(axis=0) > 0
    if not active.any():
        return {"irs": 0.0, "irs/active_dims": 0}
    matrix, largest = irs_matrix(codes[:, active], histogram_discretize(factors, n_bins), quantile)
    best = matrix.max(axis=1)
    score = np.average(best, weights=largest) if largest.sum() > 0 else best.mean()
    return {"irs": float(score), "irs/active_dims": int(active.sum())}
