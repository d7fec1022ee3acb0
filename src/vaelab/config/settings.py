"""The keys of each app's own config that no `_target_` receives, with their rules.

conf/train.yaml, conf/eval.yaml and conf/generate.yaml hold, beside the groups that
build objects (checked against those objects' signatures), settings that the entry
points read themselves: the seed, what to resume from, evaluation's sample counts,
generation's grid sizes. Each is declared here once, with its type and range;
`vaelab.config.schema.check_settings` checks a composed config against these models, and the
one-line message for a bad value is derived from the declaration.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from vaelab.config.schema import Seed
from vaelab.metrics.registry import PROTOCOLS

PositiveInt = Annotated[int, Field(ge=1)]
Positive = Annotated[float, Field(gt=0)]


Protocol = Literal[PROTOCOLS]  # type: ignore[valid-type]  # the names, from where they live


class DisentanglementSettings(BaseModel):
    """`eval.disentanglement`. Each chosen metric's block of counts is checked against
    that metric's own count model (`vaelab.metrics.registry.check_metric_settings`)."""

    enabled: bool
    protocol: Protocol
    seed: Seed
    metrics: list[str]


class TrainEvalOptions(BaseModel):
    """What training evaluates at its end, beside the test split (conf/disentanglement)."""

    disentanglement: DisentanglementSettings


class PathSettings(BaseModel):
    """conf/paths: where data, run folders and this job's folder are."""

    root_dir: str
    data_dir: str
    log_dir: str
    output_dir: str | None  # ${hydra:runtime.output_dir}: the job's folder, once it starts


class Recipe(BaseModel):
    """An experiment's `recipe:` node (conf/experiment/): what bench/reproduce.py
    reports for it and the published number it is compared with."""

    paper: str
    published: str
    metric: str
    # Every headline vaelab reports for a recipe (nats, bits/dim, scores) is >= 0.
    value: Annotated[float, Field(ge=0)] | None
    multirun: bool = False
    # `src/eval.py` overrides the headline is measured with (e.g. sampler=two_stage for
    # a sample FID); the likelihood bound and eval.json's numbers come from eval.
    eval: list[str] = []


class TrainSettings(BaseModel):
    """conf/train.yaml's own keys. `beta`, `latent_dim` and `conditional` are typed here;
    their ranges are those of the parameters they are interpolated into (the β
    schedule, the VAE)."""

    task_name: str
    tags: list[str] | None
    seed: Seed
    beta: float
    latent_dim: int
    conditional: bool | str | list[str]
    ckpt_path: str | None
    resume: Literal["auto", "intact"] | None
    flush_denormal: bool
    train: bool
    test: bool
    optimized_metric: str | None
    eval: TrainEvalOptions
    paths: PathSettings
    recipe: Recipe | None = None


class SampleQualityOptions(BaseModel):
    """`eval.sample_quality`: samples drawn by `sampler=`, compared with test images."""

    n_samples: Annotated[int, Field(ge=0, examples=[10000])]  # 0: no sample quality
    fid: bool  # FID/KID on Inception features (needs the weights file)
    kid_subset_size: Annotated[int, Field(ge=2)]
    batch_size: PositiveInt
    seed: Seed


class EvalOptions(BaseModel):
    iwae_k: Annotated[int, Field(ge=1, examples=[1000])]  # 1 gives the ELBO
    iwae_max_decoded: PositiveInt
    output: str | None
    disentanglement: DisentanglementSettings
    sample_quality: SampleQualityOptions


class EvalSettings(BaseModel):
    """conf/eval.yaml's own keys (`ckpt_path` is checked as a file, in vaelab.config.checks)."""

    task_name: str
    seed: Seed
    eval: EvalOptions
    paths: PathSettings


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
    paths: PathSettings


#: The settings model of each app (its config's name).
APP_SETTINGS: dict[str, type[BaseModel]] = {
    "train": TrainSettings,
    "eval": EvalSettings,
    "generate": GenerateSettings,
}
