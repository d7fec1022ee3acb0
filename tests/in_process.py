"""Run an app's command line (`python src/<app>.py <overrides>`) inside the test process.

A child process pays about four seconds of imports (torch, Lightning, Hydra, W&B) before
it does anything; in process the imports are paid once per test session. The app runs
exactly as `src/<app>.py` runs it: `vaelab.config.preflight.preflight`, then the Hydra-decorated
`main` of the entry point, with `sys.argv` set to the command line. The result is the
`Finished` a child would have given (the fields of `subprocess.CompletedProcess`): the
exit code (0, or the code of the `SystemExit` the app raised) and what it wrote to
stdout and stderr.

What a process would have thrown away at its end is put back afterwards, so that one
run cannot leak into the next test: the environment, the working folder, `sys.argv`,
the root logger's handlers and level, warning filters, signal handlers, torch's thread
count and denormal mode, Hydra's global state and the run-folder locks the app took.

Keep the child process (`helpers.run_app`) where the process boundary is what a test is
about: exit codes and stderr of the one-line error contract, signals, locks between
runs, kill -9, DDP (Lightning re-launches the script) and SLURM.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re
import runpy
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from helpers import REPO, sweep_folder

#: Signals an app may take over (vaelab's Interruption, Lightning's connector, submitit).
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


@dataclass(frozen=True)
class Finished:
    """A command that ran in this process, as `subprocess.CompletedProcess` describes a
    child that ended (not that class: this module starts no process)."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def call_app(app: str, *overrides: str, cwd: Path = REPO, env: dict | None = None) -> Finished:
    """`python src/<app>.py <overrides>` (train, eval, generate) run in this process."""
    script = str(REPO / "src" / f"{app}.py")
    # As `python <script>` runs it: the script's own `if __name__ == "__main__":` block.
    run = functools.partial(runpy.run_path, script, run_name="__main__")
    return _call([script, *overrides], run, cwd, env)


def call_module(module: str, *args: str, cwd: Path = REPO, env: dict | None = None) -> Finished:
    """`python -m <module> <args>` (e.g. vaelab.compare) run in this process."""
    run = functools.partial(runpy.run_module, module, run_name="__main__", alter_sys=True)
    return _call([module, *args], run, cwd, env, command=["-m", module, *args])


def call_preflight(
    app: str, *overrides: str, cwd: Path = REPO, env: dict | None = None
) -> Finished:
    """Only the first step of `python src/<app>.py <overrides>`: its pre-flight checks
    (`vaelab.config.preflight.preflight`). Exit code 0 means the checks let the command
    line through and the app would go on to run; none of it starts a process, so a
    DDP or launcher command line may be checked here too."""
    from vaelab.config.preflight import preflight

    script = str(REPO / "src" / f"{app}.py")
    run = functools.partial(preflight, app, list(overrides))
    return _call([script, *overrides], run, cwd, env, starts_processes=False)


def _call(
    argv: list[str],
    run: Callable[[], object],
    cwd: Path,
    env: dict | None,
    command: list[str] | None = None,
    *,
    starts_processes: bool = True,
) -> Finished:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with _as_a_fresh_process(cwd, env, argv, starts_processes=starts_processes):
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                run()
        except SystemExit as exc:
            code = _exit_code(exc.code, err)
    args = [sys.executable, *(command or argv)]
    return Finished(args, code, out.getvalue(), err.getvalue())


def call_train(*overrides: str, cwd: Path = REPO, env: dict | None = None) -> Finished:
    """`python src/train.py <overrides>` run in this process."""
    return call_app("train", *overrides, cwd=cwd, env=env)


def call_sweep(log_dir: Path, *overrides: str, env: dict | None = None) -> Path:
    """`python src/train.py -m <overrides>` in this process (Hydra's basic launcher runs
    the jobs one after another here); assert it succeeded, return its sweep folder."""
    return sweep_folder(log_dir, call_train("-m", *overrides, f"paths.log_dir={log_dir}", env=env))


