"""A trained run as evaluation and generation see it: checkpoint, run folder, the run's
config (with the command line's overrides on top), the model and the data.

A checkpoint written by `python src/train.py` lies at `<run>/checkpoints/<name>.ckpt`,
and `<run>/.hydra/config.yaml` is the config that trained it. `src/eval.py` and
`src/generate.py` compose their own configs (conf/eval.yaml, conf/generate.yaml),
which include the same `data`, `trainer` and `paths` groups so that any override a
training run accepts is accepted and checked here too. The rule that joins the two:
every key or group the command line names is taken from that composition; everything
else comes from the run's saved config. The model itself is always rebuilt from the
checkpoint's own hyperparameters.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from vaelab.errors import CheckpointError

log = logging.getLogger(__name__)

#: Keys of the eval/generate configs that never reach the run config.
OWN_KEYS = frozenset({"hydra", "ckpt_path", "task_name", "eval", "generate"})


@dataclass
class TrainedRun:
    """Everything `evaluate` and `generate` start from."""

    checkpoint_path: Path
    run_dir: Path | None  # None: a checkpoint with no run folder around it
    config: DictConfig  # the run's config with the command line's overrides applied
    overridden: frozenset[str]  # dotted keys the command line set, e.g. 'data.n_test'
    model: Any  # vaelab.models.VAE, on the CPU, eval mode
    checkpoint: dict[str, Any]
    datamodule: Any


def run_dir_of(checkpoint_path: Path) -> Path | None:
    """The run folder of `<run>/checkpoints/x.ckpt` (or of `<run>/x.ckpt`), if it has one."""
    folder = checkpoint_path.resolve().parent
    for candidate in (folder.parent, folder) if folder.name == "checkpoints" else (folder,):
        if (candidate / ".hydra" / "config.yaml").is_file():
            return candidate
    return None


def command_line_overrides() -> list[Any]:
    """The running Hydra job's task overrides, parsed (empty outside a Hydra job)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not HydraConfig.initialized():
        return []
    return OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task))


def merge_run_config(
    saved: DictConfig, composed: DictConfig, overrides: list[Any]
) -> tuple[DictConfig, frozenset[str]]:
    """The saved run config with every overridden key or group taken from `composed`.

    Only keys under the run config's own top-level keys (data, trainer, paths, seed,
    ...) move over; the settings of evaluation or generation themselves stay behind.

    `model/encoder=mlp` names the group at `model.encoder`; `~key` deletes the key.
    Returns the merged config and the dotted keys that were overridden.
    """
    merged = saved.copy()
    overridden = set()
    with open_dict(merged):
        for override in overrides:
            key = override.key_or_group.split("@")[0].replace("/", ".")
            top = key.split(".")[0]
            if top in OWN_KEYS or top not in saved:
                continue  # a setting of evaluation/generation itself (eval.iwae_k, ...)
            overridden.add(key)
            if override.is_delete():
                parent, _, leaf = key.rpartition(".")
                node = OmegaConf.select(merged, parent) if parent else merged
                if isinstance(node, DictConfig) and leaf in node:
                    del node[leaf]
                continue
            value = OmegaConf.select(composed, key, throw_on_missing=False)
            if isinstance(value, DictConfig):
                value = value.copy()  # the group's node, interpolations intact
            OmegaConf.update(merged, key, value, merge=False, force_add=True)
    return merged, frozenset(overridden)


def read_run_config(path: Path) -> DictConfig:
    """A run's saved `.hydra/config.yaml`; a `ConfigError` naming the file if it does
    not parse as a config."""
    from vaelab.errors import ConfigError

    try:
        saved = OmegaConf.load(path)
    except Exception as exc:  # yaml's ParserError/ScannerError, OmegaConf's, OSError
        raise ConfigError(
            f"{path} is not a readable run config ({_parse_problem(exc)}); restore "
            "it from the run's W&B config, or move the checkpoint out of the run folder"
        ) from None
    if not isinstance(saved, DictConfig) or "data" not in saved:
        raise ConfigError(
            f"{path} is not a vaelab run config (no data section); restore it from the "
            "run's W&B config, or move the checkpoint out of the run folder"
        )
    return saved


