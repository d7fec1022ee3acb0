"""Readers of the array files the factor datasets are published as, streamed in rows.

- `.npz` (dSprites, MPI3D): a zip of `.npy` members. A member is read through its
  `.npy` header and then row block by row block, so a 12 GB array never sits in memory
  whole, and nothing is unpickled (dSprites' `metadata` member is a pickled object
  array; it is never opened).
- HDF5 (3dshapes): a dataset sliced in row blocks through h5py.
- smallNORB's binary matrices (`.mat`, gzipped): a magic number giving the dtype, the
  number of dimensions, their sizes (at least three stored), then the data.
- Cars3D's tarball of MATLAB files, one per car, read with scipy.io.

A file that is truncated, lacks a member or is not what its name says stops with a
one-line `DataError` naming the file and what is wrong, never a traceback from inside
zipfile or h5py.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from vaelab.errors import DataError

#: Rows per block when streaming: about 200 MB of 64x64x3 images.
BLOCK_ROWS = 16384


def _damaged(path: Path, what: str) -> DataError:
    return DataError(f"{path} {what}; delete it and rerun to fetch a fresh copy")


def npz_member_info(path: Path | str, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of member `key` of an `.npz` file, from its `.npy` header."""
    path = Path(path)
    with _open_member(path, key) as f:
        return _read_npy_header(f, path, key)[:2]


def npz_member_blocks(
    path: Path | str, key: str, rows: int = BLOCK_ROWS
) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, block) pairs covering member `key` of an `.npz` file, in order."""
    path = Path(path)
    with _open_member(path, key) as f:
        shape, dtype, fortran = _read_npy_header(f, path, key)
        if fortran and len(shape) > 1:
            raise _damaged(path, f"holds {key!r} in Fortran order, which is not streamed")
        if dtype.hasobject:
            raise _damaged(path, f"holds {key!r} as Python objects, not numbers")
        row_items = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
        row_bytes = row_items * dtype.itemsize
        done = 0
        try:
            while done < shape[0]:
                n = min(rows, shape[0] - done)
                raw = f.read(n * row_bytes)
                if len(raw) != n * row_bytes:
                    row = done + len(raw) // max(row_bytes, 1)
                    raise _damaged(path, f"ends inside {key!r}, at row {row} of {shape[0]}")
                yield done, np.frombuffer(raw, dtype=dtype).reshape(n, *shape[1:])
                done += n
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise _damaged(path, f"is damaged inside member {key!r} ({exc})") from exc


def read_npz_member(path: Path | str, key: str) -> np.ndarray:
    """A whole (small) member of an `.npz` file, e.g. dSprites' `latents_classes`."""
    shape, dtype = npz_member_info(path, key)
    out = np.empty(shape, dtype=dtype)
    for start, block in npz_member_blocks(path, key):
        out[start : start + len(block)] = block
    return out


def _open_member(path: Path, key: str) -> _ClosingStream:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise _damaged(path, f"is not a readable .npz (zip) file ({exc})") from exc
    name = f"{key}.npy"
    if name not in archive.namelist():
        members = ", ".join(sorted(n.removesuffix(".npy") for n in archive.namelist()))
        archive.close()
        raise _damaged(path, f"has no array {key!r} (it holds: {members or 'nothing'})")
    return _ClosingStream(archive.open(name), archive)


class _ClosingStream:
    """A zip member stream that also closes its archive."""

    def __init__(self, stream: IO[bytes], archive: zipfile.ZipFile) -> None:
        self.stream, self.archive = stream, archive

    def read(self, n: int = -1) -> bytes:
        return self.stream.read(n)

    def __enter__(self) -> _ClosingStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()
        self.archive.close()


