"""Helpers the tests share: compose the real configs, run the real entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
TRAIN_SCRIPT = REPO / "src" / "train.py"


def compose_train(*overrides: str, run_dir: Path | None = None):
    """Compose conf/train.yaml like the app does, with Hydra's runtime set (paths work)."""
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    extra = [f"hydra.run.dir={run_dir}"] if run_dir else []
    cfg = compose("train", overrides=[*overrides, *extra], return_hydra_config=True)
    HydraConfig().set_config(cfg)
    if run_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir)
    return cfg


def run_train(*overrides: str, cwd: Path = REPO, timeout: float = 240, env: dict | None = None):
    """Run `python src/train.py <overrides>` as a user would; return the CompletedProcess."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), *overrides],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
