"""The base of DataModules read from files: fetched once, decoded once, then loaded.

`prepare_data` (rank 0 of each node) finds or downloads the source files, verifies
them and decodes them into an `ArrayCache` under the data root, unless that cache
already exists, in which case it touches neither the files nor the network.
`setup` (every rank) loads the cached arrays and builds the splits.
"""

from __future__ import annotations

import abc
import logging
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from typing_extensions import override

from vaelab.config.constraints import PositiveInt, Seed
from vaelab.data.array_cache import ArrayCache, CacheDamagedError, cache_key
from vaelab.data.download import FileSpec, default_data_dir, locate_or_fetch, quiet_downloads
from vaelab.data.memory import InMemoryDataModule

log = logging.getLogger(__name__)


class CachedDataModule(InMemoryDataModule):
    """A dataset decoded from its source files into uint8 arrays cached in the data root.

    Subclasses declare the files (`files`), the name of their folder under the data
    root (`folder`), the arrays their decoder writes (`parts`), and implement
    `decode` and `build_splits`.

    Args:
      data_dir: the data root; None reads ``$VAELAB_DATA``, else ``./data``.
      batch_size, eval_batch_size, seed, pin_memory, on_device: see `InMemoryDataModule`.
    """

    #: Folder of this dataset under the data root: downloads and caches go there.
    folder: ClassVar[str]
    #: The source files, by role ("train_images", "archive", ...).
    files: ClassVar[dict[str, FileSpec]] = {}
    #: Folders relative to the data root that may hold the files in another tool's
    #: layout (torchvision's "MNIST/raw"), searched after `folder` and the root itself.
    other_layouts: ClassVar[tuple[str, ...]] = ()
    #: Absolute folders a system package may have installed the files in.
    system_dirs: ClassVar[tuple[str, ...]] = ()
    #: Names of the arrays `decode` writes.
    parts: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        data_dir: str | Path | None = None,
        batch_size: PositiveInt = 128,
        eval_batch_size: PositiveInt | None = None,
        seed: Seed = 0,
        pin_memory: bool = False,
        on_device: bool = False,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, seed, pin_memory, on_device)
        self.data_dir = Path(data_dir) if data_dir else default_data_dir()

    @property
    def dataset_dir(self) -> Path:
        """Where this dataset's files are downloaded to."""
        return self.data_dir / self.folder

    def search_dirs(self) -> list[Path]:
        """Folders besides `dataset_dir` that may hold the files, in search order."""
        return [
            self.data_dir,
            *(self.data_dir / d for d in self.other_layouts),
            *(Path(d) for d in self.system_dirs),
        ]

    def preprocessing(self) -> dict[str, Any]:
        """Parameters that change the decoded arrays (resize, crop); part of the cache key."""
        return {}

    def source_identity(self) -> dict[str, Any]:
        """What identifies the source data: the published checksums of its files."""
        return {role: spec.md5 for role, spec in sorted(self.files.items())}

    def cache(self) -> ArrayCache:
        """The cache folder for this data under this preprocessing."""
        params = {
            "dataset": self.folder,
            "source": self.source_identity(),
            "preprocessing": self.preprocessing(),
        }
        return ArrayCache(self.dataset_dir / f"decoded-{cache_key(**params)}", params)

    def fetch(self, role: str) -> Path:
        """Path of a verified copy of one source file, downloaded if needed."""
        return locate_or_fetch(self.files[role], self.dataset_dir, self.search_dirs())

    @abc.abstractmethod
    def decode(self, cache: ArrayCache) -> None:
        """Read the source files (via `fetch`) and write every array in `parts` to `cache`."""

    @override
    def prepare_data(self) -> None:
        """Fetch, verify and decode the data once; a no-op when the cache is complete."""
        cache = self.cache()
        if cache.complete(self.parts):
            return
        log.info("decoding %s into %s (once)", type(self).__name__, cache.folder)
        self.decode(cache)

    @override
    def check_available(self) -> None:
        """Find or download, verify and decode the data now, as `prepare_data` does (the
        run's own `prepare_data` then finds the cache complete), so that missing data
        stops a run before its folder exists. Downloads are quiet (the error says what
        failed); a failure leaves no folder behind that this attempt created."""
        if self.cache().complete(self.parts):
            return
        created = [p for p in (self.dataset_dir, *self.dataset_dir.parents) if not p.exists()]
        try:
            with quiet_downloads():
                self.prepare_data()
        except BaseException:
            for folder in created:  # deepest first: only what this attempt made
                shutil.rmtree(folder, ignore_errors=True)
            raise

    def load_arrays(self, mmap: bool | None = None) -> dict[str, np.ndarray]:
        """The cached arrays by part, decoding first if needed (e.g. `setup` called alone).
        A damaged cache is rebuilt from the verified source files, with one warning."""
        cache = self.cache()
        if not cache.complete(self.parts):
            self.prepare_data()
        try:
            return {part: cache.load(part, mmap=mmap) for part in self.parts}
        except CacheDamagedError as exc:
            log.warning("%s; rebuilding %s from the source files", exc.problem, cache.folder)
            shutil.rmtree(cache.folder, ignore_errors=True)
            self.prepare_data()
            return {part: cache.load(part, mmap=mmap) for part in self.parts}
