"""Each disentanglement metric as the protocol runs it, declared once: a `Metric`.

A declaration names the metric, the function that runs it on the shared samples
(`vaelab.metrics.protocol.FactorSamples`), the pydantic model of its sample counts
(each count with its range), its counts under each protocol preset, the counts that
size the shared i.i.d. pools, and the headline score(s) it reports.

The shipped metrics are declared here. A new one is a module of its own that defines
`METRIC = Metric(...)`: `eval.disentanglement.metrics=[mig,<name>]` finds it as
`vaelab.metrics.<name>` (or `<package>.<module>` given in full), so adding a metric
touches no other file. Its counts come from its declaration's presets; any one can be
set with `+eval.disentanglement.<name>.<count>=...` and is checked against its model.

Only pydantic is imported here: the metrics' own modules (numpy, scikit-learn) are
imported when a metric runs.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from vaelab.errors import ConfigError
from vaelab.metrics.names import HEADLINE_KEYS, METRICS

if TYPE_CHECKING:
    from vaelab.metrics.protocol import FactorSamples

#: The protocol presets: `dlib`, disentanglement_lib's published counts (Locatello et
#: al. 2019); `fast`, smaller counts for CPU checks and the end of every training run.
PROTOCOLS = ("dlib", "fast")

Scores = dict[str, float]


@dataclass(frozen=True)
class Metric:
    """A disentanglement metric as the protocol runs it.

    run: (samples, counts) -> scores: the headline keys and any per-factor or
        diagnostic entries (`<name>/<k>`), which reach eval.json only.
    counts: the pydantic model of its counts: each field a count with its range.
    dlib: its counts under the `dlib` preset; `fast` overrides some of them.
    pools: the counts that take the first n rows of the shared training and test
        pools (None: it reads that pool not at all); a metric that holds a factor fixed
        draws its own observations and reads neither.
    headline: its headline score keys (default: `names.HEADLINE_KEYS`, else its name).
    """

    name: str
    run: Callable[[FactorSamples, Mapping[str, Any]], Scores]
    counts: type[BaseModel]
    dlib: Mapping[str, float]
    fast: Mapping[str, float] = field(default_factory=dict)
    pools: tuple[str | None, str | None] = (None, None)
    headline: tuple[str, ...] = ()

    def preset(self, protocol: str) -> dict[str, float]:
        """Its counts under `protocol`."""
        if protocol not in PROTOCOLS:
            raise ConfigError(
                f"eval.disentanglement.protocol={protocol} is not a protocol; use one of "
                f"{', '.join(PROTOCOLS)} (e.g. eval.disentanglement.protocol=dlib)"
            )
        return {**self.dlib, **(self.fast if protocol == "fast" else {})}

    @property
    def headline_keys(self) -> tuple[str, ...]:
        return self.headline or HEADLINE_KEYS.get(self.name, (self.name,))


# ---------------------------------------------------------------- count models

Count = Annotated[int, Field(ge=1)]
SampleCount = Annotated[int, Field(ge=2)]  # a score over fewer than two points is undefined


class Counts(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MIGCounts(Counts):
    n_samples: SampleCount
    n_bins: Annotated[int, Field(ge=2)]


class FactorVAECounts(Counts):
    batch_size: Annotated[int, Field(ge=2)]
    n_train: Count
    n_eval: Count
    n_variance: SampleCount
    prune_threshold: Annotated[float, Field(ge=0, lt=1)]


class TrainTestCounts(Counts):
    """A metric trained on one i.i.d. sample and scored on another."""

    n_train: SampleCount
    n_test: Count


class DCICounts(TrainTestCounts):
    n_estimators: Count


class BetaVAEScoreCounts(Counts):
    batch_size: Count
    n_train: SampleCount
    n_eval: Count


class IRSCounts(Counts):
    n_samples: SampleCount
    quantile: Annotated[float, Field(gt=0, le=1)]


class SampleCounts(Counts):
    n_samples: SampleCount


# ------------------------------------------------------------- shipped metrics


def _mig(s: FactorSamples, c: Mapping[str, Any]) -> Scores:
    from vaelab.metrics.disentanglement import mig

    return mig(*s.train(c["n_samples"]), n_bins=int(c["n_bins"]))


def _factor_vae(s: FactorSamples, c: Mapping[str, Any]) -> Scores:
    from vaelab.metrics.disentanglement import factor_vae_score

    return factor_vae_score(
        s.encode,
        s.sizes,
        s.rng(1),
        batch_size=int(c["batch_size"]),
        n_train=int(c["n_train"]),
        n_eval=int(c["n_eval"]),
        variance_codes=s.train(c["n_variance"])[0],
        prune_threshold=float(c["prune_threshold"]),
    )


def _dci(s: FactorSamples, c: Mapping[str, Any]) -> Scores:
    from vaelab.metrics.disentanglement import dci

    return dci(*s.train(c["n_train"]), *s.test(c["n_test"]), int(c["n_estimators"]), s.seed)


def _sap(s: FactorSamples, c: Mapping[str, Any]) -> Scores:
    from vaelab.metrics.sap import sap

    return sap(*s.train(c["n_train"]), *s.test(c["n_test"]))


def _beta_vae(s: FactorSamples, c: Mapping[str, Any]) -> Scores:
    from vaelab.metrics.beta_vae_score import beta_vae_score

    return beta_vae_score(
        s.encode,
        s.sizes,
        s.rng(2),
        batch_size=int(c["batch_size"]),
        n_train=int(c["n_train"]),
        n_eval=int(c["n_eval"]),
    )


def _modularity(s: FactorSamples, c: Mapping[str, Any]) -> Scores:
    from vaelab.metrics.modularity import modularity_explicitness

    return modularity_explicitness(*s.train(c["n_train"]), *s.test(c["n_test"]))


def _irs(s: FactorSamples, c: Mapping[str, Any]) -> Scores:
    from vaelab.metrics.irs import irs

    return irs(*s.train(c["n_samples"]), quantile=float(c["quantile"]))


def _unsupervised(s: FactorSamples, c: Mapping[str, Any]) -> Scores:
    from vaelab.metrics.unsupervised import unsupervised_scores

    return unsupervised_scores(s.train(c["n_samples"])[0])


_TRAIN_TEST_DLIB = {"n_train": 10000, "n_test": 5000}
_TRAIN_TEST_FAST = {"n_train": 1000, "n_test": 500}

#: The shipped metrics, in the order they run. The `dlib` counts are
#: disentanglement_lib's; `fast` lowers those that take minutes on a CPU.
SHIPPED: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "mig",
            _mig,
            MIGCounts,
            {"n_samples": 10000, "n_bins": 20},
            {},
            pools=("n_samples", None),
        ),
        Metric(
            "factor_vae",
            _factor_vae,
            FactorVAECounts,
            {
                "batch_size": 64,
                "n_train": 10000,
                "n_eval": 5000,
                "n_variance": 10000,
                "prune_threshold": 0.05,
            },
            {"n_train": 500, "n_eval": 250, "n_variance": 5000},
            pools=("n_variance", None),
        ),
        Metric(
            "dci",
            _dci,
            DCICounts,
            {**_TRAIN_TEST_DLIB, "n_estimators": 100},
            # Fewer boosting rounds would cut most of the fast protocol's time, but they
            # raise the score itself (20 rounds: 1.5-1.7x the DCI of 100 on the same codes,
            # bench/dci_rounds.py), so fast keeps disentanglement_lib's 100.
            _TRAIN_TEST_FAST,
            pools=("n_train", "n_test"),
        ),
        Metric(
            "sap",
            _sap,
            TrainTestCounts,
            _TRAIN_TEST_DLIB,
            _TRAIN_TEST_FAST,
            pools=("n_train", "n_test"),
        ),
        Metric(
            "beta_vae",
            _beta_vae,
            BetaVAEScoreCounts,
            {"batch_size": 64, "n_train": 10000, "n_eval": 5000},
            {"n_train": 300, "n_eval": 150},
        ),
        Metric(
            "modularity",
            _modularity,
            TrainTestCounts,
            _TRAIN_TEST_DLIB,
            _TRAIN_TEST_FAST,
            pools=("n_train", "n_test"),
        ),
        Metric(
            "irs",
            _irs,
            IRSCounts,
            {"n_samples": 10000, "quantile": 0.99},
            {"n_samples": 5000},
            pools=("n_samples", None),
        ),
        Metric(
            "unsupervised",
            _unsupervised,
            SampleCounts,
            {"n_samples": 10000},
            {"n_samples": 5000},
            pools=("n_samples", None),
        ),
    )
}
assert tuple(SHIPPED) == METRICS, "names.METRICS is the shipped metrics' run order"


def find_metric(name: str) -> Metric:
    """The metric called `name`: a shipped one, or the `METRIC` that the module
    `vaelab.metrics.<name>` declares."""
    if name in SHIPPED:
        return SHIPPED[name]
    module_name = f"vaelab.metrics.{name}"
    try:
        module = importlib.import_module(module_name) if name.isidentifier() else None
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # the metric's module exists but fails to import one of its own
        module = None
    if module is None:
        close = difflib.get_close_matches(name, SHIPPED, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(
            f"eval.disentanglement.metrics names {name}, which is not a metric{hint}; choose "
            f"from {', '.join(SHIPPED)}, or write a module {module_name} that defines METRIC "
            "(docs/extending.md)"
        )
    metric = getattr(module, "METRIC", None)
    if not isinstance(metric, Metric) or metric.name != name:
        raise ConfigError(
            f"eval.disentanglement.metrics names {name}, but {module_name} defines no "
            f'METRIC = vaelab.metrics.registry.Metric("{name}", ...)'
        )
    return metric


def metric_counts(settings: Mapping[str, Any], metric: Metric) -> dict[str, float]:
    """A metric's counts in `settings` (`eval.disentanglement`, resolved): its preset
    under the chosen protocol, with any count the config sets in its block on top."""
    block = settings.get(metric.name) or {}
    return {**metric.preset(str(settings.get("protocol", "dlib"))), **block}


def check_metric_settings(settings: Any, defaults: Any = None) -> None:
    """Each metric `settings` (`eval.disentanglement`, a DictConfig) names exists, and
    the counts its block sets fit that metric's count model: one `ConfigError` line."""
    from omegaconf import DictConfig

    from vaelab.config.schema import check_settings

    for name in settings.get("metrics") or METRICS:
        metric = find_metric(str(name))
        block = settings.get(str(name))
        if isinstance(block, DictConfig):
            unknown = sorted(set(block) - set(metric.counts.model_fields))
            if unknown:
                raise ConfigError(
                    f"eval.disentanglement.{name}.{unknown[0]} is not a count of {name}; "
                    f"its counts are {', '.join(metric.counts.model_fields)}"
                )
            check_settings(block, metric.counts, defaults, f"eval.disentanglement.{name}.")
