"""The β-VAE disentanglement score (Higgins et al. 2017, "β-VAE: Learning Basic
Visual Concepts with a Constrained Variational Framework").

Each point of the score is one factor index k and two batches of observations that
share the value of factor k and differ, independently, in everything else; its
feature is the mean over the batch of |z(x₁) − z(x₂)| per code. A linear classifier
learns to name k from the feature; the score is its accuracy on fresh points.

Protocol choices, as disentanglement_lib makes them (Locatello et al. 2019): codes are
posterior means, batches of 64, 10,000 training and 5,000 evaluation points, the
factor k uniform over factors, the other factors of both batches drawn uniformly and
independently, and the classifier sklearn's `LogisticRegression` (given enough
iterations to converge). That is 2 × 64 × 15,000 ≈ 1.9 million encoder passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from vaelab.metrics.disentanglement import sample_factors


def beta_vae_batches(
    factor_sizes: Sequence[int], n_points: int, batch_size: int, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k (n,), first (n, batch, K), second (n, batch, K)): per point the shared factor
    and two batches of factor indices that agree on it, drawn in disentanglement_lib's
    order (k, the first batch, the second)."""
    n_factors = len(factor_sizes)
    shared = np.zeros(n_points, dtype=np.int64)
    first = np.zeros((n_points, batch_size, n_factors), dtype=np.int64)
    second = np.zeros_like(first)
    for p in range(n_points):
        shared[p] = rng.randint(n_factors)
        first[p] = sample_factors(factor_sizes, batch_size, rng)
        second[p] = sample_factors(factor_sizes, batch_size, rng)
        second[p, :, shared[p]] = first[p, :, shared[p]]
    return shared, first, second


def beta_vae_features(
    encode: Callable[[np.ndarray], np.ndarray], first: np.ndarray, second: np.ndarray
) -> np.ndarray:
    """Mean |z(x₁) − z(x₂)| over each pair of batches: (n, batch, K) twice -> (n, D)."""
    n, batch, k = first.shape
    codes_1 = encode(first.reshape(n * batch, k)).reshape(n, batch, -1)
    codes_2 = encode(second.reshape(n * batch, k)).reshape(n, batch, -1)
    features: np.ndarray = np.abs(codes_1 - codes_2).mean(axis=1)
    return features


def beta_vae_score(
    encode: Callable[[np.ndarray], np.ndarray],
    factor_sizes: Sequence[int],
    rng: np.random.RandomState,
    batch_size: int = 64,
    n_train: int = 10000,
    n_eval: int = 5000,
) -> dict[str, float]:
    """{'beta_vae': evaluation accuracy, 'beta_vae/train_accuracy'}.

    Args:
        encode: factor indices (n, K) -> codes (n, D).
        factor_sizes: levels per factor.
        rng: the random state every sample is drawn from.
        batch_size: observations per batch.
        n_train: training points (pairs of batches).
        n_eval: evaluation points.
    """
    from sklearn.linear_model import LogisticRegression

    shared, first, second = beta_vae_batches(factor_sizes, n_train, batch_size, rng)
    train_x = beta_vae_features(encode, first, second)
    classifier = LogisticRegression(max_iter=1000, random_state=rng.randint(2**31))
    if len(np.unique(shared)) < 2:  # one factor: nothing to tell apart
        return {"beta_vae": 1.0, "beta_vae/train_accuracy": 1.0}
    classifier.fit(train_x, shared)
    train_accuracy = classifier.score(train_x, shared)
    shared, first, second = beta_vae_batches(factor_sizes, n_eval, batch_size, rng)
    eval_accuracy = classifier.score(beta_vae_features(encode, first, second), shared)
    return {"beta_vae": float(eval_accuracy), "beta_vae/train_accuracy": float(train_accuracy)}
