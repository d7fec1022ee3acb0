"""Disentanglement scores against known factors of variation: MIG, FactorVAE, DCI.

Each follows disentanglement_lib (Locatello et al. 2019, "Challenging Common
Assumptions in the Unsupervised Learning of Disentangled Representations"), the
protocol most papers since report, so that the numbers compare:

- codes are the posterior means of observations sampled uniformly from the
  ground-truth factor grid (`sample_factors`);
- factors are integer level indices (N, K), codes are floats (N, D);
- MIG: codes discretised into 20 equal-width bins, discrete mutual information with
  every factor, gap between the two most informative codes normalised by the
  factor's entropy, averaged over factors (Chen et al. 2018);
- FactorVAE score: a majority-vote classifier that predicts which factor was held
  fixed from the code dimension of least normalised variance (Kim & Mnih 2018);
- DCI disentanglement: importances from one gradient-boosted tree classifier per
  factor, 1 - entropy of each code's importance over factors, weighted by the code's
  share of importance (Eastwood & Williams 2018).

Everything here is a plain function on numpy arrays; the caller renders observations
and encodes them (see `vaelab.eval`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

#: Bins per code for MIG, as in disentanglement_lib.
MIG_BINS = 20
#: FactorVAE: dimensions whose global standard deviation is below this are pruned
#: (the value in disentanglement_lib's published study configs).
FACTOR_VAE_PRUNE = 0.05


def sample_factors(factor_sizes: Sequence[int], n: int, rng: np.random.RandomState) -> np.ndarray:
    """`n` factor index vectors (n, K) drawn uniformly and independently per factor."""
    return np.stack([rng.randint(size, size=n) for size in factor_sizes], axis=1)


def histogram_discretize(codes: np.ndarray, n_bins: int = MIG_BINS) -> np.ndarray:
    """Each code column into `n_bins` equal-width bins over its own range: (N, D) ints."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.zeros(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        edges = np.histogram(codes[:, d], n_bins)[1][:-1]
        out[:, d] = np.digitize(codes[:, d], edges)
    return out


