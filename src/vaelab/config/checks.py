"""Checks on a composed config, run before anything is created (no run folder, no W&B
run, no process): `check_config(cfg, task)` for the apps train, eval and generate.

Each key's own type and range come from the code that receives it (`vaelab.config.schema`:
the `_target_`'s signature, or `vaelab.config.settings` for an app's own keys). What stays
here are the rules that need several keys, or the machine, at once:

- `ckpt_path` and `resume=auto` together; a checkpoint that is not there or not
  readable; a run folder whose saved config is not readable (eval, generate);
- the cheap objects a job builds first, built once here so that their own multi-key
  rules (a likelihood that cannot model the data, a backbone too deep for the image,
  an optimiser argument torch refuses) stop the run now, not after its folder exists;
- the callbacks and the Trainer, built as the job builds them (no loggers: a W&B run
  would start), so that whatever their constructors refuse (an accelerator, strategy
  or profiler Lightning does not know, a checkpoint callback's `save_top_k=-7`) stops
  the run in one line naming the key;
- a training split smaller than one batch per process (the rule is
  `vaelab.data.batching.check_full_batch`, which the loaders apply too, for data whose
  size is known only once read), or a trainer that trains no step at all;
- more processes than CPU cores, or than visible GPUs.

Each failure is a `ConfigError` (or `CheckpointError`) whose message names the key,
what is wrong and what to type instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vaelab.config.build import JobParts, build_job_parts
from vaelab.config.schema import check_settings, check_targets
from vaelab.config.settings import APP_SETTINGS
from vaelab.errors import CheckpointError, ConfigError
from vaelab.metrics.registry import check_metric_settings


def check_config(
    cfg: DictConfig,
    task: str = "train",
    defaults: DictConfig | None = None,
    *,
    here: bool = True,
    overrides: list[Any] | None = None,
) -> Any:
    """Raise on the first value of `task`'s config (train, eval, generate) that cannot work.
    Return what the checks built, for the job to start from: for train the job's parts
    (`vaelab.config.build.JobParts`), for eval and generate the trained run they opened
    (None for a folder of runs).

    `defaults`: the app's config without the command line's overrides, for the examples
    in messages. `here`: the job runs on this machine (not a cluster's node), so the
    device counts of this machine apply. `overrides`: the parsed command-line
    overrides (eval and generate apply them to the trained run's config; by default
    those of the running Hydra job).
    """
    if task not in APP_SETTINGS:
        raise ValueError(f"no config checks for task {task!r}; known: {', '.join(APP_SETTINGS)}")
    check_settings(cfg, APP_SETTINGS[task], defaults)
    disentanglement = OmegaConf.select(cfg, "eval.disentanglement")
    if isinstance(disentanglement, DictConfig):
        check_metric_settings(disentanglement, defaults)
    if task == "train":
        check_object_groups(cfg)
        check_targets(cfg, defaults)
        return check_train_config(cfg, here=here)
    return check_trained_run(cfg, task, overrides, defaults, here=here)


# --------------------------------------------------------------------------- train


#: Config groups that are a mapping of named objects, each built by its `_target_`.
OBJECT_GROUPS = {"callbacks": "callback", "logger": "logger"}


def check_object_groups(cfg: DictConfig) -> None:
    """Each entry of `callbacks` and `logger` is an object's config (a mapping with a
    `_target_`) or null: anything else would be dropped without a word. A callback
    that takes the disentanglement settings gets them checked as `eval.disentanglement`
    is (`vaelab.metrics.registry`)."""
    from vaelab.config.settings import DisentanglementSettings

    for group, noun in OBJECT_GROUPS.items():
        entries = cfg.get(group)
        if entries is None:
            continue
        if not isinstance(entries, DictConfig):
            raise ConfigError(
                f"{group}={entries!r} must be a {group} option ({group}=default, {group}=none)"
            )
        for key in entries:
            name = str(key)
            entry = entries._get_node(name)
            if entry is None or entry._is_none():
                continue
            if not isinstance(entry, DictConfig) or "_target_" not in entry:
                value = OmegaConf.to_container(entry) if isinstance(entry, DictConfig) else entry
                raise ConfigError(
                    f"{group}.{name}={value!r} is not a {noun}'s config (a mapping with "
                    f"_target_); leave it out with ~{group}.{name}"
                )
            settings = entry.get("settings")  # resolved: ${eval.disentanglement} by default
            if str(entry._target_).endswith(".DisentanglementMetrics") and settings is not None:
                prefix = f"{group}.{name}.settings."
                if not isinstance(settings, DictConfig):
                    raise ConfigError(
                        f"{prefix[:-1]}={settings!r} must be the disentanglement settings "
                        "(e.g. settings=${eval.disentanglement})"
                    )
                fields = DisentanglementSettings.model_fields
                missing = [f for f, info in fields.items() if info.is_required()]
                missing = [f for f in missing if f not in settings]
                if missing:
                    raise ConfigError(
                        f"{prefix}{missing[0]} is required: the callback takes the "
                        "disentanglement settings (e.g. settings=${eval.disentanglement})"
                    )
                check_settings(settings, DisentanglementSettings, None, prefix)
                check_metric_settings(settings)


def check_train_config(cfg: DictConfig, *, here: bool = True) -> JobParts:
    """The multi-key rules of a training config; returns the job's parts, built."""
    if cfg.get("ckpt_path") is not None and cfg.get("resume") is not None:
        raise ConfigError("give either ckpt_path=... or resume=auto, not both")
    if here:
        check_devices(cfg.trainer)
    from vaelab.data.batching import check_full_batch

    parts = build_cheap_parts(cfg)
    datamodule = parts.datamodule
    if cfg.get("train", True):
        check_trains_a_step(cfg.trainer)
        train_size = datamodule.train_size()
        if train_size is not None:
            check_full_batch(
                train_size,
                datamodule.batch_size,
                world_size(cfg.trainer),
                datamodule.examples_per_epoch,
            )
    if cfg.get("ckpt_path") is not None:
        from vaelab.runs.checkpoints import read_checkpoint

        read_checkpoint(str(cfg.ckpt_path))
    if here:  # a cluster's node has devices this machine may lack: its job builds them
        callbacks = check_trainer_and_callbacks(cfg)
        check_metric_names(cfg, parts.model, callbacks)
        # Last: it may download. Missing data stops the run before its folder exists.
        datamodule.check_available()
    return parts


