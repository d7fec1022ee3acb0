"""OmegaConf resolvers the configs use; registered before Hydra composes anything."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


def run_uid() -> str:
    """A short id that keeps run folders apart when two start in the same second.

    Inside a SLURM job it is the job id (readable, and unique on the cluster); else six
    random hex digits. OmegaConf caches it per config, and Hydra copies that cache into
    every job of a sweep, so all jobs of one sweep share their sweep folder.
    """
    slurm = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    return f"j{slurm}" if slurm else secrets.token_hex(3)


def _swept_keys(sweep_dir: Path) -> set[str] | None:
    """Keys the sweep varies, read from the multirun.yaml Hydra writes before any job."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return None
    task = OmegaConf.load(path).hydra.overrides.task
    parsed = OverridesParser.create().parse_overrides(list(task))
    return {o.key_or_group for o in parsed if o.is_sweep_override()}


def job_label(hydra_cfg: Any) -> str:
    """A job's name in a sweep: its values of the swept keys, `beta=4,latent_dim=16`.

    The swept keys are those with several values in multirun.yaml (which Hydra's basic
    sweeper writes before any job) and those in the sweeper's search space (Optuna).
    Without either (a single run) it falls back to all the job's
    overrides but the excluded ones. '/' in group names becomes '.', so that the label
    is one folder name.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    exclude = set(hydra_cfg.job.config.override_dirname.exclude_keys)
    swept = _swept_keys(Path(str(hydra_cfg.sweep.dir)))
    searched = (hydra_cfg.get("sweeper") or {}).get("params")  # Optuna's search space
    if searched:
        swept = (swept or set()) | set(searched)
    items = []
    for override in OverridesParser.create().parse_overrides(list(hydra_cfg.overrides.task)):
        key = override.key_or_group
        if key in exclude or (swept is not None and key not in swept):
            continue
        items.append(f"{override.get_key_element()}={override.get_value_element_as_str()}")
    return ",".join(sorted(items)).replace("/", ".")


#: Trainer accelerators that run on GPUs, so that a SLURM job asks for them.
GPU_ACCELERATORS = ("gpu", "cuda")


def gpus_per_node(accelerator: Any, devices: Any) -> int:
    """The GPUs a SLURM job asks for per node: the trainer's devices on a GPU
    accelerator, none otherwise (a CPU partition refuses a request for GPUs).
    `accelerator: auto` asks for none: name the GPU trainer (trainer=gpu) or set
    hydra.launcher.gpus_per_node."""
    from vaelab.errors import ConfigError

    if str(accelerator) not in GPU_ACCELERATORS:
        return 0
    if isinstance(devices, int) and devices > 0:
        return devices
    raise ConfigError(
        f"trainer.devices={devices} does not say how many GPUs a SLURM job needs; give a "
        "count (trainer.devices=4) or hydra.launcher.gpus_per_node=4"
    )


def study_value(index: Any, values: Any) -> Any:
    """`${study_value:${hp_index},[1, 2, 4, 6, 8, 16]}`: a study's hyperparameter value at
    `hp_index` (conf/method/: one list per method, as in Locatello et al. 2019)."""
    from vaelab.errors import ConfigError

    values = list(values)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(values):
        raise ConfigError(
            f"hp_index={index!r} is not a position in this method's {len(values)} values "
            f"{values}; use hp_index=0..{len(values) - 1}"
        )
    return values[index]


def _protocol_count(key: str, _root_: Any) -> Any:
    from vaelab.metrics.protocol import protocol_value

    return protocol_value(key, str(_root_.eval.disentanglement.protocol))


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("uid"):
        OmegaConf.register_new_resolver("uid", run_uid, use_cache=True)
    if not OmegaConf.has_resolver("gpus_per_node"):
        OmegaConf.register_new_resolver("gpus_per_node", gpus_per_node)
    if not OmegaConf.has_resolver("protocol"):
        # `${protocol:mig.n_samples}`: the count of eval.disentanglement.protocol's preset.
        OmegaConf.register_new_resolver("protocol", _protocol_count)
    if not OmegaConf.has_resolver("study_value"):
        OmegaConf.register_new_resolver("study_value", study_value)
    if not OmegaConf.has_resolver("job_label"):
        OmegaConf.register_new_resolver("job_label", lambda _root_: job_label(_root_.hydra))