def mutual_information(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Discrete mutual information in nats between every code and factor column: (D, K)."""
    from sklearn.metrics import mutual_info_score

    return np.array(
        [
            [mutual_info_score(factors[:, k], codes[:, d]) for k in range(factors.shape[1])]
            for d in range(codes.shape[1])
        ]
    )


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """Entropy in nats of each factor column's empirical distribution: (K,)."""
    entropies = []
    for k in range(factors.shape[1]):
        p = np.unique(factors[:, k], return_counts=True)[1] / len(factors)
        entropies.append(float(-(p * np.log(p)).sum()))
    return np.array(entropies)


def discretised_information(
    codes: np.ndarray, factors: np.ndarray, n_bins: int = MIG_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """The matrix MIG reads: I(z_d; v_k) of histogram-discretised codes (N, D) with
    factor indices (N, K), as (D, K), and each factor's entropy H(v_k), as (K,); nats."""
    codes, factors = np.asarray(codes), np.asarray(factors)
    check_pair(codes, factors)
    mi = mutual_information(histogram_discretize(codes, n_bins), factors)
    return mi, discrete_entropy(factors)


def mig(codes: np.ndarray, factors: np.ndarray, n_bins: int = MIG_BINS) -> dict[str, float]:
    """Mutual Information Gap of codes (N, D) against factor indices (N, K).

    Per factor: (largest - second largest mutual information with a discretised code)
    / the factor's entropy. Returns {'mig': mean over factors, 'mig/<k>': per factor}.
    Factors that take a single value in the sample (zero entropy) are left out; with
    one code the second largest is 0.
    """
    mi, entropy = discretised_information(codes, factors, n_bins)
    if mi.shape[0] == 1:
        mi = np.concatenate([mi, np.zeros_like(mi)])
    top = np.sort(mi, axis=0)[::-1]
    gaps = {}
    for k in range(factors.shape[1]):
        if entropy[k] > 0:
            gaps[f"mig/{k}"] = float((top[0, k] - top[1, k]) / entropy[k])
    if not gaps:
        raise ValueError("every factor is constant in the sample; MIG is undefined")
    return {"mig": float(np.mean(list(gaps.values()))), **gaps}


def factor_vae_batches(
    factor_sizes: Sequence[int], n_votes: int, batch_size: int, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """The FactorVAE protocol's samples: per vote, a factor index to fix and `batch_size`
    factor vectors that share that factor's value.

    Returns (fixed (n_votes,), factors (n_votes, batch_size, K)), drawn in
    disentanglement_lib's order (the fixed index, then the batch, per vote).
    """
    fixed = np.zeros(n_votes, dtype=np.int64)
    factors = np.zeros((n_votes, batch_size, len(factor_sizes)), dtype=np.int64)
    for v in range(n_votes):
        fixed[v] = rng.randint(len(factor_sizes))
        batch = sample_factors(factor_sizes, batch_size, rng)
        batch[:, fixed[v]] = batch[0, fixed[v]]
        factors[v] = batch
    return fixed, factors


def factor_vae_votes(
    codes: np.ndarray,
    fixed: np.ndarray,
    global_variance: np.ndarray,
    active: np.ndarray,
    n_factors: int,
) -> np.ndarray:
    """Vote counts (K, D): for each batch of codes (n_votes, batch, D), the active code
    dimension of least variance relative to its global variance votes for the factor
    that was fixed."""
    votes = np.zeros((n_factors, codes.shape[-1]), dtype=np.int64)
    active_index = np.flatnonzero(active)
    local = np.var(codes, axis=1, ddof=1)[:, active_index]
    choice = active_index[np.argmin(local / global_variance[active_index], axis=1)]
    np.add.at(votes, (fixed, choice), 1)
    return votes


def factor_vae_score(
    encode: Callable[[np.ndarray], np.ndarray],
    factor_sizes: Sequence[int],
    rng: np.random.RandomState,
    batch_size: int = 64,
    n_train: int = 10000,
    n_eval: int = 5000,
    n_variance: int = 10000,
    prune_threshold: float = FACTOR_VAE_PRUNE,
    variance_codes: np.ndarray | None = None,
) -> dict[str, float]:
    """The FactorVAE disentanglement metric (Kim & Mnih 2018), as disentanglement_lib.

    Args:
        encode: factor indices (n, K) -> codes (n, D): renders the observations and
            returns their posterior means.
        factor_sizes: levels per factor.
        rng: the random state every sample is drawn from.
        batch_size: observations per vote (64 in the paper).
        n_train: votes that train the majority-vote classifier.
        n_eval: votes that score it.
        n_variance: samples for the global variance that normalises each dimension.
        prune_threshold: dimensions with global standard deviation below this take no
            part (collapsed dimensions would otherwise win every vote).
        variance_codes: codes of i.i.d. observations to take the global variance from
            (a sample shared with other metrics); None draws `n_variance` of them.

    Returns {'factor_vae': eval accuracy, 'factor_vae/train_accuracy',
    'factor_vae/active_dims'}; all 0 when no dimension survives pruning.
    """
    n_factors = len(factor_sizes)
    global_codes = (
        encode(sample_factors(factor_sizes, n_variance, rng))
        if variance_codes is None
        else variance_codes
    )
    global_variance = np.var(global_codes, axis=0, ddof=1)
    active = np.sqrt(global_variance) >= prune_threshold
    if not active.any():
        return {"factor_vae": 0.0, "factor_vae/train_accuracy": 0.0, "factor_vae/active_dims": 0}
    dims = global_codes.shape[1]

    def votes(n_votes: int) -> np.ndarray:
        fixed, factors = factor_vae_batches(factor_sizes, n_votes, batch_size, rng)
        codes = encode(factors.reshape(-1, n_factors)).reshape(n_votes, batch_size, dims)
        return factor_vae_votes(codes, fixed, global_variance, active, n_factors)

    train_votes = votes(n_train)
    classifier = np.argmax(train_votes, axis=0)  # the factor each dimension predicts
    columns = np.arange(dims)
    train_accuracy = train_votes[classifier, columns].sum() / train_votes.sum()
    eval_votes = votes(n_eval)
    eval_accuracy = eval_votes[classifier, columns].sum() / eval_votes.sum()
    return {
        "factor_vae": float(eval_accuracy),
        "factor_vae/train_accuracy": float(train_accuracy),
        "factor_vae/active_dims": int(active.sum()),
    }


def gbt_importance(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    n_estimators: int = 100,
    seed: int = 0,
    n_jobs: int = -1,
) -> tuple[np.ndarray, float, float]:
    """Importance matrix (D, K) from one sklearn GradientBoostingClassifier per factor,
    and the mean train and test accuracy of those classifiers (DCI informativeness);
    `n_jobs` processes fit them (-1: one per CPU, at most one per factor)."""
    from joblib import Parallel, delayed
    from sklearn.ensemble import GradientBoostingClassifier

    def one_factor(k: int) -> tuple[np.ndarray, float, float]:
        if len(np.unique(factors_train[:, k])) < 2:
            # One level in the sample: nothing to predict, no code is important for it.
            test_acc = float(np.mean(factors_test[:, k] == factors_train[0, k]))
            return np.zeros(codes_train.shape[1]), 1.0, test_acc
        model = GradientBoostingClassifier(n_estimators=n_estimators, random_state=seed)
        model.fit(codes_train, factors_train[:, k])
        return (
            np.abs(model.feature_importances_),
            float(np.mean(model.predict(codes_train) == factors_train[:, k])),
            float(np.mean(model.predict(codes_test) == factors_test[:, k])),
        )

    # One classifier per factor, independent: fitted in parallel processes (the trees of
    # one classifier are sequential). Results come back in factor order.
    n_factors = factors_train.shape[1]
    jobs = min(n_factors, n_jobs if n_jobs > 0 else (os.cpu_count() or 1))
    fitted = Parallel(n_jobs=jobs)(delayed(one_factor)(k) for k in range(n_factors))
    importance = np.stack([f[0] for f in fitted], axis=1)
    return (
        importance,
        float(np.mean([f[1] for f in fitted])),
        float(np.mean([f[2] for f in fitted])),
    )


def _normalised_entropy(p: np.ndarray, axis: int) -> np.ndarray:
    """Entropy along `axis` of p normalised to sum 1 there, in base p.shape[axis] (so it
    lies in [0, 1]); scipy.stats.entropy(p, base=n) as disentanglement_lib uses it."""
    n = p.shape[axis]
    if n < 2:
        return np.zeros(np.delete(p.shape, axis))
    p = p / p.sum(axis=axis, keepdims=True)
    entropy: np.ndarray = -(p * np.log(p)).sum(axis=axis) / np.log(n)
    return entropy


def dci_from_importance(importance: np.ndarray) -> dict[str, float]:
    """DCI disentanglement and completeness of an importance matrix (D codes, K factors)."""
    # 1e-11: disentanglement_lib's guard that keeps codes with no importance finite.
    per_code = 1.0 - _normalised_entropy(importance + 1e-11, axis=1)
    per_factor = 1.0 - _normalised_entropy(importance + 1e-11, axis=0)
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    code_share = weights.sum(axis=1) / weights.sum()
    factor_share = weights.sum(axis=0) / weights.sum()
    return {
        "dci": float(np.sum(per_code * code_share)),
        "dci/completeness": float(np.sum(per_factor * factor_share)),
    }


def dci(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    n_estimators: int = 100,
    seed: int = 0,
) -> dict[str, float]:
    """DCI (Eastwood & Williams 2018) with gradient-boosted trees, as disentanglement_lib.

    Returns {'dci': disentanglement, 'dci/completeness', 'dci/informativeness_train',
    'dci/informativeness_test'} (informativeness: mean classifier accuracy).
    """
    check_pair(codes_train, factors_train)
    check_pair(codes_test, factors_test)
    importance, train_acc, test_acc = gbt_importance(
        codes_train, factors_train, codes_test, factors_test, n_estimators, seed
    )
    return {
        **dci_from_importance(importance),
        "dci/informativeness_train": train_acc,
        "dci/informativeness_test": test_acc,
    }


def check_pair(codes: np.ndarray, factors: np.ndarray) -> None:
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        raise ValueError(
            f"expected codes (N, D) and factors (N, K) with the same N, got "
            f"{codes.shape} and {factors.shape}"
        )
    if len(codes) < 2:
        raise ValueError(f"need at least 2 samples, got {len(codes)}")


def dimension_factors(
    codes: np.ndarray, factors: np.ndarray, n_bins: int = MIG_BINS
) -> list[tuple[int, float]]:
    """For each code dimension of codes (N, D): the factor of factors (N, K) it is most
    informative about and its share of that factor's information, I(z_d; v_k) / H(v_k),
    from the matrix MIG uses (histogram-discretised codes). Constant factors are left
    out; a dimension informative about none gets (-1, 0.0)."""
    mi, entropy = discretised_information(codes, factors, n_bins)
    share = np.where(entropy > 0, mi / np.where(entropy > 0, entropy, 1.0), 0.0)
    best = []
    for d in range(share.shape[0]):
        k = int(np.argmax(share[d]))
        best.append((k, float(share[d, k])) if share[d, k] > 0 else (-1, 0.0))
    return best
