"""One run per folder: a run holds an exclusive lock on its folder while it lives.

Two runs started in the same `hydra.run.dir` would interleave their checkpoints, their
`.hydra/` and their metrics. The lock is a `flock` on `<run folder>/.lock`, which holds
the PID and host of the run that has it, so that a second run stops at once with one
line naming the first. The kernel releases a `flock` when its process dies, however it
dies, so the lock of a killed run is stale by construction and the next run simply takes
it. (A `flock` on a network file system is only as reliable as that file system's
locking; on NFS it is a lease between clients.)
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from vaelab.errors import VaelabError

LOCK_NAME = ".lock"
#: Locks this process holds, kept open (closing the file would release the lock).
_HELD: dict[Path, IO[str]] = {}


class RunFolderInUseError(VaelabError):
    """Another live run holds the folder."""


def is_first_process() -> bool:
    """Whether this is the process that owns the run (global rank 0), not a DDP rank
    that Lightning, torchrun or SLURM started for the same run folder."""
    ranks = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK")
    return all(os.environ.get(name, "0") in ("0", "") for name in ranks)


def lock_run_folder(folder: str | os.PathLike[str]) -> None:
    """Take the lock of `folder` (created if needed) for the rest of this process, or
    raise `RunFolderInUseError` naming the process that holds it. Taking a lock this
    process already holds does nothing."""
    folder = Path(folder).resolve()
    if folder in _HELD:
        return
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_NAME, "a+")  # noqa: SIM115 - held open for the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunFolderInUseError(
            f"{folder} is in use by a run that is still going ({holder}); wait for it to "
            "end, or give this run a folder of its own (hydra.run.dir=<new folder>)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"PID {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    _HELD[folder] = handle


def held_folders() -> list[Path]:
    """The folders whose locks this process holds."""
    return list(_HELD)


def release(folder: str | os.PathLike[str]) -> None:
    """Give up the lock of `folder`, as the end of this process would. For code that runs
    the apps one after another in one process (a test session, a notebook)."""
    handle = _HELD.pop(Path(folder).resolve(), None)
    if handle is not None:
        handle.close()  # closing the file releases the flock


@contextmanager
def holding(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the lock of `folder` for the block (in the first process only: DDP ranks
    share rank 0's folder and lock). A lock this process already held, taken before
    Hydra wrote into the folder, stays held until the process ends."""
    resolved = Path(folder).resolve()
    if not is_first_process() or resolved in _HELD:
        yield
        return
    lock_run_folder(resolved)
    try:
        yield
    finally:
        release(resolved)
