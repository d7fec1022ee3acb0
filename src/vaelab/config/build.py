"""Objects built from a checked config by Hydra's `instantiate`: a training job's
parts (data module, model, the random streams after them), the model alone (sized from
the data module) and the entries of a group of named objects (callbacks, loggers).

The pre-flight checks and the job build them the same way, through these functions;
`vaelab.config.handover` passes what the checks built to the job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
    """The VAE for this config, with its backbones sized from the data; a conditional
    one with the data's labels, which the data module then serves with its batches."""
    from hydra.utils import instantiate

    from vaelab.data.labels import no_labels_error

    label_sizes = None
    chosen = cfg.model.get("conditional")
    if chosen:
        data = type(datamodule).__name__
        space = datamodule.label_space()
        if space is None:
            raise no_labels_error(data)
        space.select(chosen, data)  # an unknown label: the one line names the data
        label_sizes = space.as_sizes()
    model = instantiate(
        cfg.model,
        data_shape=datamodule.dims,
        data_levels=datamodule.levels,
        label_sizes=label_sizes,
        likelihood=cfg.likelihood,
        objective=cfg.objective,
        prior=cfg.get("prior"),
        posterior=cfg.get("posterior"),
        latent=cfg.get("latent"),
        _recursive_=False,
    )
    if model.conditional:
        datamodule.serve_labels(model.label_names)
    return model


@dataclass
class JobParts:
    """What a training job starts from, built once from its checked config: the data
    module, the model, and the global random generators' states right after the model
    was built (so that training draws the same numbers whether the parts were built by
    the pre-flight checks or by the job itself)."""

    datamodule: Any
    model: Any
    rng_states: dict[str, Any]

    def continue_random_streams(self) -> None:
        """Put the global generators where building these parts left them."""
        from vaelab.callbacks.rng_state import set_rng_states

        set_rng_states(self.rng_states)


def _call(key: str, build: Callable[..., Any], *arguments: Any) -> Any:
    return build(*arguments)


def build_job_parts(
    cfg: DictConfig, *, verbose: bool = True, guard: Callable[..., Any] = _call
) -> JobParts:
    """Seed, set the CPU float flags, build the data module (its constructor reads no
    data) and the model sized from it: the order a training job needs, whoever builds.
    `guard(key, build, *arguments)` calls each constructor (the checks pass one that
    turns what a constructor raises into one line naming `data` or `model`)."""
    import lightning as L

    from vaelab.callbacks.rng_state import rng_states
    from vaelab.lightning.trainer import use_flush_denormal

    # Before the first tensor op: the flag is copied to the threads torch starts.
    use_flush_denormal(bool(cfg.get("flush_denormal", True)))
    L.seed_everything(cfg.seed, workers=True, verbose=verbose)
    from hydra.utils import instantiate

    datamodule = guard("data", instantiate, cfg.data)
    model = guard("model", build_model, cfg, datamodule)
    return JobParts(datamodule, model, rng_states())
