"""Decoded datasets kept as .npy files, so that only the first run pays for decoding.

Decoding JPEGs or inflating gzip costs from seconds (MNIST) to many minutes
(CelebA); loading a uint8 .npy costs a disk read, and for arrays too large to copy
into memory a memory map costs nothing up front. A cache folder is named by a key
that hashes everything the arrays depend on (the checksums of the source files, the
preprocessing parameters, `CACHE_VERSION`), so a changed resize or a new copy of
the data gets a new folder instead of stale arrays.

Every file is written under a temporary name and renamed into place once complete
(`vaelab.runs.atomic`): an interrupted run leaves no half-written array to be loaded by the
next one, and a full disk is one line instead of a SIGBUS.

`manifest.json` records each array's shape, dtype and the blake2b of its file, written
when the array is. Opening an array checks its shape and dtype every time, and its
checksum on the first open in a process (bench/cache_verify.py measures what that costs
against an epoch); a mismatch is a `CacheDamagedError`, on which the data module
rebuilds the cache from its verified source files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vaelab.errors import DataError
from vaelab.runs.atomic import atomic_path

#: Bump when decoding changes in a way that alters the arrays, to retire old caches.
CACHE_VERSION = 1

#: Arrays at least this large are memory-mapped by default instead of read into memory.
MMAP_THRESHOLD_BYTES = 1 << 30
MANIFEST = "manifest.json"

#: Files whose checksum this process has verified: (path, size, mtime) of each.
_verified: set[tuple[str, int, int]] = set()
_manifest_lock = threading.Lock()


class CacheDamagedError(DataError):
    """A cached array that does not match what was written (bytes, shape or dtype)."""

    def __init__(self, problem: str, folder: Path) -> None:
        super().__init__(f"{problem}; delete {folder} to rebuild it")
        self.problem = problem


def file_digest(path: Path) -> str:
    """blake2b of a file's bytes, read in 8 MB pieces."""
    digest = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
        while piece := f.read(8 << 20):
            digest.update(piece)
    return digest.hexdigest()


def cache_key(**params: Any) -> str:
    """A short stable hash of the parameters an array depends on (JSON-serialisable)."""
    blob = json.dumps({"cache_version": CACHE_VERSION, **params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def reserve(path: Path) -> None:
    """Allocate the disk blocks of a sparse file now. A memory map of a sparse file on a
    full disk fails at the first page that finds no block, as SIGBUS (the process dies
    without a word); allocated up front, a full disk is an OSError (ENOSPC) here."""
    if not hasattr(os, "posix_fallocate"):  # macOS, Windows: no such call
        return
    with open(path, "rb+") as f:
        size = os.fstat(f.fileno()).st_size
        if size:
            os.posix_fallocate(f.fileno(), 0, size)


class ArrayCache:
    """One folder of named uint8/int arrays (``<part>.npy``) plus ``params.json``.

    Args:
      folder: where the arrays live; created on first write.
      params: what the arrays were made from, written next to them for a person
        wondering what a cache folder holds (the folder name is only a hash).
    """

    def __init__(self, folder: Path | str, params: dict[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        self.params = params or {}

    def path(self, part: str) -> Path:
        """The file of one array."""
        return self.folder / f"{part}.npy"

    def complete(self, parts: Iterable[str]) -> bool:
        """Whether every named array has been written (and recorded in the manifest)."""
        recorded = self._manifest()
        return all(self.path(p).is_file() and p in recorded for p in parts)

    def _manifest(self) -> dict[str, Any]:
        try:
            manifest = json.loads((self.folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return {}
        return manifest if isinstance(manifest, dict) else {}

    def _record(self, part: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        entry = {"shape": list(shape), "dtype": str(dtype), "blake2b": file_digest(self.path(part))}
        with _manifest_lock:
            manifest = {**self._manifest(), part: entry}
            with atomic_path(self.folder / MANIFEST, what="cache manifest") as tmp:
                tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    def _write_params(self) -> None:
        target = self.folder / "params.json"
        if target.exists():
            return
        with atomic_path(target, what="cache description") as tmp:
            tmp.write_text(json.dumps(self.params, indent=2, sort_keys=True, default=str) + "\n")

    def save(self, part: str, array: np.ndarray) -> Path:
        """Write one array atomically; returns its path."""
        with self.writer(part, array.shape, array.dtype) as out:
            out[...] = array
        return self.path(part)

    @contextlib.contextmanager
    def writer(
        self, part: str, shape: tuple[int, ...], dtype: np.dtype | type
    ) -> Iterator[np.ndarray]:
        """Yield a memory-mapped array to fill in place; it appears under its name on exit.

        For arrays larger than memory (CelebA at 64x64 is 2.5 GB) the decoder writes
        straight to disk. If the block raises, the temporary file is removed.
        """
        target = self.path(part)
        needed = int(np.prod(shape)) * np.dtype(dtype).itemsize
        # Per-process temporary names (vaelab.runs.atomic): two processes that decode at once
        # (one per node) do not write into the same file; the last rename wins, with
        # identical content.
        with atomic_path(target, what="data cache", needed=needed, fsync=True) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=tuple(shape))
            reserve(tmp)
            yield out
            out.flush()
            del out
        self._record(part, tuple(shape), np.dtype(dtype))
        self._write_params()

    def load(self, part: str, mmap: bool | None = None) -> np.ndarray:
        """Read one array; memory-mapped (copy-on-write) if `mmap`, or if None, when large.

        Copy-on-write mode gives a writable array (so torch wraps it without a
        warning) whose pages are shared with the page cache until written.
        """
        path = self.path(part)
        entry = self._manifest().get(part)
        if entry is None:
            raise CacheDamagedError(f"cached array {path} is not in its manifest", self.folder)
        stat = path.stat()
        if mmap is None:
            mmap = stat.st_size >= MMAP_THRESHOLD_BYTES
        try:
            array: np.ndarray = np.load(path, mmap_mode="c" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise CacheDamagedError(
                f"cached array {path} cannot be read ({exc})", self.folder
            ) from exc
        if list(array.shape) != entry["shape"] or str(array.dtype) != entry["dtype"]:
            raise CacheDamagedError(
                f"cached array {path} is {array.dtype} {list(array.shape)}, but "
                f"{entry['dtype']} {entry['shape']} was written",
                self.folder,
            )
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _verified:
            if file_digest(path) != entry["blake2b"]:
                raise CacheDamagedError(
                    f"cached array {path} does not match the checksum written with it", self.folder
                )
            _verified.add(key)
        return array
