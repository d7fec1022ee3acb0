"""The disentanglement protocol: which metrics, on how many samples, sharing what.

Two presets, chosen with `eval.disentanglement.protocol`:

- `dlib`: disentanglement_lib's sample counts (Locatello et al. 2019), the numbers
  published results use: MIG 10,000 points in 20 bins; FactorVAE 10,000 / 5,000 votes
  of 64 and 10,000 points for the variances; DCI 10,000 / 5,000; SAP 10,000 / 5,000;
  β-VAE score 10,000 / 5,000 pairs of batches of 64; modularity and explicitness
  10,000 / 5,000; IRS 10,000; the unsupervised scores 10,000.
- `fast`: smaller counts for CPU checks and for the end of every training run (its
  numbers are noisier and, for DCI and the classifier scores, lower than `dlib`'s).

Each count is one config key (`eval.disentanglement.<metric>.<count>`) whose default
comes from the preset through the `protocol` resolver, so a single count can still be
set by hand. The presets live with each metric's declaration
(`vaelab.metrics.registry`), once.

What is shared: every metric that reads i.i.d. observations of the factor grid (MIG,
DCI, SAP, modularity/explicitness, IRS, the unsupervised scores and FactorVAE's
variance sample) takes the first n rows of one pool of sampled factors and their
codes, a training pool and a test pool, each encoded once. disentanglement_lib draws
a fresh sample per metric; the distribution each metric sees is the same. FactorVAE's
votes and the β-VAE score's batch pairs hold a factor fixed, so they draw their own.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vaelab.metrics.names import METRICS
from vaelab.metrics.registry import Metric, find_metric, metric_counts

if TYPE_CHECKING:
    from vaelab.data.factors import FactorSpace

log = logging.getLogger(__name__)


def protocol_value(key: str, protocol: str) -> float:
    """The preset count `key` ("mig.n_samples") of `protocol`: what the config's
    `${protocol:mig.n_samples}` resolves to."""
    metric, _, count = key.partition(".")
    return find_metric(metric).preset(protocol)[count]


class StageTimes(dict[str, float]):
    """Seconds per evaluation stage, each announced in the log when it starts and ends
    (a stage that takes a minute shows that it is running, and what it cost)."""

    @contextlib.contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        log.info("%s%s ...", name, f" ({detail})" if detail else "")
        started = time.perf_counter()
        yield
        self[name] = round(time.perf_counter() - started, 3)
        log.info("%s done in %.1f s", name, self[name])


Encode = Callable[[np.ndarray], np.ndarray]


class FactorSamples:
    """What the metrics of one evaluation share: the encoder, the grid's sizes, the
    seed and the two i.i.d. pools (factors and their codes). A metric's `run` reads the
    first n rows of a pool (`train(n)`, `test(n)`), or draws its own observations with
    `encode`, `sizes` and its own `rng`."""

    def __init__(self, encode: Encode, sizes: Sequence[int], seed: int) -> None:
        self.encode, self.sizes = encode, list(sizes)
        self.seed = int(seed)
        self.z_train: np.ndarray | None = None
        self.z_test: np.ndarray | None = None

    def fill(self, n_train: int, n_test: int) -> None:
        from vaelab.metrics.disentanglement import sample_factors

        rng = np.random.RandomState(self.seed)
        self.f_train = sample_factors(self.sizes, n_train, rng)
        self.f_test = sample_factors(self.sizes, n_test, rng)
        self.z_train = self.encode(self.f_train) if n_train else None
        self.z_test = self.encode(self.f_test) if n_test else None

    def train(self, n: Any) -> tuple[np.ndarray, np.ndarray]:
        """The first `n` training-pool codes and factors."""
        assert self.z_train is not None
        return self.z_train[: int(n)], self.f_train[: int(n)]

    def test(self, n: Any) -> tuple[np.ndarray, np.ndarray]:
        assert self.z_test is not None
        return self.z_test[: int(n)], self.f_test[: int(n)]

    def rng(self, offset: int) -> np.random.RandomState:
        """A metric's own random state: FactorVAE and β-VAE draw their own batches."""
        return np.random.RandomState(self.seed + offset)


def _describe(c: Mapping[str, Any]) -> str:
    """A metric's sample counts, for the log."""
    return ", ".join(f"{k} {v}" for k, v in c.items() if k.startswith("n_") or k == "batch_size")


def disentanglement_scores(
    encode: Encode,
    sizes: Sequence[int],
    cfg: Mapping[str, Any],
    times: StageTimes | None = None,
) -> dict[str, float]:
    """Every metric of `cfg["metrics"]` (default: all) with the counts of `cfg`
    (`eval.disentanglement`, resolved), on codes from `encode` (factor indices (n, K)
    -> posterior means (n, D)). `times` gets each stage's seconds."""
    times = StageTimes() if times is None else times
    chosen = chosen_metrics(cfg)
    counts = {m.name: metric_counts(cfg, m) for m in chosen}
    n_train, n_test = pool_sizes(chosen, counts)
    samples = FactorSamples(encode, sizes, int(cfg["seed"]))
    with times.stage("encode_pool", f"{n_train} + {n_test} i.i.d. observations"):
        samples.fill(n_train, n_test)
    scores: dict[str, float] = {}
    for metric in chosen:
        with times.stage(metric.name, _describe(counts[metric.name])):
            scores.update(metric.run(samples, counts[metric.name]))
    return scores


