"""Weights & Biases set-up: never prompt, one W&B run per job, grouped per sweep.

- Mode: `WANDB_MODE` wins when set. Otherwise a run goes online only when credentials
  exist (`WANDB_API_KEY` or a `~/.netrc` entry for the W&B host); without them it
  logs offline and says, in one line, how to sync later. An online start that fails
  (no network) falls back to offline the same way.
- Identity: each job is its own run, named from its overrides (`beta=4,latent_dim=16`),
  in a group per sweep (the sweep folder) or, for a single run, per experiment name.
- Files: the W&B folder lives inside the run folder.
- `finish_loggers` ends the run at the end of every job, also a failed one, so that
  the jobs of a multirun never merge into one W&B run.
"""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, cast

log = logging.getLogger(__name__)

WANDB_HOST = "api.wandb.ai"


def has_wandb_credentials() -> bool:
    """True if W&B could log in without asking: an API key in the environment or netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = os.environ.get("WANDB_BASE_URL", f"https://{WANDB_HOST}").split("://")[-1].rstrip("/")
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_mode(requested: str | None = None) -> Literal["online", "offline", "disabled"]:
    """'online', 'offline' or 'disabled': explicit request, then WANDB_MODE, then credentials."""
    mode = requested or os.environ.get("WANDB_MODE")
    if mode in {"online", "offline", "disabled", "dryrun", "run"}:
        resolved = {"dryrun": "offline", "run": "online"}.get(mode, mode)
        # dryrun and run mapped to offline and online: one of the three
        return cast('Literal["online", "offline", "disabled"]', resolved)
    return "online" if has_wandb_credentials() else "offline"


def wandb_logger(
    project: str = "vaelab",
    entity: str | None = None,
    save_dir: str = ".",
    name: str | None = None,
    group: str | None = None,
    tags: Sequence[str] | None = None,
    mode: Literal["online", "offline", "disabled", "dryrun", "run"] | None = None,
    log_model: bool | str = False,
    run_id: str | None = None,
    **kwargs: Any,
) -> Any:
    """A Lightning `WandbLogger` that never prompts: see the module docstring.

    `name`/`group` default to the Hydra job's identity; `run_id` resumes a W&B run.
    """
    from vaelab.tracking.identity import hydra_job_identity
    from vaelab.tracking.wandb_logger import WandbLogger

    identity = hydra_job_identity()
    mode = resolve_mode(mode)
    save_path = Path(save_dir)
    save_path.mkdir(parents=True, exist_ok=True)
    run_id = run_id or saved_run_id(save_path)
    if mode == "offline" and not os.environ.get("WANDB_MODE"):
        log.warning(
            "W&B: no credentials found, logging offline to %s/wandb; sync later with: "
            "wandb sync %s/wandb/offline-run-*",
            save_path,
            save_path,
        )
    common = {
        "project": os.environ.get("WANDB_PROJECT", project),
        "entity": entity or os.environ.get("WANDB_ENTITY"),
        "save_dir": str(save_path),
        "name": name or identity["name"],
        "group": group or identity["group"],
        "job_type": identity["job_type"],
        "tags": list(tags or []),
        "log_model": log_model,
        "id": run_id,
        "resume": "allow" if run_id else None,
        **kwargs,
    }
    logger = WandbLogger(mode=mode, **common)
    if mode != "online":
        return logger
    try:
        _ = logger.experiment  # start now, so a network failure surfaces here
    except Exception as exc:  # wandb raises several types for a failed start
        log.warning(
            "W&B: could not start online (%s); logging offline instead, sync later with: "
            "wandb sync %s/wandb/offline-run-*",
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            save_path,
        )
        logger = WandbLogger(mode="offline", **common)
    return logger


RUN_ID_FILE = "vaelab_run_id"


def saved_run_id(run_dir: str | os.PathLike[str]) -> str | None:
    """The W&B run id a run folder's first job recorded, to continue that W&B run."""
    path = Path(run_dir) / "wandb" / RUN_ID_FILE
    return path.read_text().strip() or None if path.is_file() else None