def check_metric_names(cfg: DictConfig, model: Any, callbacks: list[Any]) -> None:
    """A callback's `monitor` and `optimized_metric` name keys the run will log: those of
    the model (`VAE.metric_keys`) and of the callbacks that declare theirs. A monitor
    watches training, so it may name `train/*` and `val/*` keys; the optimised metric
    is read after the test too."""
    logged = set(model.metric_keys())
    for callback in callbacks:
        logged |= set(getattr(callback, "metric_keys", ()))
    during_fit = {k for k in logged if not k.startswith("test/")}
    names = [n for n in (cfg.get("callbacks") or {}) if cfg.callbacks[n]]
    for name in names:
        monitor = cfg.callbacks[name].get("monitor")
        if monitor is not None and str(monitor) not in during_fit:
            raise ConfigError(
                _unknown_metric(f"callbacks.{name}.monitor", str(monitor), during_fit)
            )
    optimized = cfg.get("optimized_metric")
    if optimized is not None and str(optimized) not in logged:
        raise ConfigError(_unknown_metric("optimized_metric", str(optimized), logged))


def _unknown_metric(key: str, value: str, logged: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(value, sorted(logged), n=1)
    hint = f"did you mean {key}={close[0]}?" if close else f"e.g. {key}=val/nelbo"
    shown = sorted(k for k in logged if "/kl_dim/" not in k)
    return (
        f"{key}={value} is not a metric this run logs ({hint}); it logs {', '.join(shown)} "
        "and the KL of each latent dimension (val/kl_dim/<d>)"
    )


def check_trainer_and_callbacks(cfg: DictConfig) -> list[Any]:
    """Build each callback of `cfg.callbacks` and the Trainer of `cfg.trainer` as the job
    will (`vaelab.lightning.trainer.build_trainer`), without loggers, and throw them away: an
    exception from a constructor becomes a `ConfigError` naming the config key and
    the constructor's own message. `paths.output_dir` is a temporary path that is never
    created (the job's folder is not chosen yet): the constructors only store it.
    Returns the callbacks it built."""
    import copy
    import logging
    import tempfile
    import warnings

    from hydra.utils import instantiate
    from omegaconf import open_dict

    from vaelab.lightning.trainer import build_trainer, without_disabled

    probe = copy.deepcopy(cfg)
    with open_dict(probe):
        probe.paths.output_dir = str(Path(tempfile.gettempdir()) / "vaelab-preflight-run")
    # The job says which devices and batch limits it uses; this check says nothing.
    # Lightning's rank-zero messages go through loggers with levels of their own.
    names = [
        f"lightning.{part}{sub}"
        for part in ("pytorch", "fabric")
        for sub in ("", ".utilities.rank_zero")
    ]
    chatty = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in chatty]
    for logger in chatty:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the job's own Trainer warns, once
            built = [
                _constructed(f"callbacks.{name}", instantiate, entry)
                for name, entry in (probe.get("callbacks") or {}).items()
                if entry and "_target_" in entry
            ]
            callbacks = without_disabled([c for c in built if c is not None], probe.trainer)
            _constructed("trainer", build_trainer, probe.trainer, callbacks, [])
    finally:
        for logger, level in zip(chatty, levels, strict=True):
            logger.setLevel(level)
    return callbacks


