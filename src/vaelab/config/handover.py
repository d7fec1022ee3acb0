"""What the pre-flight checks built, handed to the job they checked.

`src/train.py` (and eval, generate) runs `vaelab.config.preflight.preflight` before
Hydra starts the job, in the same process: the checks compose the config, check it and
build the job's parts (`vaelab.config.build.JobParts` for train, the opened
`vaelab.runs.trained.TrainedRun` for eval and generate). `hand_over` keeps them under
the config they were built from; the job's `take_over` gets them back when its config
is the same, so a single run is checked once and builds its data module and model once.
A job in another process (a SLURM node, a DDP run of a multirun, a submitit worker) or
of a multirun finds nothing here and checks its own config.
"""

from __future__ import annotations

import hashlib
from typing import Any

from omegaconf import DictConfig, OmegaConf

_handed: dict[tuple[str, str], Any] = {}


def config_key(cfg: DictConfig) -> str:
    """The config as written (interpolations unresolved, no `hydra` node), hashed: the
    same for the pre-flight composition and the job's, whatever the run folder."""
    # Neither has the `hydra` node: preflight removes it, a job's config never had it.
    return hashlib.sha256(OmegaConf.to_yaml(cfg).encode()).hexdigest()


def hand_over(cfg: DictConfig, task: str, built: Any) -> None:
    """Keep what checking `task`'s `cfg` built (only the latest command line's)."""
    _handed.clear()
    _handed[(task, config_key(cfg))] = built


def take_over(cfg: DictConfig, task: str) -> tuple[bool, Any]:
    """(True, what the checks built) when the pre-flight checks of this process checked
    exactly this config for `task`, once; else (False, None): check it now."""
    key = (task, config_key(cfg))
    if key not in _handed:
        return False, None
    return True, _handed.pop(key)


def forget() -> None:
    """Drop anything handed over (a new command line starts)."""
    _handed.clear()
