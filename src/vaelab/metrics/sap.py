"""SAP, the Separated Attribute Predictability score (Kumar et al. 2018, "Variational
Inference of Disentangled Latent Concepts from Unlabeled Observations").

For every code dimension d and factor k, a classifier that sees only code d predicts
factor k; its test accuracy fills a score matrix S (D, K). SAP is the mean over
factors of the gap between the two best codes, S's largest minus its second largest
entry in each column: high when each factor is predictable from one code and not from
any other.

Protocol choices where the paper leaves room, as disentanglement_lib makes them
(Locatello et al. 2019): factors are discrete level indices, the classifier is a
linear SVM (`LinearSVC(C=0.01, class_weight="balanced")`) on the one code, trained on
one sample (10,000 points in the study) and scored on another (5,000). Such a
classifier splits a single code into intervals poorly, so SAP stays well below 1 even
for codes equal to the factors when factors have many levels (0.24 on dSprites' factor
sizes, 0.61 on three factors of 3 to 5 levels). `continuous_factors=True` scores with
the squared correlation of code and factor on the training sample instead, the
paper's choice for continuous factors.
"""

from __future__ import annotations

import numpy as np

from vaelab.metrics.disentanglement import check_pair


def sap_score_matrix(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    continuous_factors: bool = False,
) -> np.ndarray:
    """Test accuracy (D, K) of predicting each factor from each single code dimension
    (with `continuous_factors`, the squared correlation on the training sample).

    A factor with one level in the training sample is predicted perfectly by every
    code (accuracy of always saying that level), so it adds no gap to SAP."""
    from sklearn.svm import LinearSVC

    n_codes, n_factors = codes_train.shape[1], factors_train.shape[1]
    scores = np.zeros((n_codes, n_factors))
    if continuous_factors:
        return _squared_correlations(codes_train, factors_train)
    for k in range(n_factors):
        levels = np.unique(factors_train[:, k])
        for d in range(n_codes):
            if len(levels) < 2:
                scores[d, k] = float(np.mean(factors_test[:, k] == levels[0]))
                continue
            classifier = LinearSVC(C=0.01, class_weight="balanced")
            classifier.fit(codes_train[:, d : d + 1], factors_train[:, k])
            predicted = classifier.predict(codes_test[:, d : d + 1])
            scores[d, k] = float(np.mean(predicted == factors_test[:, k]))
    return scores


def _squared_correlations(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """cov(z_d, g_k)² / (var z_d var g_k) per code and factor (D, K); 0 for a code that
    does not move (variance below 1e-12) or a constant factor."""
    codes, factors = np.asarray(codes, np.float64), np.asarray(factors, np.float64)
    dz, dg = codes - codes.mean(0), factors - factors.mean(0)
    n = len(codes) - 1
    cov = dz.T @ dg / n
    var_z, var_g = (dz**2).sum(0) / n, (dg**2).sum(0) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = cov**2 / (var_z[:, None] * var_g[None, :])
    scores[(var_z <= 1e-12)[:, None] | (var_g == 0)[None, :]] = 0.0
    squared: np.ndarray = np.nan_to_num(scores)
    return squared


def sap(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    continuous_factors: bool = False,
) -> dict[str, float]:
    """SAP of codes (N, D) against factor indices (N, K), trained on the first pair and
    scored on the second. Returns {'sap': mean gap, 'sap/<k>': the gap per factor};
    with a single code the second best is 0."""
    check_pair(codes_train, factors_train)
    check_pair(codes_test, factors_test)
    scores = sap_score_matrix(
        codes_train, factors_train, codes_test, factors_test, continuous_factors
    )
    if scores.shape[0] == 1:
        scores = np.concatenate([scores, np.zeros_like(scores)])
    top = np.sort(scores, axis=0)[::-1]
    gaps = top[0] - top[1]
    return {"sap": float(gaps.mean()), **{f"sap/{k}": float(g) for k, g in enumerate(gaps)}}