def pool_sizes(
    metrics: Sequence[Metric], counts: Mapping[str, Mapping[str, Any]]
) -> tuple[int, int]:
    """The sizes of the shared training and test pools: the largest count any of
    `metrics` reads from each (`counts`: each metric's counts, by name)."""
    n_train = max((int(counts[m.name][m.pools[0]]) for m in metrics if m.pools[0]), default=0)
    n_test = max((int(counts[m.name][m.pools[1]]) for m in metrics if m.pools[1]), default=0)
    return n_train, n_test


def chosen_metrics(cfg: Mapping[str, Any]) -> list[Metric]:
    """The metrics `cfg["metrics"]` names (default: the shipped ones), in that order."""
    return [find_metric(str(name)) for name in (cfg.get("metrics") or METRICS)]


def factor_encoder(model: Any, space: FactorSpace, batch_size: int, device: Any) -> Encode:
    """factor indices (n, K) -> posterior means (n, D) of `model` (anything with
    `posterior_params(x)` returning mean and log-variance): observe, then encode,
    `batch_size` observations at a time.

    The encoder runs on channels-last images in inference mode: the same fp32
    arithmetic, in the memory layout in which CPU convolutions run fastest (about 1.5x
    the encoder passes per second on the conv preset, bench/disentanglement.py). The
    protocol needs about 2.9 million of them (mostly FactorVAE's votes and the β-VAE
    score's batch pairs).

    A conditional model (one with `label_names`) reads the factors it is conditioned on
    as its labels: on data with known factors, its labels are factors (vaelab.data.labels),
    so the scores say how the code captures the factors it was not given."""
    import torch

    channels_last = torch.channels_last
    chosen = tuple(getattr(model, "label_names", ()))
    columns = [space.names.index(name) for name in chosen]

    @torch.inference_mode()
    def encode(factors: np.ndarray) -> np.ndarray:
        index = torch.from_numpy(np.ascontiguousarray(factors)).long()
        codes = []
        for i in range(0, len(index), batch_size):
            x = space.observe(index[i : i + batch_size]).to(device)
            labels = index[i : i + batch_size][:, columns] if chosen else None
            x = x.contiguous(memory_format=channels_last)
            codes.append(model.posterior_params(x, labels)[0])
        if not codes:
            return np.zeros((0, model.code_dim))
        return torch.cat(codes).double().cpu().numpy()

    return encode


@contextlib.contextmanager
def channels_last_weights(model: Any) -> Iterator[None]:
    """`model`'s 4-D weights in channels-last layout for the duration (see
    `factor_encoder`), then back as they were."""
    import torch

    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)


def headline_scores(
    scores: Mapping[str, float], metrics: Sequence[str] | None = None
) -> dict[str, float]:
    """The headline numbers of `metrics` (default: the shipped ones: `mig`, `dci`,
    `sap`, ...), without the per-factor and diagnostic entries (`mig/0`, ...)."""
    keys = [k for name in (metrics or METRICS) for k in find_metric(name).headline_keys]
    return {k: float(scores[k]) for k in keys if k in scores}


def evaluate_disentanglement(
    model: Any,
    datamodule: Any,
    cfg: Any,
    device: Any,
    batch_size: int,
    times: StageTimes | None = None,
) -> dict[str, Any] | None:
    """The disentanglement report of `model` on `datamodule`'s ground truth with the
    settings `cfg` (`eval.disentanglement`): factor names and sizes, the protocol, every
    score and the resolved settings. None, with a log line, for data without known
    factors or with the metrics disabled."""
    from omegaconf import DictConfig, OmegaConf

    from vaelab.data.factors import factor_space_of

    space = factor_space_of(datamodule)
    if space is None:
        log.info("no known factors for this data: disentanglement metrics skipped")
        return None
    resolved = isinstance(cfg, DictConfig)
    settings: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True) if resolved else dict(cfg)  # type: ignore[assignment]
    if not settings.get("enabled", True):
        return None
    was_training = model.training
    model.to(device).eval()
    try:
        with channels_last_weights(model):
            encode = factor_encoder(model, space, batch_size, device)
            scores = disentanglement_scores(encode, space.sizes, settings, times)
    finally:
        model.train(was_training)
    return {
        "factor_names": list(space.names),
        "factor_sizes": list(space.sizes),
        "protocol": settings.get("protocol"),
        "scores": scores,
        "settings": settings,
    }
