"""Objects built from a checked config by Hydra's `instantiate`: the model (sized from
the data module) and the entries of a group of named objects (callbacks, loggers).

The pre-flight checks and the job build them the same way, through these functions.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry with a `_target_` in a config group (callbacks, loggers).

    A group is a mapping of named entries so that one entry can be overridden or
    removed from the command line (`~callbacks.image_grids`).
    """
    from hydra.utils import instantiate

    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def build_model(cfg: DictConfig, datamodule: Any) -> Any:
    """The VAE for this config, with its backbones sized from the data."""
    from hydra.utils import instantiate

    return instantiate(
        cfg.model,
        data_shape=datamodule.dims,
        data_levels=datamodule.levels,
        likelihood=cfg.likelihood,
        objective=cfg.objective,
        _recursive_=False,
    )