def _constructed(key: str, build: Any, *arguments: Any, later_in_job: bool = True) -> Any:
    """`build(*arguments)`, its exception as a one-line `ConfigError` naming `key`. With
    `later_in_job`, None when the value reads Hydra's job settings
    (`${hydra:runtime.output_dir}`), which exist only once the job runs: the job builds
    it then."""
    from omegaconf.errors import InterpolationResolutionError

    from vaelab.errors import VaelabError, find_user_error

    try:
        return build(*arguments)
    except VaelabError:
        raise
    except Exception as exc:
        user_error = find_user_error(exc)  # Hydra's instantiate wraps vaelab's own
        if user_error is not None:
            raise user_error from None
        chain: list[BaseException] = [exc]
        while chain[-1].__cause__ is not None:  # Hydra's InstantiationException wraps it
            chain.append(chain[-1].__cause__)
        if later_in_job and any(
            isinstance(e, InterpolationResolutionError) and "HydraConfig was not set" in str(e)
            for e in chain
        ):
            return None
        cause = chain[-1]
        message = " ".join(str(cause).split()) or type(cause).__name__
        raise ConfigError(
            f"{key}: {message} (its settings: python src/train.py --cfg job --package {key})"
        ) from None


def build_cheap_parts(cfg: DictConfig) -> JobParts:
    """Build the data module (no data is read in its constructor), the model and its
    optimiser, as the job will; their own multi-key rules raise here. Returns the
    job's parts (the optimiser is built again by Lightning, from the model)."""
    import torch
    from hydra.utils import get_object

    from vaelab.models.lr_schedule import check_scheduler
    from vaelab.models.optimizer import optimizer_arguments

    def guard(key: str, build: Any, *arguments: Any) -> Any:
        return _constructed(key, build, *arguments, later_in_job=False)

    parts = build_job_parts(cfg, verbose=False, guard=guard)
    model = parts.model
    arguments = optimizer_arguments(model.hparams.optimizer)
    optimizer_class = get_object(arguments.pop("_target_"))

    def make_optimizer() -> Any:
        return optimizer_class([torch.zeros(1, requires_grad=True)], **arguments)

    try:
        optimizer = make_optimizer()
    except ValueError as exc:  # torch's own range checks: "Invalid learning rate: -1.0"
        raise ConfigError(f"model.optimizer: {exc} (e.g. model.optimizer.lr=0.001)") from None
    except Exception:
        guard("model.optimizer", make_optimizer)  # anything else: one line naming the key
        raise
    scheduler = model.hparams.get("scheduler")
    guard("model.scheduler", check_scheduler, scheduler, optimizer, cfg.trainer)
    return parts


