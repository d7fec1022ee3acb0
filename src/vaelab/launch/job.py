"""A Hydra job of one of the apps: how it ends and where it runs.

`reports_errors` wraps each app's Hydra task: a `VaelabError` anywhere below it ends the
run with one line (`vaelab.errors.fail`); inside a sweep a failed job is recorded in its
`sweep_job.json` and the sweep goes on. `entry_point` names an app's script for a job
that must start again as a process of its own (DDP under -m, SLURM), and
`job_output_dir` is the folder Hydra made for this job.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from vaelab.errors import EXIT_USAGE, fail, find_user_error

#: The entry points (src/train.py, src/eval.py, src/generate.py).
SCRIPTS_DIR = Path(__file__).resolve().parents[3] / "src"


def entry_point(app: str) -> Path:
    """The script of an app (its config's name: train, eval, generate). A job that must
    start again as a process of its own runs this, not `sys.argv[0]`, which under a
    launcher such as submitit is the launcher's own script."""
    return SCRIPTS_DIR / f"{app}.py"


F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(task: F) -> F:
    """Decorate a Hydra task so a `VaelabError` anywhere below it exits with one line."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vaelab.launch import sweeps

        try:
            result = task(*args, **kwargs)
        except Exception as exc:
            from vaelab.callbacks.interruption import INTERRUPTED_CODES

            user_error = find_user_error(exc)
            code = getattr(user_error, "exit_code", EXIT_USAGE)
            if sweeps.in_sweep() and code not in INTERRUPTED_CODES:
                return _job_failed(exc, user_error)
            if user_error is None:
                raise
            if sweeps.in_sweep():
                sweeps.end_job("interrupted", str(user_error))
            fail(str(user_error), code)
        except SystemExit as exc:
            interrupted = _interruption(exc)
            if interrupted is None:
                if sweeps.in_sweep():
                    sweeps.end_job("failed", f"exited with code {exc.code}")
                raise
            if sweeps.in_sweep():
                sweeps.end_job("interrupted", str(interrupted))
            fail(str(interrupted), interrupted.exit_code)
        sweeps.end_job("finished")
        return result

    return wrapper  # type: ignore[return-value]


def _job_failed(exc: Exception, user_error: BaseException | None) -> None:
    """A job of a sweep failed: its log gets the reason (the traceback of an unexpected
    error), stderr one line, its record the status; the sweep goes on. A sweeper that
    searches (Optuna) gets the exception, to record the trial as failed."""
    import logging

    from vaelab.launch import sweeps

    message = str(user_error) if user_error is not None else f"{type(exc).__name__}: {exc}"
    message = " ".join(message.split())
    logger = logging.getLogger("vaelab")
    if user_error is None:
        logger.error("job failed", exc_info=exc)
    else:
        logger.error("job failed: %s", message)
    sweeps.end_job("failed", message)
    print(f"vaelab: error: {message}", file=sys.stderr)
    if sweeps.sweeper_searches():
        raise exc
    return None


def _interruption(exc: SystemExit) -> Any:
    """The `RunInterrupted` behind Lightning's `SIGTERMException` (its DDP and
    evaluation paths stop with that bare SystemExit), or None for any other exit."""
    if type(exc).__name__ != "SIGTERMException":
        return None
    import signal

    from vaelab.callbacks.interruption import RunInterrupted, last_interruption

    return last_interruption or RunInterrupted(
        "interrupted by SIGTERM; a training run continues with hydra.run.dir=<its folder> "
        "resume=auto",
        signal.SIGTERM,
    )


def job_output_dir() -> Path:
    """This job's Hydra output folder (the current folder outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path.cwd()
