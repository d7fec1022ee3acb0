"""Readers for the datasets' real on-disk formats, returning uint8 arrays (N, C, H, W).

- IDX (MNIST, Fashion-MNIST): a big-endian header and raw uint8, usually gzipped.
- The CIFAR-10 python tarball: pickled batches of 10,000 rows of 3,072 bytes.
- CelebA: JPEGs inside ``img_align_celeba.zip`` plus ``list_eval_partition.txt``,
  and the 40 binary attributes of every image in ``list_attr_celeba.txt``.
- Image folders: PNG/JPEG files anywhere below a root.

A file that is truncated or not what its name says stops with a one-line
`DataError` naming the file, never a traceback from inside gzip or pickle.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import pickle
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image
from typing_extensions import override

from vaelab.errors import DataError

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------- IDX

IDX_UBYTE = 0x08
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped if it is gzip (by content, not by name)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is not a readable gzip file ({exc}); delete it and rerun") from exc


def read_idx(path: Path | str) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzipped or not) into an array of its shape.

    Raises:
      DataError: bad magic number, a type other than unsigned byte, or a data size
        that disagrees with the header (a truncated file).
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number {data[:4].hex()})")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != IDX_UBYTE or ndim == 0:
        raise DataError(
            f"{path}: IDX type 0x{dtype_code:02x} with {ndim} dimensions is not supported"
            " (expected unsigned bytes, 0x08)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated inside its IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise DataError(
            f"{path}: header says {shape} = {expected} bytes of data, file has"
            f" {len(data) - header}; the file is truncated or corrupt, delete it and rerun"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_pair(
    images_path: Path | str, labels_path: Path | str
) -> tuple[np.ndarray, np.ndarray]:
    """Read matching IDX image and label files: images (N, 1, H, W) and labels (N,)."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"{images_path}: expected images (N, H, W), got shape {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected labels (N,), got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    return images[:, None], labels


# ------------------------------------------------------------------------ CIFAR-10

CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only.

    The CIFAR batches are pickles, and a pickle can run any code it names; the
    checksum is the first guard, this is the second: anything other than an array,
    a dtype or builtins is refused.
    """

    _allowed: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
        }
    )

    @override
    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self._allowed:
            if module == "numpy.core.multiarray" and hasattr(np, "_core"):
                # numpy 2 renamed numpy.core and warns on the old name; the CIFAR
                # pickles were written long before.
                module = "numpy._core.multiarray"
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _cifar_batch(tar: tarfile.TarFile, member: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        f = tar.extractfile(member)
        if f is None:
            raise KeyError(member)
        batch = _ArrayUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.uint8)
    except KeyError as exc:
        raise DataError(
            f"{path} lacks {member} or its data/labels: not a CIFAR-10 tarball"
        ) from exc
    except (pickle.UnpicklingError, EOFError, OSError, tarfile.TarError, zlib.error) as exc:
        raise DataError(f"{path}: {member} cannot be read ({exc}); delete it and rerun") from exc
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(f"{path}: {member} holds data {data.shape}, labels {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar10(path: Path | str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read ``cifar-10-python.tar.gz``: {'train': (x, y), 'test': (x, y)}, x (N, 3, 32, 32)."""
    path = Path(path)
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115 -- closed by the `with` below
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable tarball ({exc}); delete it and rerun") from exc
    with tar:
        # The batches sit in one top folder ("cifar-10-batches-py/"); find it by name
        # rather than assume it, so a re-packed archive still reads.
        members = {Path(m.name).name: m.name for m in tar.getmembers() if m.isfile()}
        missing = [b for b in (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH) if b not in members]
        if missing:
            raise DataError(f"{path} lacks {', '.join(missing)}: not a CIFAR-10 python tarball")
        train = [_cifar_batch(tar, members[b], path) for b in CIFAR10_TRAIN_BATCHES]
        test = _cifar_batch(tar, members[CIFAR10_TEST_BATCH], path)
    return {
        "train": (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])),
        "test": test,
    }


# -------------------------------------------------------------------------- images


@dataclass(frozen=True)
class ImageSpec:
    """How any image becomes one example: a centred square crop, resized to `size`.

    Attributes:
      size: side of the square output in pixels.
      crop: side of the centred square cut out first (clamped to the image); None
        takes the largest centred square, so nothing is stretched.
      channels: 3 for RGB, 1 for grey.
    """

    size: int = 64
    crop: int | None = None
    channels: int = 3

    def __post_init__(self) -> None:
        if self.size < 1 or (self.crop is not None and self.crop < 1):
            raise ValueError(f"image size and crop must be positive, got {self}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")


