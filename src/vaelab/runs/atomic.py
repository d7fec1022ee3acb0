"""Files that are never half-written: the one way vaelab writes a file it reads back.

`atomic_path(path)` hands out a temporary name beside `path`; when the block ends
the file is (optionally) flushed to disk and renamed over `path`, so a reader sees
the old file or the new one, never a part. If the block fails, the temporary file
is removed, and a full disk becomes one `DiskFullError` line that names the file, the
space it needed and the space that was free, and says that the files already there
are intact.

The temporary name carries the host and the process id (`.last.ckpt.node1.4242.tmp`),
so that two processes, on one machine or on two nodes sharing a file system, never
write into the same temporary file; and so that the orphans of a killed writer on this
host (a process id no longer alive) can be told apart from a live writer's file and
removed the next time anything is written into that folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

from vaelab.errors import VaelabError

#: errno values that mean "the disk (or quota, or file size limit) is full".
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"
_TEMP = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.tmp$")


class DiskFullError(VaelabError):
    """A write that ran out of space; what was there before is intact."""


def temp_path(path: Path) -> Path:
    """The temporary name this process writes `path` under."""
    return path.with_name(f".{path.name}.{_HOST}.{os.getpid()}.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_orphans(folder: Path) -> list[Path]:
    """Delete the temporary files that killed writers on this host left in `folder`;
    returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match is None or match["host"] != _HOST:
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and not _alive(pid):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _size(nbytes: int) -> str:
    if nbytes < 1000:
        return f"{nbytes} B"
    value = nbytes / 1000
    for unit in ("kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            break
        value /= 1000
    return f"{value:.1f} {unit}"


def _ran_out_of_space(exc: BaseException, folder: Path, needed: int) -> bool:
    if isinstance(exc, OSError) and exc.errno in FULL:
        return True
    # torch.save reports a failed write from its C++ writer as a RuntimeError
    # ("[enforce fail at inline_container.cc:...]"), without an errno: judge by the disk.
    if isinstance(exc, RuntimeError):
        with contextlib.suppress(OSError):
            return shutil.disk_usage(folder).free < max(needed, 1 << 20)
    return False


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, what: str = "file", needed: int = 0, fsync: bool = False
) -> Iterator[Path]:
    """Yield a temporary path to write `path` under; rename it into place on success.

    `what` names the file in messages ("checkpoint"); `needed` is its expected size in
    bytes, if known, for the full-disk message; `fsync` flushes it to the disk before
    the rename (for files whose loss costs work: checkpoints, caches).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent)
    tmp = temp_path(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        written = tmp.stat().st_size if tmp.exists() else 0
        tmp.unlink(missing_ok=True)
        needed = max(needed, written)
        if _ran_out_of_space(exc, path.parent, needed):
            try:
                free = _size(shutil.disk_usage(path.parent).free)
            except OSError:
                free = "unknown"
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "disk full"
            raise DiskFullError(
                f"could not write {what} {path}: {reason} (needs at least {_size(needed)}, "
                f"{free} free); the {what}s already in {path.parent} are intact "
                "(free space or set paths.log_dir=...)"
            ) from exc
        raise