def _parse_problem(exc: Exception) -> str:
    """yaml's error in a few words: 'expected ',' or ']' at line 2, column 7'."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{type(exc).__name__}: {problem} at line {mark.line + 1}, column {mark.column + 1}"
    first = " ".join(str(exc).strip().split())[:160]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def run_config(
    cfg: DictConfig, path: Path, overrides: list[Any]
) -> tuple[DictConfig, frozenset[str]]:
    """The config of the run that wrote checkpoint `path`, with `overrides` applied
    (see `merge_run_config`), and the dotted keys they set."""
    run_dir = run_dir_of(path)
    if run_dir is None:
        # A checkpoint copied out of its run folder: the composed config's data stands
        # in for the run's (the shape check still guards the pairing).
        keys: list[Any] = [k for k in cfg if k not in OWN_KEYS]  # config keys
        saved = OmegaConf.masked_copy(cfg, keys)
    else:
        saved = read_run_config(run_dir / ".hydra" / "config.yaml")
    return merge_run_config(saved, cfg, overrides)


def load_trained_run(
    cfg: DictConfig, overrides: list[Any] | None = None, defaults: DictConfig | None = None
) -> TrainedRun:
    """Open `cfg.ckpt_path` and rebuild its run's data, with the command line's overrides
    (`overrides`; by default the running Hydra job's).

    Raises a one-line `VaelabError` for a missing, corrupt or foreign checkpoint, an
    unreadable run config, a data or trainer value of the merged config that its target
    does not take (`defaults` give the examples), and a checkpoint trained on data of
    another shape than the chosen data.
    """
    from hydra.utils import instantiate

    from vaelab.config.schema import check_targets
    from vaelab.runs.checkpoints import check_data_shape, read_checkpoint

    path = Path(str(cfg.ckpt_path))
    checkpoint = read_checkpoint(path)
    model = vae_from_checkpoint(checkpoint, path)
    overrides = command_line_overrides() if overrides is None else overrides
    config, overridden = run_config(cfg, path, overrides)
    for group in ("data", "trainer"):
        if group in config:
            check_targets(config[group], defaults, group)
    datamodule = instantiate(config.data)
    check_data_shape(checkpoint, datamodule.dims, path)
    serve_model_labels(model, datamodule, path)
    return TrainedRun(path, run_dir_of(path), config, overridden, model, checkpoint, datamodule)


def serve_model_labels(model: Any, datamodule: Any, path: Any = "") -> None:
    """Have `datamodule` serve the labels a conditional `model` reads, after checking
    that the data has them, with as many levels each as the model was trained with."""
    if not model.conditional:
        return
    space = datamodule.label_space()
    have = {} if space is None else space.as_sizes()
    for name, levels in model.label_sizes.items():
        if have.get(name) != levels:
            found = "no such label" if name not in have else f"{have[name]} levels"
            raise CheckpointError(
                f"checkpoint {path} is conditional on label {name!r} with {levels} levels, "
                f"and the chosen data has {found}; pick the data it was trained on"
            )
    datamodule.serve_labels(model.label_names)


def warn_if_outside_a_run(run: TrainedRun) -> None:
    """Say when a checkpoint has no run folder around it: its data config is then the
    command line's, not the one it was trained with."""
    if run.run_dir is None:
        log.warning(
            "no run config beside %s (expected <run>/.hydra/config.yaml); using data=%s",
            run.checkpoint_path,
            run.config.data.get("_target_", "?"),
        )


def load_vae(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """The VAE a checkpoint holds (on the CPU, in eval mode) and the checkpoint itself.

    The one way evaluation and generation open a checkpoint: a missing, truncated or
    foreign file, or weights that do not fit the model the hyperparameters describe,
    raise `CheckpointError` with one line. The model is rebuilt from the checkpoint's
    own hyperparameters, so it never depends on what the configs say today.
    """
    from vaelab.runs.checkpoints import read_checkpoint

    checkpoint = read_checkpoint(path)
    return vae_from_checkpoint(checkpoint, path), checkpoint


def vae_from_checkpoint(checkpoint: dict[str, Any], path: Any = "") -> Any:
    """The VAE of a checkpoint `read_checkpoint` returned, on the CPU, in eval mode."""
    from vaelab.models import VAE
    from vaelab.runs.checkpoints import first_line

    try:
        model = VAE(**checkpoint["hyper_parameters"])
        model.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{path} does not hold a VAE this version can load ({first_line(exc)}); "
            "use a checkpoint written by `python src/train.py`"
        ) from exc
    return model.eval()