def image_to_array(image: Image.Image, spec: ImageSpec) -> np.ndarray:
    """Crop, resize and convert a PIL image to uint8 (C, size, size)."""
    image = image.convert("L" if spec.channels == 1 else "RGB")
    w, h = image.size
    side = min(w, h) if spec.crop is None else min(spec.crop, w, h)
    left, top = round((w - side) / 2), round((h - side) / 2)
    image = image.crop((left, top, left + side, top + side))
    if side != spec.size:
        # Pillow's bicubic filter widens its support when shrinking, i.e. it
        # antialiases; a plain bicubic would alias the 148 -> 64 CelebA reduction.
        image = image.resize((spec.size, spec.size), Image.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def decode_image(data: bytes, name: str, spec: ImageSpec) -> np.ndarray:
    """Decode one encoded image (PNG, JPEG, ...) into uint8 (C, size, size)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image_to_array(image, spec)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{name} cannot be decoded as an image ({exc})") from exc


def decode_into(
    out: np.ndarray,
    names: Sequence[str],
    read: Callable[[str], bytes],
    spec: ImageSpec,
    chunk: int = 512,
) -> None:
    """Decode the images `names` (bytes from `read`) into `out[i]`, in parallel.

    `read` runs in this thread (a zip file handle is not safe to share between
    threads); decoding runs in a pool, since Pillow releases the GIL while it
    decodes and resizes.
    """
    if len(out) != len(names):
        raise ValueError(f"output holds {len(out)} examples for {len(names)} images")
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(names), chunk):
            batch = names[start : start + chunk]
            blobs = [read(n) for n in batch]
            for i, array in enumerate(pool.map(decode_image, blobs, batch, [spec] * len(batch))):
                out[start + i] = array
            if start and start % (chunk * 40) == 0:
                log.info("decoded %d / %d images", start, len(names))


# -------------------------------------------------------------------------- CelebA

CELEBA_SPLITS = {"0": "train", "1": "val", "2": "test"}
#: The values an attribute may have in ``list_attr_celeba.txt``: present (1) or absent (-1).
_CELEBA_FLAGS = frozenset({"1", "+1", "-1"})


def read_celeba_partition(path: Path | str) -> dict[str, list[str]]:
    """Read ``list_eval_partition.txt`` ("000001.jpg 0" per line) into file names per split."""
    path = Path(path)
    splits: dict[str, list[str]] = {name: [] for name in CELEBA_SPLITS.values()}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read ({exc})") from exc
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in CELEBA_SPLITS:
            raise DataError(f"{path}:{number}: expected '<image>.jpg 0|1|2', got {line.strip()!r}")
        splits[CELEBA_SPLITS[fields[1]]].append(fields[0])
    return splits


@dataclass(frozen=True)
class CelebAAttributes:
    """The binary attributes of ``list_attr_celeba.txt``, one row per image.

    Attributes:
      path: the file they were read from (named by the errors of `select`).
      names: the attribute names of the file's header, in column order.
      rows: the row of `values` of each image, by file name ("000001.jpg").
      values: uint8 (N, len(names)): 1 where the image has the attribute (+1 in the
        file), 0 where it has not (-1), so that a row is directly label indices.
    """

    path: Path
    names: tuple[str, ...]
    rows: dict[str, int]
    values: np.ndarray

    def select(self, images: Sequence[str]) -> np.ndarray:
        """The attributes of `images`, in that order: uint8 (len(images), len(names)).

        The partition file, not this one, decides which images a split holds and in
        which order; an image it names that has no row here is refused in one line.
        """
        missing = next((name for name in images if name not in self.rows), None)
        if missing is not None:
            raise DataError(
                f"{self.path} has no attributes for {missing} (named in the partition "
                "file); the file is incomplete, delete it and rerun"
            )
        index = np.fromiter((self.rows[name] for name in images), np.intp, count=len(images))
        return self.values[index]


def read_celeba_attributes(
    path: Path | str, expected_names: Sequence[str] | None = None
) -> CelebAAttributes:
    """Read ``list_attr_celeba.txt``: the image count, then the attribute names, then
    per image its file name and one value of 1 or -1 per attribute, in runs of spaces
    ("000001.jpg  -1  1  1 -1 ...").

    `expected_names` (CelebA's 40, in order) is checked against the header, so that
    label columns cannot silently shift under a file that lists them differently.

    Raises:
      DataError: one line naming the file (and the line) for a header that is not
        what is expected, an image count that disagrees with the rows, a row of the
        wrong length, a value other than 1 or -1, or an image listed twice.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read ({exc}); delete it and rerun") from exc
    head = lines[0].split() if lines else []
    if len(head) != 1 or not head[0].isdigit():
        got = lines[0].strip() if lines else "an empty file"
        raise DataError(f"{path}:1: expected the number of images, got {got!r}")
    count = int(head[0])
    names = tuple(lines[1].split()) if len(lines) > 1 else ()
    if not names:
        raise DataError(f"{path}:2: expected the attribute names, got none")
    if expected_names is not None and names != tuple(expected_names):
        expected = tuple(expected_names)
        if len(names) != len(expected):
            problem = f"names {len(names)} attributes, expected {len(expected)}"
        else:
            k = next(k for k, (a, b) in enumerate(zip(names, expected, strict=True)) if a != b)
            problem = f"attribute {k + 1} is {names[k]!r}, expected {expected[k]!r}"
        raise DataError(f"{path}:2: {problem}; this is not CelebA's attribute list")
    body = [(number, line) for number, line in enumerate(lines[2:], 3) if line.strip()]
    if len(body) != count:
        raise DataError(
            f"{path}: line 1 says {count} images, the file lists {len(body)}; the file is "
            "truncated or corrupt, delete it and rerun"
        )
    values = np.empty((count, len(names)), dtype=np.uint8)
    rows: dict[str, int] = {}
    for row, (number, line) in enumerate(body):
        image, *flags = line.split()
        if len(flags) != len(names):
            raise DataError(
                f"{path}:{number}: {image} has {len(flags)} values for {len(names)} attributes"
            )
        if not _CELEBA_FLAGS.issuperset(flags):
            k = next(k for k, flag in enumerate(flags) if flag not in _CELEBA_FLAGS)
            raise DataError(
                f"{path}:{number}: {image} has {flags[k]!r} for {names[k]}; expected 1 or -1"
            )
        if image in rows:
            first = body[rows[image]][0]
            raise DataError(f"{path}:{number}: {image} is listed twice (first on line {first})")
        rows[image] = row
        values[row] = [flag != "-1" for flag in flags]
    return CelebAAttributes(path, names, rows, values)


class CelebAZip:
    """The JPEGs of ``img_align_celeba.zip``, looked up by their base name ("000001.jpg")."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(
                f"{self.path} is not a readable zip ({exc}); delete it and rerun"
            ) from exc
        self._members = {
            Path(info.filename).name: info for info in self._zip.infolist() if not info.is_dir()
        }

    def __enter__(self) -> CelebAZip:
        return self

    def __exit__(self, *exc: object) -> None:
        self._zip.close()

    def read(self, name: str) -> bytes:
        """The bytes of one image."""
        info = self._members.get(name)
        if info is None:
            raise DataError(f"{self.path} has no image {name} (named in the partition file)")
        try:
            return self._zip.read(info)
        except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as exc:
            raise DataError(f"{self.path}: {name} cannot be read ({exc})") from exc

    def decode_into(self, out: np.ndarray, names: Sequence[str], spec: ImageSpec) -> None:
        """Decode the named images into `out` (N, C, size, size)."""
        decode_into(out, names, self.read, spec)


# -------------------------------------------------------------------- image folder

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def list_image_files(root: Path | str) -> list[Path]:
    """PNG and JPEG files anywhere below `root`, in a stable (sorted) order."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; set data.path=<folder of images>")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )
    if not files:
        raise DataError(
            f"image folder {root} holds no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} files"
        )
    return files


def folder_fingerprint(root: Path, files: Iterable[Path]) -> str:
    """A hash of the files' relative paths, sizes and modification times.

    Hashing the contents of a large folder would cost as much as decoding it; a
    changed, added or removed file changes its size, time or the list.
    """
    digest = hashlib.sha256()
    for p in files:
        st = p.stat()
        digest.update(
            f"{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode()
        )
    return digest.hexdigest()


def read_image_files(
    files: Sequence[Path], spec: ImageSpec, out: np.ndarray | None = None
) -> np.ndarray:
    """Decode image files into uint8 (N, C, size, size), into `out` if given."""
    if out is None:
        out = np.empty((len(files), spec.channels, spec.size, spec.size), dtype=np.uint8)
    by_name = {str(p): p for p in files}

    def read(name: str) -> bytes:
        try:
            return by_name[name].read_bytes()
        except OSError as exc:
            raise DataError(f"{name} cannot be read ({exc})") from exc

    decode_into(out, list(by_name), read, spec)
    return out