def _exit_code(code: object, err: io.StringIO) -> int:
    """What `sys.exit(code)` makes a process exit with: None is 0, a message is 1 (and
    goes to stderr)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    err.write(f"{code}\n")
    return 1


def _to_stderr(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


#: Loggers an app changes for the rest of its process: the root (Hydra's job logging)
#: and Lightning's, whose handlers `vaelab.lightning.trainer.tidy_lightning_output` takes away.
_LOGGERS = (
    "",
    "lightning",
    "lightning.pytorch",
    "lightning.fabric",
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)
#: Overrides whose run starts processes of its own (Lightning re-launches the script for
#: DDP; these launchers start jobs): such a run is a child process's (helpers.run_app).
_STARTS_PROCESSES = re.compile(r"^trainer=ddp|^trainer\.strategy=ddp|^hydra/launcher=(?!basic)")


def _refuse_process_starters(argv: list[str]) -> None:
    starters = [a for a in argv[1:] if _STARTS_PROCESSES.match(a)]
    assert not starters, f"{' '.join(starters)} starts processes: run it with helpers.run_app"


@contextlib.contextmanager
def _as_a_fresh_process(
    cwd: Path, env: dict | None, argv: list[str], *, starts_processes: bool = True
) -> Iterator[None]:
    """The block runs as a new process would; afterwards this one is as it was. Each
    piece of state is put back on its own, so one that fails to restore cannot leave
    the others changed. `starts_processes`: the block may run the whole app, so a
    command line that would start processes of its own is refused."""
    if starts_processes:
        _refuse_process_starters(argv)
    with contextlib.ExitStack() as restore:
        restore.enter_context(_environment(cwd, env, argv))
        restore.enter_context(_logging())
        restore.enter_context(_signal_handlers())
        restore.enter_context(_torch_state())
        restore.enter_context(fresh_hydra())
        restore.enter_context(_run_folder_locks())
        restore.callback(_end_wandb)
        restore.enter_context(warnings.catch_warnings())
        _default_warning_filters()
        warnings.showwarning = _to_stderr  # as a process shows them, not to pytest
        yield


@contextlib.contextmanager
def _environment(cwd: Path, env: dict | None, argv: list[str]) -> Iterator[None]:
    environ, folder, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    os.environ.update(env or {})
    os.chdir(cwd)
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved_argv
        os.chdir(folder)
        os.environ.clear()
        os.environ.update(environ)


@contextlib.contextmanager
def _logging() -> Iterator[None]:
    saved = {}
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        state = (list(logger.handlers), list(logger.filters), logger.level, logger.propagate)
        saved[name] = (logger, state)
    try:
        yield
    finally:
        for logger, (handlers, filters, level, propagate) in saved.values():
            for handler in list(logger.handlers):
                if handler not in handlers:  # the run's console and <run>/<app>.log
                    logger.removeHandler(handler)
                    handler.close()  # flushed and closed, as at a process's exit
            logger.handlers[:] = handlers
            logger.filters[:] = filters
            logger.setLevel(level)
            logger.propagate = propagate


@contextlib.contextmanager
def _signal_handlers() -> Iterator[None]:
    saved = {signum: signal.getsignal(signum) for signum in _SIGNALS}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            if handler is not None:  # None: a handler not set from Python, left alone
                signal.signal(signum, handler)


@contextlib.contextmanager
def _torch_state() -> Iterator[None]:
    """Threads, determinism, denormals and the global generators (seed_everything)."""
    import random

    import numpy as np
    import torch

    threads = torch.get_num_threads()
    deterministic = (  # Lightning's trainer.deterministic=true sets it for the process
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    generators = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        torch.set_flush_denormal(False)  # the default of a new process
        random.setstate(generators[0])
        np.random.set_state(generators[1])
        torch.set_rng_state(generators[2])


@contextlib.contextmanager
def fresh_hydra() -> Iterator[None]:
    """Hydra's process-wide singletons: empty for the block, as in a new process, and
    as they were afterwards."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    hydra_instance = GlobalHydra.instance().hydra
    hydra_config = HydraConfig.instance().cfg
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None  # type: ignore[assignment]
    try:
        yield
    finally:
        GlobalHydra.instance().clear()
        GlobalHydra.instance().hydra = hydra_instance
        HydraConfig.instance().cfg = hydra_config


@contextlib.contextmanager
def _run_folder_locks() -> Iterator[None]:
    from vaelab.runs import lock as run_lock

    held = set(run_lock.held_folders())
    try:
        yield
    finally:
        for added in set(run_lock.held_folders()) - held:
            run_lock.release(added)  # a process's locks end with it


def _end_wandb() -> None:
    """W&B reads its settings once a process and keeps its service running: end both,
    as a process's exit would, so that the next run reads its own WANDB_* settings."""
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.teardown()


def _default_warning_filters() -> None:
    """Python's own filters of a process started without -W (not pytest's)."""
    warnings.resetwarnings()
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
    for category in (PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)


def killed_and_resumed(tmp_path: Path, *overrides: str) -> tuple[dict, dict]:
    """Train `overrides` to the end in one folder; in another, SIGKILL the same run once
    it has written its first last.ckpt (before its last epoch), then resume it with
    `resume=auto`. Returns the two runs' final last.ckpt: (uninterrupted, resumed)."""
    import torch
    from helpers import kill_train_when

    def last(run: Path) -> dict:
        path = run / "checkpoints" / "last.ckpt"
        checkpoint: dict = torch.load(path, map_location="cpu", weights_only=False)
        return checkpoint

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    ok = call_train(*overrides, f"hydra.run.dir={reference}")
    assert ok.returncode == 0, ok.stderr[-2000:]
    ready = (killed / "checkpoints" / "last.ckpt").exists
    kill_train_when(ready, *overrides, f"hydra.run.dir={killed}", settle=0.3)
    assert last(killed)["epoch"] < last(reference)["epoch"]
    resumed = call_train(*overrides, "resume=auto", f"hydra.run.dir={killed}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    return last(reference), last(killed)
