"""OmegaConf resolvers the configs use; registered before Hydra composes anything."""

from __future__ import annotations

import os
import secrets
from typing import Any

from omegaconf import OmegaConf

from vaelab.runs.naming import job_label


def run_uid() -> str:
    """A short id that keeps run folders apart when two start in the same second.

    Inside a SLURM job it is the job id (readable, and unique on the cluster); else six
    random hex digits. OmegaConf caches it per config, and Hydra copies that cache into
    every job of a sweep, so all jobs of one sweep share their sweep folder.
    """
    slurm = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    return f"j{slurm}" if slurm else secrets.token_hex(3)


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
