"""The keys of each app's own config that no `_target_` receives, with their rules.

conf/train.yaml, conf/eval.yaml and conf/generate.yaml hold, beside the groups that
build objects (checked against those objects' signatures), settings that the entry
points read themselves: the seed, what to resume from, evaluation's sample counts,
generation's grid sizes. Each is declared here once, with its type and range;
`vaelab.schema.check_settings` checks a composed config against these models, and the
one-line message for a bad value is derived from the declaration.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from vaelab.metrics.names import METRICS
from vaelab.metrics.protocol import PROTOCOLS
from vaelab.schema import Seed

PositiveInt = Annotated[int, Field(ge=1)]
Positive = Annotated[float, Field(gt=0)]


class MIGSettings(BaseModel):
    n_samples: Annotated[int, Field(ge=2)]
    n_bins: Annotated[int, Field(ge=2)]


class FactorVAESettings(BaseModel):
    batch_size: Annotated[int, Field(ge=2)]
    n_train: PositiveInt
    n_eval: PositiveInt
    n_variance: Annotated[int, Field(ge=2)]
    prune_threshold: Annotated[float, Field(ge=0, lt=1)]


class TrainTestSettings(BaseModel):
    """A metric trained on one i.i.d. sample and scored on another."""

    n_train: Annotated[int, Field(ge=2)]
    n_test: PositiveInt


class DCISettings(TrainTestSettings):
    n_estimators: PositiveInt


class BetaVAEScoreSettings(BaseModel):
    batch_size: PositiveInt
    n_train: Annotated[int, Field(ge=2)]
    n_eval: PositiveInt


class IRSSettings(BaseModel):
    n_samples: Annotated[int, Field(ge=2)]
    quantile: Annotated[float, Field(gt=0, le=1)]


class SampleSettings(BaseModel):
    n_samples: Annotated[int, Field(ge=2)]


Metric = Literal[METRICS]  # type: ignore[valid-type]  # the names, from where they live
Protocol = Literal[tuple(PROTOCOLS)]  # type: ignore[valid-type]


class DisentanglementSettings(BaseModel):
    enabled: bool
    protocol: Protocol
    seed: Seed
    metrics: list[Metric]
    mig: MIGSettings
    factor_vae: FactorVAESettings
    dci: DCISettings
    sap: TrainTestSettings
    beta_vae: BetaVAEScoreSettings
    modularity: TrainTestSettings
    irs: IRSSettings
    unsupervised: SampleSettings


class TrainEvalOptions(BaseModel):
    """What training evaluates at its end, beside the test split (conf/disentanglement)."""

    disentanglement: DisentanglementSettings


class TrainSettings(BaseModel):
    """conf/train.yaml's own keys. `beta` and `latent_dim` are typed here; their ranges
    are those of the parameters they are interpolated into (the β schedule, the VAE)."""

    task_name: str
    tags: list[str] | None
    seed: Seed
    beta: float
    latent_dim: int
    ckpt_path: str | None
    resume: Literal["auto", "intact"] | None
    flush_denormal: bool
    train: bool
    test: bool
    optimized_metric: str | None
    eval: TrainEvalOptions


class EvalOptions(BaseModel):
    iwae_k: Annotated[int, Field(ge=1, examples=[1000])]  # 1 gives the ELBO
    iwae_max_decoded: PositiveInt
    output: str | None
    disentanglement: DisentanglementSettings


class EvalSettings(BaseModel):
    """conf/eval.yaml's own keys (`ckpt_path` is checked as a file, in config_checks)."""

    task_name: str
    seed: Seed
    eval: EvalOptions


class InterpolationSettings(BaseModel):
    pairs: PositiveInt
    steps: Annotated[int, Field(ge=2)]  # both ends included


class TraversalSettings(BaseModel):
    range: Positive
    steps: Annotated[int, Field(ge=2)]
    example: Annotated[int, Field(ge=0)]
    n_stats: Annotated[int, Field(ge=2)]
    frame_ms: PositiveInt


class GenerateSettings(BaseModel):
    """conf/generate.yaml's own keys."""

    task_name: str
    seed: Seed
    device: Literal["auto", "cpu", "cuda", "mps"] | Annotated[str, Field(pattern=r"^cuda:\d+$")]
    output: str | None
    sample_seed: Seed
    n_samples: PositiveInt
    temperature: Positive
    nrow: PositiveInt
    n_reconstructions: PositiveInt
    upscale: PositiveInt
    interpolation: InterpolationSettings
    traversal: TraversalSettings


#: The settings model of each app (its config's name).
APP_SETTINGS: dict[str, type[BaseModel]] = {
    "train": TrainSettings,
    "eval": EvalSettings,
    "generate": GenerateSettings,
}