def check_trains_a_step(trainer_cfg: DictConfig) -> None:
    """A fit that would end before its first step is a mistake, not a run."""
    for key, nothing in (("limit_train_batches", 0), ("max_epochs", 0), ("max_steps", 0)):
        value = trainer_cfg.get(key)
        if value is not None and not isinstance(value, bool) and value == nothing:
            raise ConfigError(
                f"trainer.{key}={value} trains no step; to only test a checkpoint use "
                "train=false ckpt_path=<checkpoint>"
            )


def world_size(trainer_cfg: DictConfig) -> int:
    """Processes a trainer config starts (devices x nodes), 1 when it cannot tell."""
    devices = trainer_cfg.get("devices", 1)
    count = len(devices) if isinstance(devices, list) else devices
    if not isinstance(count, int) or count < 1:
        count = 1
    nodes = trainer_cfg.get("num_nodes", 1)
    return count * (nodes if isinstance(nodes, int) and nodes >= 1 else 1)


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_devices(trainer_cfg: DictConfig) -> None:
    """Devices that this machine does not have: GPUs that are not visible, or more CPU
    processes than cores (each would compete for the same cores, and a typo such as
    trainer.devices=64 would start 64 processes)."""
    import torch

    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    devices = trainer_cfg.get("devices", 1)
    available = torch.cuda.device_count()
    if accelerator in {"gpu", "cuda"}:
        if available == 0:
            raise ConfigError(
                f"trainer.accelerator={accelerator} but no CUDA GPU is visible here; "
                "use trainer=cpu (or trainer=ddp_cpu for several CPU processes)"
            )
        if isinstance(devices, int) and devices > available:
            raise ConfigError(
                f"trainer.devices={devices} but only {available} GPU(s) are visible; "
                f"use trainer.devices={available}"
            )
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and available == 0)
    cores = cpu_cores()
    if on_cpu and isinstance(devices, int) and devices > cores:
        raise ConfigError(
            f"trainer.devices={devices} would start {devices} CPU processes on "
            f"{cores} core(s); use trainer.devices={cores} or fewer"
        )


# ---------------------------------------------------------------------- eval, generate


def check_checkpoint_path(cfg: DictConfig, script: str) -> None:
    """`ckpt_path` is given and names a file (its contents are checked when opened), or,
    for eval, a folder of runs that holds at least one run checkpoint."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or cfg.get("ckpt_path") in (None, ""):
        raise ConfigError(
            f"ckpt_path is required: python src/{script}.py "
            "ckpt_path=<run folder>/checkpoints/last.ckpt"
        )
    path = Path(str(cfg.ckpt_path))
    if path.is_dir() and script == "eval":
        from vaelab.runs.checkpoints import run_checkpoints

        run_checkpoints(path)  # a sweep or run folder: one line if it holds no checkpoint
        return
    if not path.is_file():
        found = sorted(p.name for p in path.parent.glob("*.ckpt")) if path.parent.is_dir() else []
        hint = f" (in {path.parent}: {', '.join(found)})" if found else ""
        raise CheckpointError(f"no checkpoint at {path}{hint}")


def check_trained_run(
    cfg: DictConfig,
    task: str,
    overrides: list[Any] | None,
    defaults: DictConfig | None = None,
    *,
    here: bool = True,
) -> Any:
    """eval/generate: the checkpoint opens, the run's saved config reads, and the run's
    data and trainer with the command line's overrides on top pass the same checks as
    for training; the chosen data has the shape the checkpoint was trained on. Returns
    the `vaelab.runs.trained.TrainedRun` that was opened for this, so a job opens it once."""
    from vaelab.runs.trained import load_trained_run

    check_checkpoint_path(cfg, task)
    if Path(str(cfg.ckpt_path)).is_dir():
        return None  # a folder of runs: each is checked when `vaelab.eval` reaches it
    run = load_trained_run(cfg, overrides, defaults)
    if task == "eval" and here and "trainer" in run.config:
        check_devices(run.config.trainer)
    return run