def wandb_loggers(loggers: Iterable[Any]) -> list[Any]:
    """vaelab's W&B loggers (`logger=wandb`) that hold a real run: on DDP ranks > 0
    they hold a dummy."""
    from lightning.pytorch.utilities import rank_zero_only

    from vaelab.tracking.wandb_logger import WandbLogger

    if getattr(rank_zero_only, "rank", 0) != 0:
        return []
    return [lg for lg in loggers if isinstance(lg, WandbLogger)]


def mlflow_loggers(loggers: Iterable[Any]) -> list[Any]:
    """vaelab's MLflow loggers (`logger=mlflow`); their methods do nothing on DDP ranks
    other than 0."""
    from vaelab.tracking.mlflow_logger import MLFlowLogger

    return [lg for lg in loggers if isinstance(lg, MLFlowLogger)]


def describe_run(loggers: Iterable[Any], config: dict[str, Any]) -> None:
    """Give each W&B run the job's resolved config and say how its summaries reduce;
    keep each tracking run's id with the run folder (a resumed run continues it)."""
    for logger in mlflow_loggers(loggers):
        logger.remember_run()
    for logger in wandb_loggers(loggers):
        run = logger.experiment
        if not isinstance(getattr(run, "id", None), str):
            continue  # rank > 0 holds a dummy experiment
        # Keep the id with the run folder: a resumed run continues this W&B run.
        id_file = Path(logger.save_dir) / "wandb" / RUN_ID_FILE
        id_file.parent.mkdir(parents=True, exist_ok=True)
        id_file.write_text(run.id)
        run.config.update(config, allow_val_change=True)
        for stage in ("train", "val"):
            run.define_metric(f"{stage}/nelbo", summary="min")
            run.define_metric(f"{stage}/loss", summary="min")


def record_summary(loggers: Iterable[Any], values: dict[str, float | None]) -> None:
    """Write final numbers (best val nelbo, test metrics) into each W&B run's summary."""
    known = {key: value for key, value in values.items() if value is not None}
    for logger in wandb_loggers(loggers):
        logger.update_summary(known)
    for logger in mlflow_loggers(loggers):
        logger.record_summary(known)


def finish_loggers(loggers: Iterable[Any], failed: bool = False) -> None:
    """End every W&B and MLflow run of this job (a failed job's as failed); a later job
    of the sweep starts a new one."""
    for logger in wandb_loggers(loggers):
        logger.finish(exit_code=1 if failed else 0)
    for logger in mlflow_loggers(loggers):
        logger.finalize("failed" if failed else "success")


def continue_run(run_dir: str | os.PathLike[str] | None, wandb_cfg: Any) -> Any | None:
    """The W&B run a training job recorded in `run_dir`, opened again to add to it.

    For `src/eval.py` and `src/generate.py`: their numbers and images belong with the
    training's W&B run, not in a new one. Name, group and config are left as training
    set them (a resumed run keeps what it is not told). None, with a log line, when the
    run had no W&B logger (`wandb_cfg` empty), recorded no run id, or W&B is disabled.
    """
    if run_dir is None or not wandb_cfg:
        return None
    run_id = saved_run_id(run_dir)
    if run_id is None:
        log.info("W&B: no run recorded in %s/wandb; results go to files only", run_dir)
        return None
    mode = resolve_mode(wandb_cfg.get("mode"))
    if mode == "disabled":
        return None
    import wandb

    common: dict[str, Any] = {  # keyword arguments of wandb.init
        "id": run_id,
        "resume": "allow",
        "project": os.environ.get("WANDB_PROJECT", wandb_cfg.get("project") or "vaelab"),
        "entity": wandb_cfg.get("entity") or os.environ.get("WANDB_ENTITY"),
        "dir": str(run_dir),
    }
    try:
        return wandb.init(mode=mode, **common)
    except Exception as exc:  # wandb raises several types for a failed start
        if mode != "online":
            raise
        log.warning(
            "W&B: could not continue run %s online (%s); logging offline instead, sync "
            "later with: wandb sync %s/wandb/offline-run-*",
            run_id,
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            run_dir,
        )
        return wandb.init(mode="offline", **common)
