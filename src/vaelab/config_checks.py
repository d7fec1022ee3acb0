"""Checks on a composed config that need no data and no model: run before anything heavy.

Each failure is a `ConfigError` (or, for a checkpoint that is not there, a
`CheckpointError`) whose message names the key, what is wrong with it and what to type
instead. `check_config(cfg, task)` knows each app's config: train, eval, generate.
"""

from __future__ import annotations

import numbers
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vaelab.errors import CheckpointError, ConfigError


def _number(cfg: DictConfig, key: str) -> float:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{key}={value!r} is not a number; e.g. {key}=1")
    return float(value)


def check_config(cfg: DictConfig, task: str = "train") -> None:
    """Raise on the first value of `task`'s config (train, eval, generate) that cannot work."""
    checks = {"train": check_train_config, "eval": check_eval_config}
    checks["generate"] = check_generate_config
    if task not in checks:
        raise ValueError(f"no config checks for task {task!r}; known: {', '.join(checks)}")
    checks[task](cfg)


def check_train_config(cfg: DictConfig) -> None:
    """Raise `ConfigError` on the first top-level value that cannot work."""
    beta = _number(cfg, "beta")
    if beta < 0:
        raise ConfigError(
            f"beta={cfg.beta} is negative; β weights the KL term and must be >= 0 (e.g. beta=4)"
        )
    latent_dim = cfg.get("latent_dim")
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise ConfigError(f"latent_dim={latent_dim!r} must be an integer >= 1 (e.g. latent_dim=10)")
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed={seed!r} must be an integer (e.g. seed=0)")
    if cfg.get("resume") not in (None, "auto"):
        raise ConfigError(
            f"resume={cfg.resume!r} is not an option; use resume=auto (or ckpt_path=...)"
        )
    if cfg.get("ckpt_path") is not None and cfg.get("resume") is not None:
        raise ConfigError("give either ckpt_path=... or resume=auto, not both")
    check_optimisation(cfg)


def check_optimisation(cfg: DictConfig) -> None:
    """The trainer fields that the VAE's own (manual) optimisation step applies."""
    if _select(cfg, "trainer.gradient_clip_val") is not None:  # null: no clipping
        _positive(cfg, "trainer.gradient_clip_val", 1.0)
    algorithm = _select(cfg, "trainer.gradient_clip_algorithm")
    if algorithm not in (None, "norm", "value"):
        raise ConfigError(
            f"trainer.gradient_clip_algorithm={algorithm!r} is not an option; use norm or value"
        )
    accumulate = _select(cfg, "trainer.accumulate_grad_batches")
    if accumulate not in (None, 1):
        raise ConfigError(
            f"trainer.accumulate_grad_batches={accumulate!r} is not supported (the VAE steps "
            "its optimiser itself, once per batch); raise data.batch_size instead"
        )


def _select(cfg: DictConfig, key: str) -> object:
    return OmegaConf.select(cfg, key, throw_on_missing=False)


def _integer(cfg: DictConfig, key: str, minimum: int, example: int | str) -> int:
    value = _select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}={value!r} must be an integer >= {minimum} (e.g. {key}={example})")
    return value


def _positive(cfg: DictConfig, key: str, example: float) -> float:
    value = _select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ConfigError(f"{key}={value!r} must be a number > 0 (e.g. {key}={example})")
    return float(value)


def check_checkpoint_path(cfg: DictConfig, script: str) -> None:
    """`ckpt_path` is given and names a file (its contents are checked when loaded)."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or cfg.get("ckpt_path") in (None, ""):
        raise ConfigError(
            f"ckpt_path is required: python src/{script}.py "
            "ckpt_path=<run folder>/checkpoints/last.ckpt"
        )
    path = Path(str(cfg.ckpt_path))
    if not path.is_file():
        found = sorted(p.name for p in path.parent.glob("*.ckpt")) if path.parent.is_dir() else []
        hint = f" (in {path.parent}: {', '.join(found)})" if found else ""
        raise CheckpointError(f"no checkpoint at {path}{hint}")


def check_eval_config(cfg: DictConfig) -> None:
    """conf/eval.yaml: a checkpoint, k >= 1 importance samples, positive sample counts."""
    check_checkpoint_path(cfg, "eval")
    value = _select(cfg, "eval.iwae_k")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"eval.iwae_k={value!r} must be an integer >= 1 importance samples "
            "(1 gives the ELBO; e.g. eval.iwae_k=1000)"
        )
    _integer(cfg, "eval.iwae_max_decoded", 1, 4096)
    prefix = "eval.disentanglement"
    for key, minimum, example in (
        ("mig.n_samples", 2, 10000),
        ("mig.n_bins", 2, 20),
        ("factor_vae.batch_size", 2, 64),
        ("factor_vae.n_train", 1, 10000),
        ("factor_vae.n_eval", 1, 5000),
        ("factor_vae.n_variance", 2, 10000),
        ("dci.n_train", 2, 10000),
        ("dci.n_test", 1, 5000),
        ("dci.n_estimators", 1, 100),
    ):
        _integer(cfg, f"{prefix}.{key}", minimum, example)


def check_generate_config(cfg: DictConfig) -> None:
    """conf/generate.yaml: a checkpoint, positive counts, a temperature above 0."""
    check_checkpoint_path(cfg, "generate")
    _integer(cfg, "n_samples", 1, 64)
    _positive(cfg, "temperature", 0.8)
    _integer(cfg, "nrow", 1, 8)
    _integer(cfg, "n_reconstructions", 1, 32)
    _integer(cfg, "interpolation.pairs", 1, 8)
    _integer(cfg, "interpolation.steps", 2, 10)
    _positive(cfg, "traversal.range", 3)
    _integer(cfg, "traversal.steps", 2, 11)
    _integer(cfg, "traversal.n_stats", 2, 1000)
