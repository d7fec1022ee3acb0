"""Every disentanglement metric on codes whose answer is known: codes equal to the
factors, a permutation and rescaling of them, pure noise, a code that mixes two factors,
and dead dimensions beside the ideal codes; plus the unsupervised scores against
independent closed forms."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from vaelab.metrics import disentanglement as dis
from vaelab.metrics.beta_vae_score import beta_vae_batches, beta_vae_score
from vaelab.metrics.irs import irs
from vaelab.metrics.modularity import modularity_explicitness, modularity_from_mutual_information
from vaelab.metrics.sap import sap
from vaelab.metrics.unsupervised import (
    gaussian_total_correlation,
    gaussian_wasserstein_correlation,
    unsupervised_scores,
)

SIZES = (4, 5, 6)  # few levels: the linear classifiers of SAP and β-VAE can separate them
N_TRAIN, N_TEST = 2000, 1000

Codes = Callable[[np.ndarray], np.ndarray]


def identity(f: np.ndarray) -> np.ndarray:
    return f.astype(np.float64)


def permuted_rescaled(f: np.ndarray) -> np.ndarray:
    return f[:, [2, 0, 1]] * np.array([-3.0, 0.5, 7.0]) + np.array([1.0, -2.0, 0.25])


def noise(f: np.ndarray) -> np.ndarray:
    return np.random.RandomState(len(f) + int(f.sum())).randn(len(f), 3)


def mixed(f: np.ndarray) -> np.ndarray:
    """Codes 0 and 1 both mix factors 0 and 1 (a rotation); code 2 is factor 2."""
    f = f.astype(np.float64) / (np.array(SIZES) - 1)
    return np.stack([f[:, 0] + f[:, 1], f[:, 0] - f[:, 1], f[:, 2]], axis=1)


def with_dead_dims(f: np.ndarray) -> np.ndarray:
    return np.concatenate([identity(f), np.zeros((len(f), 2))], axis=1)


CASES: dict[str, Codes] = {
    "identity": identity,
    "permuted_rescaled": permuted_rescaled,
    "noise": noise,
    "mixed": mixed,
    "dead_dims": with_dead_dims,
}


def iid_scores(codes: Codes) -> dict[str, float]:
    """The metrics that read i.i.d. samples of the factor grid, on one shared sample."""
    rng = np.random.RandomState(0)
    f_train = dis.sample_factors(SIZES, N_TRAIN, rng)
    f_test = dis.sample_factors(SIZES, N_TEST, rng)
    z_train, z_test = codes(f_train), codes(f_test)
    return {
        **dis.mig(z_train, f_train),
        **dis.dci(z_train, f_train, z_test, f_test, n_estimators=20),
        **sap(z_train, f_train, z_test, f_test),
        **modularity_explicitness(z_train, f_train, z_test, f_test),
        **irs(z_train, f_train),
    }


def structured_scores(codes: Codes) -> dict[str, float]:
    """The two metrics that sample batches with one factor held fixed."""
    factor_vae = dis.factor_vae_score(
        codes,
        SIZES,
        np.random.RandomState(0),
        batch_size=32,
        n_train=300,
        n_eval=200,
        n_variance=2000,
    )
    beta = beta_vae_score(
        codes, SIZES, np.random.RandomState(0), batch_size=32, n_train=600, n_eval=300
    )
    return {**factor_vae, **beta}


@pytest.fixture(scope="module")
def scores() -> dict[str, dict[str, float]]:
    return {name: {**iid_scores(c), **structured_scores(c)} for name, c in CASES.items()}


HEADLINES = ("mig", "dci", "sap", "modularity", "explicitness", "irs", "factor_vae", "beta_vae")


def test_codes_equal_to_the_factors_score_as_the_metrics_define_perfect(scores) -> None:
    ideal = scores["identity"]
    assert ideal["mig"] == pytest.approx(1.0, abs=0.01)
    assert ideal["dci"] == pytest.approx(1.0, abs=1e-6)
    assert ideal["dci/completeness"] == pytest.approx(1.0, abs=1e-6)
    assert ideal["modularity"] == pytest.approx(1.0, abs=0.02)
    assert ideal["irs"] == pytest.approx(1.0, abs=1e-9)  # each code ignores the others' factors
    assert ideal["explicitness"] > 0.97
    assert ideal["factor_vae"] == 1.0
    assert ideal["beta_vae"] == 1.0
    # One linear SVM on one code cannot cut 4-6 levels into intervals: well below 1,
    # and far above the noise case.
    assert 0.35 < ideal["sap"] < 0.8
    assert ideal["sap"] > 20 * scores["noise"]["sap"]


def test_a_permutation_and_rescaling_of_the_codes_changes_no_score(scores) -> None:
    ideal, moved = scores["identity"], scores["permuted_rescaled"]
    for key in ("mig", "dci", "dci/completeness", "modularity", "irs", "factor_vae", "beta_vae"):
        assert moved[key] == pytest.approx(ideal[key], abs=0.01), key
    # The logistic regression sees standardised codes either way.
    assert moved["explicitness"] == pytest.approx(ideal["explicitness"], abs=0.01)
    # SAP's SVM is regularised (C = 0.01), so the scale of a code moves its accuracy a
    # little: the protocol's own property, not invariance lost here.
    assert moved["sap"] == pytest.approx(ideal["sap"], abs=0.03)


def test_pure_noise_scores_at_chance(scores) -> None:
    random = scores["noise"]
    assert random["mig"] < 0.02
    assert random["dci"] < 0.1
    assert random["sap"] < 0.03
    assert random["explicitness"] < 0.56  # AUC 0.5 is chance
    assert random["factor_vae"] < 0.5 and random["beta_vae"] < 0.5  # 3 factors: chance 1/3
    # Noise codes spread as much with a factor fixed as without: the 0.99 quantile of
    # |z − E z| over the largest |z − E z| (about 2.6 / 3.5 for a normal code).
    assert random["irs"] < 0.4
    # Modularity alone is no disentanglement score: noise knows every factor equally
    # little, a code's MI spread is about even, and it lands mid-range.
    assert random["modularity"] < scores["identity"]["modularity"] - 0.3


def test_a_code_that_mixes_two_factors_is_penalised_by_disentanglement_not_explicitness(
    scores,
) -> None:
    ideal, rotated = scores["identity"], scores["mixed"]
    for key in ("mig", "dci", "sap", "modularity", "irs", "factor_vae", "beta_vae"):
        assert rotated[key] < ideal[key] - 0.15, key
    # Factor 2 keeps its own code: its MIG and SAP gap stay those of the ideal code.
    assert rotated["mig/2"] == pytest.approx(ideal["mig/2"], abs=0.01)
    # The information is all there, linearly: explicitness stays near its ideal value.
    assert rotated["explicitness"] > 0.95


def test_dead_dimensions_change_only_the_scores_that_average_over_codes(scores) -> None:
    ideal, dead = scores["identity"], scores["dead_dims"]
    for key in ("mig", "dci", "sap", "irs", "factor_vae", "beta_vae", "explicitness"):
        assert dead[key] == pytest.approx(ideal[key], abs=0.01), key
    # Modularity is a mean over codes, and a code with no information scores 0.
    assert dead["modularity"] == pytest.approx(ideal["modularity"] * 3 / 5, abs=1e-9)
    assert dead["irs/active_dims"] == 3 and dead["factor_vae/active_dims"] == 3


def test_modularity_of_known_mutual_information() -> None:
    # Code 0 knows factor 0 only (1); code 1 knows factors 0 and 1 at 2 and 1: its
    # score is 1 − 1² / (2² · 2); code 2 knows nothing (0).
    mi = np.array([[0.3, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert modularity_from_mutual_information(mi) == pytest.approx((1 + (1 - 1 / 8) + 0) / 3)


def test_sap_with_continuous_factors_is_the_gap_of_squared_correlations() -> None:
    rng = np.random.RandomState(3)
    f = dis.sample_factors(SIZES, 3000, rng)
    codes = np.stack([f[:, 0] + 0.5 * rng.randn(3000), f[:, 0] + 2.0 * rng.randn(3000)], 1)
    result = sap(codes, f, codes, f, continuous_factors=True)
    r2 = [np.corrcoef(codes[:, d], f[:, 0])[0, 1] ** 2 for d in range(2)]
    assert result["sap/0"] == pytest.approx(abs(r2[0] - r2[1]), rel=1e-9)


def test_beta_vae_batches_share_the_chosen_factor_and_only_by_chance_the_others() -> None:
    shared, first, second = beta_vae_batches(SIZES, 50, 16, np.random.RandomState(0))
    assert first.shape == second.shape == (50, 16, 3)
    for k, a, b in zip(shared, first, second, strict=True):
        assert (a[:, k] == b[:, k]).all()
    others = [
        (a[:, j] == b[:, j]).mean()
        for k, a, b in zip(shared, first, second, strict=True)
        for j in range(3)
        if j != k
    ]
    assert np.mean(others) == pytest.approx(np.mean([1 / s for s in SIZES]), abs=0.05)


def test_gaussian_total_correlation_equals_the_entropy_difference_of_scipys_gaussians() -> None:
    cov = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])
    marginals = sum(multivariate_normal(cov=cov[d, d]).entropy() for d in range(3))
    expected = marginals - multivariate_normal(cov=cov).entropy()
    assert gaussian_total_correlation(cov) == pytest.approx(expected, rel=1e-10)
    assert gaussian_total_correlation(np.diag([3.0, 1.0, 0.2])) == pytest.approx(0.0, abs=1e-12)


def test_gaussian_wasserstein_correlation_is_w2_to_the_diagonal_gaussian() -> None:
    """Against W2² between N(0, Σ) and N(0, D), D = diag Σ, from an eigendecomposition:
    tr Σ + tr D − 2 tr (D^½ Σ D^½)^½."""
    cov = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])
    half = np.diag(np.sqrt(np.diag(cov)))
    eigenvalues = np.linalg.eigvalsh(half @ cov @ half)
    expected = 2 * np.trace(cov) - 2 * np.sqrt(eigenvalues).sum()
    assert gaussian_wasserstein_correlation(cov) == pytest.approx(expected, rel=1e-9)


def test_unsupervised_scores_of_correlated_gaussian_codes_converge_to_the_closed_form() -> None:
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    codes = np.random.RandomState(0).multivariate_normal(np.zeros(2), cov, size=20000)
    result = unsupervised_scores(codes)
    assert result["gaussian_total_correlation"] == pytest.approx(-0.5 * np.log(1 - 0.64), rel=0.03)
    independent = unsupervised_scores(np.random.RandomState(1).randn(20000, 2))
    assert independent["gaussian_total_correlation"] == pytest.approx(0.0, abs=1e-3)
    # Two copies of one code: their binned mutual information is the bins' entropy.
    x = np.random.RandomState(2).rand(5000)
    twice = unsupervised_scores(np.stack([x, x], 1))
    p = np.histogram(x, 20)[0] / 5000
    assert twice["mutual_info_score"] == pytest.approx(
        -(p[p > 0] * np.log(p[p > 0])).sum(), rel=1e-6
    )
    assert result["mutual_info_score"] > independent["mutual_info_score"]


def test_unsupervised_scores_skip_codes_that_never_vary() -> None:
    """A collapsed posterior's constant codes: the Gaussian scores are those of the
    codes that vary (closed form of a 2-D Gaussian with correlation 0.8), and codes
    none of which vary score 0 rather than dividing by a zero trace."""
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    varying = np.random.RandomState(0).multivariate_normal(np.zeros(2), cov, size=20000)
    codes = np.column_stack([varying[:, 0], np.full(20000, 0.3), varying[:, 1]])
    result = unsupervised_scores(codes)
    assert result["gaussian_total_correlation"] == pytest.approx(-0.5 * np.log(1 - 0.64), rel=0.03)
    sample_cov = np.cov(varying, rowvar=False)
    assert result["gaussian_wasserstein_correlation"] == pytest.approx(
        gaussian_wasserstein_correlation(sample_cov), rel=1e-9
    )
    assert result["gaussian_wasserstein_correlation_norm"] == pytest.approx(
        gaussian_wasserstein_correlation(sample_cov) / np.trace(sample_cov), rel=1e-9
    )
    collapsed = unsupervised_scores(np.full((500, 4), -1.5))
    assert collapsed == {
        "gaussian_total_correlation": 0.0,
        "gaussian_wasserstein_correlation": 0.0,
        "gaussian_wasserstein_correlation_norm": 0.0,
        "mutual_info_score": 0.0,
    }