def _read_npy_header(
    f: _ClosingStream, path: Path, key: str
) -> tuple[tuple[int, ...], np.dtype, bool]:
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = npy.read_array_header_2_0(f)
    except (ValueError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _damaged(path, f"has no valid .npy header for {key!r} ({exc})") from exc
    if not shape:
        raise _damaged(path, f"holds {key!r} as a scalar, not an array")
    return tuple(int(s) for s in shape), np.dtype(dtype), bool(fortran)


def h5_dataset_info(path: Path | str, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of dataset `key` of an HDF5 file."""
    with _open_h5(Path(path)) as f:
        dataset = _h5_dataset(f, Path(path), key)
        return tuple(int(s) for s in dataset.shape), np.dtype(dataset.dtype)


def h5_dataset_blocks(
    path: Path | str, key: str, rows: int = BLOCK_ROWS
) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, block) pairs covering dataset `key` of an HDF5 file, in order."""
    path = Path(path)
    with _open_h5(path) as f:
        dataset = _h5_dataset(f, path, key)
        for start in range(0, dataset.shape[0], rows):
            try:
                block = dataset[start : start + rows]
            except OSError as exc:  # h5py's error for unreadable chunks
                raise _damaged(path, f"is damaged inside {key!r} at row {start} ({exc})") from exc
            yield start, np.asarray(block)


def _open_h5(path: Path) -> Any:  # an h5py.File (h5py ships no types)
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise _damaged(path, f"is not a readable HDF5 file ({exc})") from exc


def _h5_dataset(f: Any, path: Path, key: str) -> Any:  # h5py.File -> h5py.Dataset
    import h5py

    item = f.get(key)
    if not isinstance(item, h5py.Dataset):
        raise _damaged(path, f"has no dataset {key!r} (it holds: {', '.join(sorted(f.keys()))})")
    return item


# ------------------------------------------------------------- smallNORB matrices

#: smallNORB's binary matrix magic numbers (little-endian int32) and their dtypes.
NORB_DTYPES: dict[int, np.dtype[Any]] = {
    0x1E3D4C55: np.dtype(np.uint8),
    0x1E3D4C54: np.dtype("<i4"),
    0x1E3D4C51: np.dtype("<f4"),
    0x1E3D4C53: np.dtype("<f8"),
}


def read_norb_matrix(path: Path | str) -> np.ndarray:
    """A smallNORB `.mat` binary matrix, gzipped or not: int32 magic (the dtype), int32
    ndim, max(3, ndim) int32 sizes (only the first ndim count), then the data."""
    import gzip

    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise _damaged(path, f"is not a readable gzip file ({exc})") from exc
    if len(raw) < 20:
        raise _damaged(path, "is too short for a smallNORB matrix header")
    magic, ndim = (int(v) for v in np.frombuffer(raw, "<i4", 2))
    if magic not in NORB_DTYPES or not 1 <= ndim <= 8:
        raise _damaged(path, f"has no smallNORB matrix header (magic {magic:#x}, ndim {ndim})")
    stored = max(3, ndim)
    shape = tuple(int(v) for v in np.frombuffer(raw, "<i4", stored, 8)[:ndim])
    dtype = NORB_DTYPES[magic]
    offset = 8 + 4 * stored
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise _damaged(
            path, f"holds {len(raw) - offset} data bytes, but its header {shape} needs {expected}"
        )
    return np.frombuffer(raw, dtype, offset=offset).reshape(shape)


# ------------------------------------------------------------------ Cars3D meshes


def cars3d_meshes(path: Path | str) -> Iterator[tuple[str, np.ndarray]]:
    """(name, images) for each `data/cars/car_*_mesh.mat` of the Cars3D tarball, in
    name order: `im` (128, 128, 3, 24 azimuths, 4 elevations) uint8 as
    (4, 24, 128, 128, 3)."""
    import io
    import tarfile

    from scipy.io import loadmat

    path = Path(path)
    try:
        with tarfile.open(path, "r:*") as tar:
            members = sorted(
                (m for m in tar.getmembers() if _is_car_mesh(m.name)), key=lambda m: m.name
            )
            if not members:
                raise _damaged(path, "holds no data/cars/car_*_mesh.mat files")
            for member in members:
                stream = tar.extractfile(member)
                if stream is None:
                    raise _damaged(path, f"cannot read {member.name}")
                try:
                    image = loadmat(io.BytesIO(stream.read()))["im"]
                except (KeyError, ValueError, TypeError) as exc:
                    raise _damaged(path, f"holds no image array 'im' in {member.name}") from exc
                if image.ndim != 5 or image.shape[2] != 3:
                    raise _damaged(path, f"{member.name} holds 'im' of shape {image.shape}")
                yield member.name, np.ascontiguousarray(np.einsum("hwcae->eahwc", image))
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise _damaged(path, f"is not a readable tar archive ({exc})") from exc


def _is_car_mesh(name: str) -> bool:
    parts = name.split("/")
    return (
        len(parts) >= 2
        and parts[-2] == "cars"
        and parts[-1].startswith("car_")
        and parts[-1].endswith("_mesh.mat")
    )
