"""Find a dataset's files on disk, or fetch them once, verified by their published checksums.

A file is described by a `FileSpec`: its name, the md5 it was published with, the
other hashes a genuine copy may have (a distribution that recompressed it), and the
mirrors it can be downloaded from, in order. `locate_or_fetch` looks in the data
root and in known system locations first; only if no verified copy is there does it
download, with pooch, into the data root. Pooch streams into a temporary name in the
target folder and moves it into place only once the checksum matches, so a failed
or corrupt download never lies where a good file is expected.

Anything that goes wrong (no network, a refused download, a mismatched checksum)
ends in one `DataError` line that names the file, where it was looked for, the
checksum it must have and the URL to fetch it by hand.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vaelab.errors import DataError

log = logging.getLogger(__name__)

#: Set to 1 (or true/yes) to forbid downloads: only files already on disk are used.
OFFLINE_ENV = "VAELAB_OFFLINE"
#: Overrides the default data root when no `data_dir` is given.
DATA_ENV = "VAELAB_DATA"

# Seconds to wait for a mirror to connect or send the next chunk; without a timeout a
# silently dropped connection would hang the run instead of trying the next mirror.
DOWNLOAD_TIMEOUT_S = 60

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileSpec:
    """One published file of a dataset.

    Attributes:
      name: file name on disk and on the mirrors.
      md5: md5 of the file as published; downloads are verified against it.
      urls: full download URLs, tried in order.
      also_accept: other hashes of a genuine copy, as ``"md5:<hex>"`` or
        ``"sha256:<hex>"`` (e.g. Debian's recompressed Fashion-MNIST files).
      gunzip_sha256: sha256 of the decompressed bytes of a gzip file: identifies the
        data itself, whatever compressor produced the file.
      manual_url: where a person should go to fetch it by hand, if not ``urls[0]``.
    """

    name: str
    md5: str
    urls: tuple[str, ...]
    also_accept: tuple[str, ...] = ()
    gunzip_sha256: str | None = None
    manual_url: str | None = None
    # Hash objects are not part of a spec's identity; only the published values are.
    _accepted: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        accepted = {f"md5:{self.md5.lower()}"}
        for h in self.also_accept:
            algorithm, _, value = h.partition(":")
            if algorithm not in ("md5", "sha256") or not value:
                raise ValueError(f"{self.name}: hash {h!r} must be 'md5:<hex>' or 'sha256:<hex>'")
            accepted.add(f"{algorithm}:{value.lower()}")
        object.__setattr__(self, "_accepted", frozenset(accepted))

    @property
    def fetch_by_hand_url(self) -> str:
        """The URL a person should use to download the file themselves."""
        return self.manual_url or (self.urls[0] if self.urls else "(no public mirror)")


def default_data_dir() -> Path:
    """The data root when none is configured: ``$VAELAB_DATA``, else ``./data``."""
    return Path(os.environ.get(DATA_ENV) or "data")


def network_disabled() -> bool:
    """Whether ``$VAELAB_OFFLINE`` forbids downloads."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def file_hash(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in chunks (the CelebA zip is 1.4 GB)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _gunzip_sha256(path: Path) -> str | None:
    """sha256 of a gzip file's decompressed bytes, or None if it is not valid gzip."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
                digest.update(chunk)
    except (OSError, EOFError):
        return None
    return digest.hexdigest()


def check_file(path: Path, spec: FileSpec) -> str | None:
    """Return None if `path` is a genuine copy of `spec`, else why not (one phrase).

    The md5 is checked first (cheap, and what the mirrors publish); sha256 only when
    an alternative sha256 is known; the decompressed-bytes hash last, because it is
    the slowest and only needed for copies compressed by someone else.
    """
    md5 = file_hash(path, "md5")
    if f"md5:{md5}" in spec._accepted:
        return None
    if any(h.startswith("sha256:") for h in spec._accepted) and (
        f"sha256:{file_hash(path, 'sha256')}" in spec._accepted
    ):
        return None
    if spec.gunzip_sha256 is not None and _gunzip_sha256(path) == spec.gunzip_sha256.lower():
        return None
    return f"{path} has md5 {md5}"


def candidate_dirs(data_dir: Path, search_dirs: Iterable[Path | str] = ()) -> list[Path]:
    """The folders to look in, data root first, without duplicates."""
    seen: list[Path] = []
    for d in (Path(data_dir), *map(Path, search_dirs)):
        if d not in seen:
            seen.append(d)
    return seen


def locate(spec: FileSpec, dirs: Sequence[Path]) -> tuple[Path | None, list[str]]:
    """Find a verified copy of `spec` in `dirs`; return (path or None, reasons for rejects)."""
    rejected: list[str] = []
    for d in dirs:
        path = d / spec.name
        if path.is_file():
            reason = check_file(path, spec)
            if reason is None:
                return path, rejected
            rejected.append(reason)
    return None, rejected


def _one_line(exc: BaseException) -> str:
    """A short description of why a download failed, without pooch's or urllib3's essay."""
    import requests  # pooch's HTTP client; imported here to keep module import light

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect"
    if isinstance(exc, ValueError) and "hash" in str(exc):
        got = re.search(r"but got (\w+)", str(exc))
        return f"checksum mismatch (md5 {got.group(1)})" if got else "checksum mismatch"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:120]}"


@contextlib.contextmanager
def quiet_downloads() -> Iterator[None]:
    """Pooch's and this module's progress lines off for the block (pooch's logger has a
    console handler of its own): a check that fetches data says only what failed."""
    import pooch

    loggers = [pooch.get_logger(), log]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def fetch(spec: FileSpec, target_dir: Path) -> tuple[Path | None, list[str]]:
    """Download `spec` into `target_dir` from its mirrors in order; (path or None, failures)."""
    import pooch  # heavy-ish (requests); only needed when a download happens

    failures: list[str] = []
    downloader = pooch.HTTPDownloader(progressbar=False, timeout=DOWNLOAD_TIMEOUT_S)
    for url in spec.urls:
        try:
            path = pooch.retrieve(
                url,
                known_hash=f"md5:{spec.md5}",
                fname=spec.name,
                path=target_dir,
                downloader=downloader,
            )
            return Path(path), failures
        except Exception as exc:  # any failure of one mirror means: try the next one
            failures.append(f"{url}: {_one_line(exc)}")
            log.info("download of %s from %s failed: %s", spec.name, url, exc)
    return None, failures


def locate_or_fetch(
    spec: FileSpec,
    data_dir: Path | str,
    search_dirs: Iterable[Path | str] = (),
    offline: bool | None = None,
) -> Path:
    """Return the path of a verified copy of `spec`, downloading it into `data_dir` if needed.

    Args:
      spec: the file to find.
      data_dir: the dataset's folder in the data root; downloads land here.
      search_dirs: further folders that may hold a copy (system locations, other
        tools' caches); used in place, never written to.
      offline: forbid downloads; None reads ``$VAELAB_OFFLINE``.

    Raises:
      DataError: one line naming the file, the folders searched, the expected md5
        and the URL to fetch it by hand.
    """
    data_dir = Path(data_dir)
    dirs = candidate_dirs(data_dir, search_dirs)
    path, problems = locate(spec, dirs)
    if path is not None:
        for rejected in problems:  # said, not silent: a damaged copy is not used quietly
            log.warning(
                "%s, not the published %s: not used; using the verified copy %s instead "
                "(delete or replace the damaged one)",
                rejected,
                spec.md5,
                path,
            )
        return path
    if offline is None:
        offline = network_disabled()
    if offline:
        problems.append(f"downloads are disabled (${OFFLINE_ENV})")
    elif not spec.urls:
        problems.append("it has no download mirror")
    else:
        path, failures = fetch(spec, data_dir)
        if path is not None:
            return path
        problems.append("download failed: " + "; ".join(failures))
    where = ", ".join(str(d) for d in dirs)
    raise DataError(
        f"{spec.name} not found in {where}"
        + (f" ({'; '.join(problems)})" if problems else "")
        + f"; expected md5 {spec.md5}; fetch it by hand from {spec.fetch_by_hand_url}"
        + f" into {data_dir}/"
    )
