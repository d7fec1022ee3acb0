"""Modularity and explicitness (Ridgeway & Mozer 2018, "Learning Deep Disentangled
Embeddings With the F-Statistic Loss").

- Modularity: a code is modular when it carries information about one factor only.
  With m_dk the mutual information of code d and factor k and θ_d = max_k m_dk, each
  code scores 1 − Σ_{k ≠ argmax} m_dk² / (θ_d² (K − 1)); the score is the mean over
  codes (a code with no information about any factor scores 0).
- Explicitness: how well a linear classifier on the whole code predicts each factor,
  as the ROC AUC of its predicted class probabilities (one-vs-rest, averaged over
  classes), averaged over factors.

Protocol choices, as disentanglement_lib makes them (Locatello et al. 2019): mutual
information from codes discretised into 20 equal-width bins (`histogram_discretize`),
factors as discrete level indices, codes standardised with the training sample's mean
and standard deviation before an sklearn `LogisticRegression` (its defaults), 10,000
training and 5,000 test points in the study. Where disentanglement_lib divides by a
zero standard deviation (a code that never moves), such a code is left at 0 instead;
the classifier is given enough iterations to converge.
"""

from __future__ import annotations

import numpy as np

from vaelab.metrics.disentanglement import (
    MIG_BINS,
    check_pair,
    histogram_discretize,
    mutual_information,
)


def modularity_from_mutual_information(mi: np.ndarray) -> float:
    """Mean modularity over codes of a mutual information matrix (D codes, K factors)."""
    squared = np.square(np.asarray(mi, dtype=np.float64))
    largest = squared.max(axis=1)
    rest = squared.sum(axis=1) - largest
    with np.errstate(divide="ignore", invalid="ignore"):
        per_code = 1.0 - rest / (largest * max(squared.shape[1] - 1, 1))
    per_code[largest == 0] = 0.0
    return float(per_code.mean())


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both samples scaled by the training sample's per-code mean and standard
    deviation (a constant code's deviation taken as 1)."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def one_vs_rest_auc(labels: np.ndarray, probabilities: np.ndarray, classes: np.ndarray) -> float:
    """ROC AUC of each class's probability against "is this class", averaged over the
    classes that occur and do not make up the whole sample (sklearn's macro average)."""
    from sklearn.metrics import roc_auc_score

    scores = []
    for c, level in enumerate(classes):
        positive = labels == level
        if 0 < positive.sum() < len(labels):
            scores.append(roc_auc_score(positive, probabilities[:, c]))
    return float(np.mean(scores)) if scores else 1.0


def explicitness(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-factor explicitness (K,) on the training and the test sample."""
    from sklearn.linear_model import LogisticRegression

    x_train, x_test = standardise(codes_train, codes_test)
    train, test = np.ones(factors_train.shape[1]), np.ones(factors_train.shape[1])
    for k in range(factors_train.shape[1]):
        if len(np.unique(factors_train[:, k])) < 2:
            continue  # one level: predicted perfectly by a constant
        classifier = LogisticRegression(max_iter=1000).fit(x_train, factors_train[:, k])
        classes = classifier.classes_
        train[k] = one_vs_rest_auc(factors_train[:, k], classifier.predict_proba(x_train), classes)
        test[k] = one_vs_rest_auc(factors_test[:, k], classifier.predict_proba(x_test), classes)
    return train, test


def modularity_explicitness(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    n_bins: int = MIG_BINS,
) -> dict[str, float]:
    """{'modularity', 'explicitness' (test), 'explicitness/train'} of codes (N, D)
    against factor indices (N, K); modularity from the training sample."""
    check_pair(codes_train, factors_train)
    check_pair(codes_test, factors_test)
    mi = mutual_information(histogram_discretize(codes_train, n_bins), factors_train)
    train, test = explicitness(codes_train, factors_train, codes_test, factors_test)
    return {
        "modularity": modularity_from_mutual_information(mi),
        "explicitness": float(test.mean()),
        "explicitness/train": float(train.mean()),
    }
