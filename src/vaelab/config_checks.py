"""Checks on a composed config that need no data and no model: run before anything heavy.

Each failure is a `ConfigError` whose message names the key, what is wrong with it
and what to type instead.
"""

from __future__ import annotations

import numbers

from omegaconf import DictConfig

from vaelab.errors import ConfigError


def _number(cfg: DictConfig, key: str) -> float:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{key}={value!r} is not a number; e.g. {key}=1")
    return float(value)


def check_config(cfg: DictConfig) -> None:
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
