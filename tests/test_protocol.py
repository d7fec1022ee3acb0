"""The disentanglement protocol presets and the one evaluation that runs every metric,
sharing one i.i.d. sample where the protocol allows."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from vaelab.metrics import disentanglement as dis
from vaelab.metrics.irs import irs
from vaelab.metrics.modularity import modularity_explicitness
from vaelab.metrics.protocol import METRICS, disentanglement_scores
from vaelab.metrics.sap import sap
from vaelab.metrics.unsupervised import unsupervised_scores


def composed(app: str, *overrides: str) -> dict:
    from hydra import compose

    from vaelab.config.resolvers import register_resolvers

    register_resolvers()
    cfg = compose(app, overrides=list(overrides))
    return OmegaConf.to_container(cfg.eval.disentanglement, resolve=True)


def test_the_dlib_protocol_has_disentanglement_libs_published_counts(hydra_conf) -> None:
    d = composed("eval", "ckpt_path=x")
    assert d["protocol"] == "dlib" and d["metrics"] == list(METRICS)
    assert d["mig"] == {"n_samples": 10000, "n_bins": 20}
    assert d["factor_vae"] == {
        "batch_size": 64,
        "n_train": 10000,
        "n_eval": 5000,
        "n_variance": 10000,
        "prune_threshold": 0.05,
    }
    assert d["dci"] == {"n_train": 10000, "n_test": 5000, "n_estimators": 100}
    assert d["sap"] == {"n_train": 10000, "n_test": 5000}
    assert d["beta_vae"] == {"batch_size": 64, "n_train": 10000, "n_eval": 5000}
    assert d["modularity"] == {"n_train": 10000, "n_test": 5000}
    assert d["irs"]["n_samples"] == 10000 and d["unsupervised"]["n_samples"] == 10000


def test_fast_keeps_the_smaller_counts_and_one_count_can_still_be_set(hydra_conf) -> None:
    fast = composed("eval", "ckpt_path=x", "eval.disentanglement.protocol=fast")
    assert fast["dci"] == {"n_train": 1000, "n_test": 500, "n_estimators": 100}
    assert fast["factor_vae"]["n_train"] == 500 and fast["factor_vae"]["n_eval"] == 250
    fast_sap = ("eval.disentanglement.protocol=fast", "eval.disentanglement.sap.n_test=77")
    one = composed("eval", "ckpt_path=x", *fast_sap)
    assert one["sap"] == {"n_train": 1000, "n_test": 77}
    assert composed("train")["protocol"] == "fast"  # the end of training: the fast one


SIZES = (3, 4, 5)
SMALL = {
    "seed": 0,
    "mig": {"n_samples": 600, "n_bins": 20},
    "factor_vae": {
        "batch_size": 8,
        "n_train": 30,
        "n_eval": 20,
        "n_variance": 500,
        "prune_threshold": 0.05,
    },
    "dci": {"n_train": 300, "n_test": 150, "n_estimators": 5},
    "sap": {"n_train": 400, "n_test": 200},
    "beta_vae": {"batch_size": 8, "n_train": 40, "n_eval": 20},
    "modularity": {"n_train": 500, "n_test": 250},
    "irs": {"n_samples": 450, "quantile": 0.99},
    "unsupervised": {"n_samples": 350},
}


class CountingEncoder:
    """Codes = factors scaled, plus one noise code; counts the observations encoded."""

    def __init__(self) -> None:
        self.encoded = 0
        self.noise = np.random.RandomState(9)

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        self.encoded += len(factors)
        return np.concatenate([factors / 4.0, self.noise.randn(len(factors), 1)], axis=1)


def test_every_metric_runs_and_the_iid_metrics_share_one_encoded_pool() -> None:
    encoder = CountingEncoder()
    scores = disentanglement_scores(encoder, SIZES, SMALL)
    # The training pool is the largest i.i.d. count (MIG 600), the test pool the largest
    # test count (modularity 250); FactorVAE's votes and β-VAE's pairs come on top.
    votes = (30 + 20) * 8
    pairs = 2 * (40 + 20) * 8
    assert encoder.encoded == 600 + 250 + votes + pairs
    for key in ("mig", "factor_vae", "dci", "sap", "beta_vae", "modularity", "irs"):
        assert 0 <= scores[key] <= 1, key
    assert "gaussian_total_correlation" in scores and "explicitness" in scores


def test_the_shared_pool_gives_each_metric_what_it_would_compute_on_its_own_rows() -> None:
    """Against each metric called directly on the first n rows of the same pool."""
    encoder = CountingEncoder()
    scores = disentanglement_scores(
        encoder, SIZES, {**SMALL, "metrics": ["mig", "sap", "modularity", "irs", "unsupervised"]}
    )
    rng = np.random.RandomState(0)
    f_train, f_test = dis.sample_factors(SIZES, 600, rng), dis.sample_factors(SIZES, 250, rng)
    replay = CountingEncoder()  # the same noise stream, in the same order
    z_train, z_test = replay(f_train), replay(f_test)
    assert scores["mig"] == dis.mig(z_train, f_train)["mig"]
    assert scores["sap"] == sap(z_train[:400], f_train[:400], z_test[:200], f_test[:200])["sap"]
    expected = modularity_explicitness(z_train[:500], f_train[:500], z_test, f_test)
    assert scores["modularity"] == expected["modularity"]
    assert scores["irs"] == irs(z_train[:450], f_train[:450])["irs"]
    assert scores["mutual_info_score"] == unsupervised_scores(z_train[:350])["mutual_info_score"]


def test_an_unknown_metric_name_is_one_line() -> None:
    from vaelab.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"names mgi, which is not a metric \(did you mean mig\?\)"
    ):
        disentanglement_scores(CountingEncoder(), SIZES, {**SMALL, "metrics": ["mgi"]})


def test_training_on_data_with_factors_ends_with_the_metrics_in_its_test_results(
    tmp_path,
) -> None:
    """A run's metrics.json carries test/<metric> for every headline score, the numbers
    the protocol gives for its best checkpoint."""
    import json

    import torch
    from in_process import call_train

    from vaelab.data.shapes import ShapesDataModule
    from vaelab.metrics.protocol import evaluate_disentanglement, headline_scores
    from vaelab.runs.trained import load_vae

    run = tmp_path / "run"
    result = call_train(
        "debug=smoke",
        "data.resolution=32",
        "logger=csv",
        "eval.disentanglement.enabled=true",
        "eval.disentanglement.protocol=fast",
        "eval.disentanglement.dci.n_estimators=10",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    model, _ = load_vae(run / "checkpoints" / "best.ckpt")
    settings = {"seed": 0, "enabled": True, "protocol": "fast", "dci": {"n_estimators": 10}}
    data = ShapesDataModule(resolution=32, n_val=32, n_test=32, eval_batch_size=32)
    report = evaluate_disentanglement(model, data, settings, torch.device("cpu"), 32)
    expected = headline_scores(report["scores"])
    assert set(expected) >= {"mig", "dci", "sap", "beta_vae", "irs", "modularity", "factor_vae"}
    for key, value in expected.items():
        assert metrics[f"test/{key}"] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def _toy_metric_module(monkeypatch) -> None:
    """`vaelab.metrics.toy_corr`, as a user would write it: one module with a METRIC."""
    import sys
    import types

    from vaelab.metrics.registry import Metric, SampleCounts

    def run(samples, counts):
        codes, factors = samples.train(counts["n_samples"])
        corr = np.corrcoef(codes[:, 0], factors[:, 0])[0, 1]
        return {"toy_corr": float(abs(corr)), "toy_corr/rows": float(len(codes))}

    module = types.ModuleType("vaelab.metrics.toy_corr")
    module.METRIC = Metric(
        "toy_corr",
        run,
        SampleCounts,
        {"n_samples": 700},
        {"n_samples": 70},
        pools=("n_samples", None),
    )
    monkeypatch.setitem(sys.modules, "vaelab.metrics.toy_corr", module)


def test_a_metric_in_a_module_of_its_own_runs_from_its_name_alone(monkeypatch) -> None:
    """No registration: `metrics=[..., toy_corr]` finds vaelab.metrics.toy_corr's
    METRIC, runs it with its preset counts on the shared pool, and its headline key is
    reported."""
    from vaelab.metrics.protocol import headline_scores

    _toy_metric_module(monkeypatch)
    encoder = CountingEncoder()
    settings = {"seed": 0, "protocol": "fast", "metrics": ["mig", "toy_corr"], "mig": SMALL["mig"]}
    scores = disentanglement_scores(encoder, SIZES, settings)
    assert scores["toy_corr/rows"] == 70  # the fast preset
    assert encoder.encoded == 600  # one pool, the larger of MIG's 600 and its 70
    assert scores["toy_corr"] == pytest.approx(1.0)  # code 0 is factor 0 scaled
    assert set(headline_scores(scores, ["mig", "toy_corr"])) == {"mig", "toy_corr"}
    dlib = disentanglement_scores(
        CountingEncoder(), SIZES, {**settings, "protocol": "dlib", "toy_corr": {"n_samples": 9}}
    )
    assert dlib["toy_corr/rows"] == 9  # a count set in its block wins over the preset


def test_a_metric_module_without_a_metric_is_one_line(monkeypatch) -> None:
    import sys
    import types

    from vaelab.errors import ConfigError
    from vaelab.metrics.registry import find_metric

    monkeypatch.setitem(sys.modules, "vaelab.metrics.empty", types.ModuleType("empty"))
    with pytest.raises(ConfigError, match=r"vaelab.metrics.empty defines no METRIC"):
        find_metric("empty")


def test_a_new_metrics_counts_are_checked_against_its_own_model(monkeypatch, hydra_conf) -> None:
    from helpers import compose_train
    from omegaconf import DictConfig

    from vaelab.errors import ConfigError
    from vaelab.metrics.registry import check_metric_settings

    _toy_metric_module(monkeypatch)
    choose = "eval.disentanglement.metrics=[mig,toy_corr]"
    node = compose_train(choose, "+eval.disentanglement.toy_corr.n_samples=50").eval.disentanglement
    assert isinstance(node, DictConfig)
    check_metric_settings(node)  # 50 is a count
    bad = compose_train(choose, "+eval.disentanglement.toy_corr.n_samples=1").eval.disentanglement
    with pytest.raises(ConfigError, match=r"toy_corr.n_samples=1 must be an integer >= 2"):
        check_metric_settings(bad)
    typo = compose_train(choose, "+eval.disentanglement.toy_corr.n_sample=50").eval.disentanglement
    with pytest.raises(ConfigError, match=r"toy_corr.n_sample is not a count of toy_corr"):
        check_metric_settings(typo)


def test_a_collapsed_encoder_gets_scores_not_a_crash() -> None:
    """Codes that never vary (every posterior at the prior, dead units): each metric
    finishes, and the ones with a known answer give it: no information about any
    factor, so MIG 0, SAP 0, and no total correlation between constants."""
    scores = disentanglement_scores(lambda f: np.full((len(f), 4), 0.25), SIZES, SMALL)
    assert all(np.isfinite(v) for v in scores.values()), scores
    assert scores["mig"] == 0.0 and scores["sap"] == 0.0
    assert scores["gaussian_total_correlation"] == 0.0 and scores["mutual_info_score"] == 0.0
