"""The names of the disentanglement metrics and of the headline scores they report.

Kept free of imports so that the config schema (`vaelab.config.settings`) and `vaelab.compare`
can read them without loading numpy or torch.
"""

from __future__ import annotations

#: The metrics of `eval.disentanglement.metrics`, in the order they run.
METRICS = ("mig", "factor_vae", "dci", "sap", "beta_vae", "modularity", "irs", "unsupervised")

#: The headline score(s) of each metric: the keys of eval.json's `metrics` and, as
#: `test/<key>`, of a training run's metrics.json.
HEADLINE_KEYS: dict[str, tuple[str, ...]] = {
    "mig": ("mig",),
    "factor_vae": ("factor_vae",),
    "dci": ("dci",),
    "sap": ("sap",),
    "beta_vae": ("beta_vae",),
    "modularity": ("modularity", "explicitness"),
    "irs": ("irs",),
    "unsupervised": (
        "gaussian_total_correlation",
        "gaussian_wasserstein_correlation",
        "gaussian_wasserstein_correlation_norm",
        "mutual_info_score",
    ),
}

#: Every headline key, in metric order.
SCORE_KEYS = tuple(key for keys in HEADLINE_KEYS.values() for key in keys)

#: The headline keys that their metric's definition bounds to [0, 1] (0: nothing of the
#: factors is captured as the metric asks, 1: perfectly): MIG and SAP are normalised
#: gaps, FactorVAE and β-VAE classifier accuracies, DCI a weighted 1 − entropy,
#: modularity 1 − a normalised deviation, explicitness a ROC AUC, IRS a normalised
#: robustness. The unsupervised scores are not: nats, or ratios that can exceed 1.
#: The one place that says so; `vaelab.compare` draws these on a fixed [0, 1] axis.
UNIT_INTERVAL_KEYS = frozenset(
    ("mig", "factor_vae", "dci", "sap", "beta_vae", "modularity", "explicitness", "irs")
)

#: The supervised scores in [0, 1] that a β sweep is plotted against.
SUPERVISED_SCORES = ("mig", "factor_vae", "dci", "sap", "beta_vae", "modularity", "irs")

assert set(SCORE_KEYS) >= UNIT_INTERVAL_KEYS, "a bounded key is some metric's headline"
assert set(SUPERVISED_SCORES) <= UNIT_INTERVAL_KEYS, "the plotted scores lie in [0, 1]"


def in_unit_interval(key: str) -> bool:
    """Whether the score `key` (`mig`, or as a run records it, `test/mig`) lies in
    [0, 1] by its metric's definition."""
    return key.rpartition("/")[2] in UNIT_INTERVAL_KEYS
