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

#: The supervised scores in [0, 1] that a β sweep is plotted against.
SUPERVISED_SCORES = ("mig", "factor_vae", "dci", "sap", "beta_vae", "modularity", "irs")
