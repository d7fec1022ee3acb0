"""`train(cfg)`: the function `src/train.py` calls. Builds data, model and trainer from
the composed config, fits, tests, and returns the metric a sweeper optimises."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig

from vaelab.config import handover
from vaelab.config.build import JobParts, build_job_parts, instantiate_group
from vaelab.config.checks import check_config
from vaelab.lightning.trainer import (
    build_trainer,
    tidy_lightning_output,
    use_flush_denormal,
    without_disabled,
)

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> float | None:
    """Fit and test one experiment; return `cfg.optimized_metric` (e.g. best val/nelbo)."""
    checked, parts = handover.take_over(cfg, "train")
    if not checked:  # not checked in this process: a job of a multirun, a cluster's node
        parts = check_config(cfg)
    # Heavy imports after the config checks: a bad override fails in a fraction of a second.
    from vaelab.launch import distributed, sweeps
    from vaelab.runs import lock as run_lock
    from vaelab.tracking import identity

    plan = sweeps.start_job(cfg)  # a continued sweep: skip a finished job, resume a killed one
    if plan.skip:
        return plan.value
    if plan.resume and cfg.get("resume") is None and cfg.get("ckpt_path") is None:
        from omegaconf import open_dict

        with open_dict(cfg):
            cfg.resume = "auto"

    if distributed.needs_own_ddp_group(cfg):
        return distributed.run_job_as_single_run(cfg, identity.hydra_job_identity())
    with run_lock.holding(cfg.paths.output_dir):  # one run per folder
        return fit_test_and_report(cfg, parts)


def fit_test_and_report(cfg: DictConfig, parts: JobParts | None = None) -> float | None:
    """`train`'s work in this process: fit, test, record the summaries. `parts`: the
    data module and model the config checks built (built here when None)."""
    from omegaconf import OmegaConf

    from vaelab.tracking import setup as tracking

    tidy_lightning_output()
    if parts is None:
        parts = build_job_parts(cfg)
    else:  # built by the checks: training draws what it would have drawn had it built them
        use_flush_denormal(bool(cfg.get("flush_denormal", True)))
        log.info("Seed set to %d (the data module and model were built by the checks)", cfg.seed)
        parts.continue_random_streams()
    datamodule, model = parts.datamodule, parts.model
    ckpt_path, resumed_step = resolve_checkpoint(cfg, model)
    callbacks = without_disabled(instantiate_group(cfg.get("callbacks")), cfg.trainer)
    loggers = instantiate_group(cfg.get("logger"))
    if ckpt_path is not None:
        for (
            logger
        ) in loggers:  # history files: each step once (vaelab.tracking.csv_logger.CSVLogger)
            if hasattr(logger, "continue_from_step"):
                logger.continue_from_step(resumed_step)
    failed = True
    try:
        # a DictConfig's container: a dict
        config = cast("dict[str, Any]", OmegaConf.to_container(cfg, resolve=True))
        tracking.describe_run(loggers, config)
        model.configure_accumulation(cfg.trainer.get("accumulate_grad_batches"))
        trainer = build_trainer(cfg.trainer, callbacks, loggers)
        metrics = fit_and_test(cfg, trainer, model, datamodule, ckpt_path)
        name = cfg.get("optimized_metric")
        optimized = _optimized_value(trainer, name, metrics)
        summary = _test_metrics(metrics)
        if optimized is not None:
            summary[optimized[0]] = optimized[1]
        tracking.record_summary(loggers, summary)
        failed = False
    finally:
        # Every job ends its W&B run, a failed one too: a sweep's next job starts fresh.
        tracking.finish_loggers(loggers, failed=failed)
    return optimized[1] if optimized is not None else None


def resolve_checkpoint(cfg: DictConfig, model: Any) -> tuple[str | None, int]:
    """The checkpoint to continue from and its global step: `ckpt_path`; with
    `resume=auto` this run folder's `checkpoints/last.ckpt` if there is one ((None, 0)
    otherwise); with `resume=intact` its newest checkpoint that passes its checksum.
    Checked before training starts: readable, intact, a vaelab checkpoint, and of the
    same model as the config."""
    from pathlib import Path

    from vaelab.errors import ConfigError
    from vaelab.runs.checkpoints import check_same_model, newest_intact_checkpoint, read_checkpoint

    path = cfg.get("ckpt_path")
    resume = cfg.get("resume")
    if resume is None and path is None and int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0:
        resume = "auto"  # a requeued SLURM job continues where it stopped
    if resume not in (None, "auto", "intact"):
        raise ConfigError(
            f"resume={resume!r} is not supported; use resume=auto, resume=intact or ckpt_path=..."
        )
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    if resume == "intact":
        found = newest_intact_checkpoint(folder)
        if found is None:
            log.info("resume=intact: no checkpoint in %s yet, starting from scratch", folder)
            return None, 0
        path, checkpoint = found
    elif resume == "auto":
        last = folder / "last.ckpt"
        if not last.is_file():
            log.info("resume=auto: no %s yet, starting from scratch", last)
            return None, 0
        path, checkpoint = last, read_checkpoint(last)
    elif path is None:
        return None, 0
    else:
        checkpoint = read_checkpoint(path)
    step = int(checkpoint.get("global_step", 0))
    if resume is not None:
        log.info("resume=%s: continuing from %s (step %d)", resume, path, step)
    check_same_model(checkpoint, model.hparams, path)
    return str(path), step


def fit_and_test(
    cfg: DictConfig, trainer: Any, model: Any, datamodule: Any, ckpt_path: str | None
) -> dict[str, float]:
    """`trainer.fit` (continuing from `ckpt_path`) then `trainer.test` on the best
    checkpoint, or on `ckpt_path` when not training; the last logged metrics."""
    if cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test", True):
        checkpoint = trainer.checkpoint_callback
        best = checkpoint.best_model_path if checkpoint and cfg.get("train", True) else ""
        if best and not Path(best).is_file():
            # The checkpoint continued from had reached the run's end: fit trained nothing
            # here, and the best path its callback state carries names a file this folder
            # never got. The model under test is the checkpoint itself.
            log.info("nothing trained after %s: testing it as it is", ckpt_path)
            best = ""
        trainer.test(model, datamodule=datamodule, ckpt_path=best or ckpt_path)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    if trainer.is_global_zero:
        write_fitted_sampler_samples(cfg, trainer, model, datamodule)
    return metrics


def write_fitted_sampler_samples(
    cfg: DictConfig, trainer: Any, model: Any, datamodule: Any
) -> None:
    """With `sampler=gmm|two_stage|maf`: fit it for the checkpoint the run ends with
    (saved beside it) and write `images/samples_<sampler>.png` next to the prior's
    `samples.png`."""
    from vaelab.runs.images import make_grid, save_png
    from vaelab.samplers.use import ready_sampler, sampled_images

    config = cfg.get("sampler")
    checkpoint = trainer.checkpoint_callback
    path = checkpoint.best_model_path or checkpoint.last_model_path if checkpoint else ""
    if not config or str(config.get("_target_")).endswith(".PriorSampler") or not path:
        return
    sampler, _ = ready_sampler(config, model.eval(), datamodule, Path(path))
    grids = cfg.get("callbacks", {}).get("image_grids") or {}
    n, nrow = int(grids.get("n_images", 32)), int(grids.get("nrow", 8))
    images = sampled_images(sampler, model, n, 1.0, int(grids.get("seed", 0)))
    out = Path(cfg.paths.output_dir) / "images" / f"samples_{sampler.name}.png"
    save_png(make_grid(images, nrow), out, upscale=int(grids.get("upscale", 2)))
    log.info("wrote %s", out)


def _optimized_value(
    trainer: Any, name: str | None, metrics: dict[str, float]
) -> tuple[str, float | None] | None:
    """What a sweeper optimises, under the summary key that says what it is: the best
    value the checkpoint callback saw (`best/val_nelbo` for `val/nelbo`) when it
    monitors `name`, else the last logged one (`final/val_recon`). None without a name."""
    if not name:
        return None
    key = name.replace("/", "_")
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.monitor == name:
        score = checkpoint.best_model_score
        if score is not None:
            return "best/" + key, float(score)
    return "final/" + key, metrics.get(name)


def _test_metrics(metrics: dict[str, float]) -> dict[str, float | None]:
    # float | None: the run summary it starts, whose optimised value may be None
    return {k: v for k, v in metrics.items() if k.startswith("test/")}
