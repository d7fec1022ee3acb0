"""Writers of tiny datasets in the real on-disk formats, and a local HTTP server.

The files these write are read by the same code as the real data: IDX gzip files
with valid headers, a CIFAR-10 style tarball of pickled batches, a CelebA zip with
its partition and attribute files, a folder of PNG/JPEG images. `fixture_specs` turns written files
into `FileSpec`s carrying their own checksums, to stand in for a dataset's published
ones; `serve_directory` serves a folder on 127.0.0.1 for the download path.

Plain functions, not pytest fixtures, so that any test module can import them
without touching conftest.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import pickle
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from vaelab.data.download import FileSpec

if TYPE_CHECKING:
    import pytest

MNIST_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def md5_of(path: Path) -> str:
    """md5 of a file, as published checksums are."""
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------- IDX


def idx_bytes(array: np.ndarray) -> bytes:
    """An uint8 array encoded as IDX: magic 0x0000 08 <ndim>, big-endian sizes, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, compresslevel: int = 9) -> Path:
    """Write an IDX file, gzipped when the name ends in .gz."""
    data = idx_bytes(array)
    if path.suffix == ".gz":
        # mtime=0: the same array always gives the same bytes (and md5).
        data = gzip.compress(data, compresslevel=compresslevel, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_mnist_files(
    folder: Path, n_train: int = 60, n_test: int = 20, seed: int = 0, compresslevel: int = 9
) -> dict[str, np.ndarray]:
    """Write the four MNIST-named IDX gzip files of random 28x28 images; return the arrays.

    Returns {"train_images": (N, 28, 28), "train_labels": (N,), "test_...": ...}.
    """
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for role, name in MNIST_NAMES.items():
        write_idx(Path(folder) / name, arrays[role], compresslevel)
    return arrays


# ------------------------------------------------------------------------ CIFAR-10


def write_cifar10_tarball(
    path: Path, n_per_batch: int = 8, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write a ``cifar-10-python.tar.gz`` look-alike: five train batches and a test batch.

    Each batch is a pickled dict with bytes keys, as in the real archive: b"data"
    (N, 3072) uint8 rows (R, G, B planes) and b"labels" a list of ints. Returns
    {"train": (x, y), "test": (x, y)} with x (N, 3, 32, 32).
    """
    rng = np.random.default_rng(seed)
    batches = {}
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n_per_batch).tolist()
        batches[name] = (data, labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, (data, labels) in batches.items():
            blob = pickle.dumps({b"batch_label": name.encode(), b"data": data, b"labels": labels})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    return {
        "train": (
            np.concatenate([d for d, _ in train]).reshape(-1, 3, 32, 32),
            np.concatenate([np.array(lab, dtype=np.uint8) for _, lab in train]),
        ),
        "test": (
            batches["test_batch"][0].reshape(-1, 3, 32, 32),
            np.array(batches["test_batch"][1], dtype=np.uint8),
        ),
    }


# -------------------------------------------------------------------------- images


def random_image(rng: np.random.Generator, size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A noise image of (width, height) in a PIL mode."""
    w, h = size
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    return Image.fromarray(array[..., 0] if channels == 1 else array, mode)


def encode(image: Image.Image, fmt: str) -> bytes:
    """The bytes of an image saved as PNG or JPEG."""
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def write_celeba(folder: Path, n: int = 12, seed: int = 0) -> dict[str, list[str]]:
    """Write ``img_align_celeba.zip`` (178x218 JPEGs), ``list_eval_partition.txt`` and
    ``list_attr_celeba.txt``.

    Images are split train/val/test roughly 8:2:2 by the partition file, as numbers
    0/1/2. The attribute file lists CelebA's 40 attributes as the real one does (the
    count, the names, then "000001.jpg -1  1 ..." per image), with random values and
    its images in reverse order, so that a reader that took its row order for the
    partition's would be caught. Returns the file names per split.
    """
    from vaelab.data.celeba import ATTRIBUTE_NAMES

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    split_of = ["0"] * (n - 4) + ["1"] * 2 + ["2"] * 2
    with zipfile.ZipFile(folder / "img_align_celeba.zip", "w") as zf:
        zf.writestr("img_align_celeba/", b"")
        for name in names:
            zf.writestr(f"img_align_celeba/{name}", encode(random_image(rng, (178, 218)), "JPEG"))
    (folder / "list_eval_partition.txt").write_text(
        "".join(f"{name} {s}\n" for name, s in zip(names, split_of, strict=True))
    )
    flags = rng.choice([-1, 1], size=(n, len(ATTRIBUTE_NAMES)))
    (folder / "list_attr_celeba.txt").write_text(
        f"{n}\n"
        + " ".join(ATTRIBUTE_NAMES)
        + " \n"
        + "".join(
            f"{name} " + " ".join(f"{v:2d}" for v in row) + "\n"
            for name, row in reversed(list(zip(names, flags, strict=True)))
        )
    )
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for name, s in zip(names, split_of, strict=True):
        splits[{"0": "train", "1": "val", "2": "test"}[s]].append(name)
    return splits


def write_image_folder(folder: Path, n: int = 10, seed: int = 0) -> list[Path]:
    """Write `n` images of mixed formats, sizes and modes, some in a subfolder.

    Also writes a text file and a hidden file that readers must ignore. Returns the
    image paths.
    """
    rng = np.random.default_rng(seed)
    kinds = [("PNG", ".png", "RGB"), ("JPEG", ".jpg", "RGB"), ("PNG", ".PNG", "RGBA"),
             ("PNG", ".png", "L"), ("JPEG", ".jpeg", "L")]  # fmt: skip
    paths = []
    for i in range(n):
        fmt, suffix, mode = kinds[i % len(kinds)]
        size = (int(rng.integers(20, 90)), int(rng.integers(20, 90)))
        sub = folder / ("nested" if i % 3 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img{i:03d}{suffix}"
        path.write_bytes(encode(random_image(rng, size, mode), fmt))
        paths.append(path)
    (folder / "README.txt").write_text("not an image\n")
    (folder / ".hidden.png").write_bytes(b"not an image either")
    return paths


# ------------------------------------------------------------------- specs, server


def fixture_specs(
    published: Mapping[str, FileSpec], folder: Path, base_urls: tuple[str, ...] = ()
) -> dict[str, FileSpec]:
    """Specs for fixture files in `folder` that stand in for a dataset's published ones.

    Names come from `published`, checksums from the files written, mirrors from
    `base_urls` (none: nothing to download from).
    """
    return {
        role: dataclasses.replace(
            spec,
            md5=md5_of(folder / spec.name),
            urls=tuple(base + spec.name for base in base_urls),
            also_accept=(),
            gunzip_sha256=None,
        )
        for role, spec in published.items()
    }


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_directory(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on 127.0.0.1 (ephemeral port); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def dead_base_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens: the server is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def damage_tensor_bytes(checkpoint: Path, n: int = 64, seed: int = 0) -> None:
    """Overwrite `n` bytes in the middle of the largest tensor stored in a torch.save
    zip, in place: the file stays a readable zip that unpickles, only the numbers change
    (what a failing disk or a bad copy does)."""
    with zipfile.ZipFile(checkpoint) as archive:
        info = max(
            (i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size
        )
    with open(checkpoint, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = (
            int.from_bytes(f.read(2), "little"),
            int.from_bytes(f.read(2), "little"),
        )
        start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
        f.seek(start)
        f.write(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())


# --------------------------------------------------------------- factor-grid sets


def grid_images(sizes: tuple[int, ...], shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random uint8 images (N, *shape), one per cell of the factor grid, in C order."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(int(np.prod(sizes)), *shape), dtype=np.uint8)


def write_dsprites_npz(folder: Path, sizes: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """DeepMind's dSprites npz layout for a grid of `sizes` (shape, scale, orientation,
    x, y): `imgs` (N, 64, 64) uint8 in {0, 1}, `latents_classes` and `latents_values`
    (N, 6) with the one-level colour column first, and the pickled `metadata` member
    (an object array, as published). Returns the images."""
    folder.mkdir(parents=True, exist_ok=True)
    n = int(np.prod(sizes))
    imgs = np.random.default_rng(seed).integers(0, 2, size=(n, 64, 64), dtype=np.uint8)
    grid = np.stack(np.unravel_index(np.arange(n), (1, *sizes)), axis=1).astype(np.int64)
    metadata = np.array({"latents_sizes": np.array((1, *sizes))}, dtype=object)
    np.savez_compressed(
        folder / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
        imgs=imgs,
        latents_classes=grid,
        latents_values=grid.astype(np.float64) / 10,
        metadata=metadata,
    )
    return imgs


def write_shapes3d_h5(folder: Path, sizes: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """DeepMind's 3dshapes.h5 layout: `images` (N, 64, 64, 3) uint8 and `labels` (N, 6)
    float64 factor values (hues in [0, 1), scales from 0.75, shapes 0..3, orientations
    from -30), in grid order. Returns the images."""
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    n = int(np.prod(sizes))
    images = grid_images(sizes, (64, 64, 3), seed)
    index = np.stack(np.unravel_index(np.arange(n), sizes), axis=1).astype(np.float64)
    offsets = np.array([0.0, 0.0, 0.0, 0.75, 0.0, -30.0])
    steps = np.array([0.1, 0.1, 0.1, 0.0714, 1.0, 4.2857])
    with h5py.File(folder / "3dshapes.h5", "w") as f:
        f.create_dataset("images", data=images, chunks=(min(n, 8), 64, 64, 3))
        f.create_dataset("labels", data=offsets + steps * index)
    return images


def write_mpi3d_npz(
    folder: Path, variant: str, sizes: tuple[int, ...], seed: int = 0
) -> np.ndarray:
    """The MPI3D challenge npz layout: one member `images` (N, 64, 64, 3) uint8 in grid
    order, uncompressed as published. Returns the images."""
    folder.mkdir(parents=True, exist_ok=True)
    images = grid_images(sizes, (64, 64, 3), seed)
    np.savez(folder / f"mpi3d_{variant}.npz", images=images)
    return images


def norb_matrix_bytes(array: np.ndarray) -> bytes:
    """smallNORB's binary matrix layout: int32 magic (the dtype), int32 ndim, at least
    three int32 sizes (unused ones 1), then the little-endian data."""
    magic = {np.dtype(np.uint8): 0x1E3D4C55, np.dtype("<i4"): 0x1E3D4C54}[array.dtype]
    sizes = [*array.shape, *[1] * max(0, 3 - array.ndim)]
    header = np.array([magic, array.ndim, *sizes], dtype="<i4").tobytes()
    return header + np.ascontiguousarray(array).tobytes()


def write_smallnorb(
    folder: Path, sizes: tuple[int, ...], test_instances: tuple[int, ...], seed: int = 0
) -> np.ndarray:
    """Both official splits' gzipped `-dat`, `-cat`, `-info` files for a grid of `sizes`
    (category, instance, elevation, azimuth index, lighting), rows shuffled as the real
    files are not in grid order, azimuths stored doubled. Returns the left-camera
    images (N, 96, 96) in grid order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(np.prod(sizes))
    grid = np.stack(np.unravel_index(np.arange(n), sizes), axis=1)
    left = rng.integers(0, 256, size=(n, 96, 96), dtype=np.uint8)
    chunks = {"train": "5x46789x9x18x6x2x96x96-training", "test": "5x01235x9x18x6x2x96x96-testing"}
    is_test = np.isin(grid[:, 1], test_instances)
    for split, chunk in chunks.items():
        rows = np.flatnonzero(is_test if split == "test" else ~is_test)
        rows = rng.permutation(rows)
        pairs = np.stack([left[rows], 255 - left[rows]], axis=1)  # (m, 2, 96, 96)
        info = np.stack(
            [grid[rows, 1], grid[rows, 2], 2 * grid[rows, 3], grid[rows, 4]], axis=1
        ).astype("<i4")
        for part, array in (("dat", pairs), ("cat", grid[rows, 0].astype("<i4")), ("info", info)):
            path = folder / f"smallnorb-{chunk}-{part}.mat.gz"
            with gzip.GzipFile(path, "wb", mtime=0) as f:
                f.write(norb_matrix_bytes(array))
    return left


def write_cars3d_tarball(
    folder: Path, n_cars: int, elevations: int = 4, azimuths: int = 24, seed: int = 0
) -> np.ndarray:
    """The Cars3D tarball layout: `data/cars/car_NNN_mesh.mat` (MATLAB v5, written with
    scipy.io) with `im` (128, 128, 3, azimuths, elevations) uint8, plus an unrelated
    member. Returns the images (cars, elevations, azimuths, 128, 128, 3)."""
    from scipy.io import savemat

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n_cars, elevations, azimuths, 128, 128, 3), dtype=np.uint8)
    with tarfile.open(folder / "nips2015-analogy-data.tar.gz", "w:gz") as tar:
        readme = b"analogy data"
        info = tarfile.TarInfo("data/README")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
        for car in range(n_cars):
            buffer = io.BytesIO()
            savemat(buffer, {"im": np.einsum("eahwc->hwcae", images[car])})
            data = buffer.getvalue()
            info = tarfile.TarInfo(f"data/cars/car_{car + 1:03d}_mesh.mat")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return images


# ------------------------------------------------------------------- data roots

#: A dSprites grid small enough to write in a test (3 shapes, 2 values of the others).
DSPRITES_SIZES = (3, 2, 2, 2, 2)
#: The datasets `small_data_root` writes (the others need no files here: `shapes` and
#: `digits` are built in, Fashion-MNIST is Debian's real files), each with the overrides
#: that fit its splits to so few examples.
SMALL_DATA_OVERRIDES = {
    "dsprites": ["data.n_val=4", "data.n_test=4"],
    "mnist": ["data.val_size=8"],
    "cifar10": ["data.val_size=8"],
    "celeba": [],
    "fashion_mnist": ["data.val_size=8"],
}


def small_data_root(dataset: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`root` made a data folder with `dataset`'s files, small, in their real formats;
    the data module's published checksums are patched to those of these files (and
    dSprites' factor grid to the small one written)."""
    from vaelab.data.celeba import CelebADataModule
    from vaelab.data.cifar10 import CIFAR10DataModule
    from vaelab.data.dsprites import DSpritesDataModule
    from vaelab.data.mnist import MNISTDataModule

    if dataset == "dsprites":
        monkeypatch.setattr(DSpritesDataModule, "factor_sizes", DSPRITES_SIZES)
        folder = root / DSpritesDataModule.folder
        write_dsprites_npz(folder, DSPRITES_SIZES)
        monkeypatch.setattr(
            DSpritesDataModule, "files", fixture_specs(DSpritesDataModule.files, folder)
        )
    elif dataset == "mnist":
        write_mnist_files(root / "mnist", n_train=80, n_test=40)
        specs = fixture_specs(MNISTDataModule.files, root / "mnist")
        monkeypatch.setattr(MNISTDataModule, "files", specs)
    elif dataset == "fashion_mnist":  # MNIST's IDX files and names; not Debian's copy
        from vaelab.data.mnist import FashionMNISTDataModule

        folder = root / FashionMNISTDataModule.folder
        write_mnist_files(folder, n_train=80, n_test=40)
        specs = fixture_specs(FashionMNISTDataModule.files, folder)
        monkeypatch.setattr(FashionMNISTDataModule, "files", specs)
        monkeypatch.setattr(FashionMNISTDataModule, "system_dirs", ())
    elif dataset == "cifar10":
        write_cifar10_tarball(root / "cifar-10-python.tar.gz", n_per_batch=16)
        specs = fixture_specs(CIFAR10DataModule.files, root)
        monkeypatch.setattr(CIFAR10DataModule, "files", specs)
    elif dataset == "celeba":
        write_celeba(root / "celeba", n=44)  # 40 to train: two batches of 16
        specs = fixture_specs(CelebADataModule.files, root / "celeba")
        monkeypatch.setattr(CelebADataModule, "files", specs)
    else:
        raise AssertionError(f"no small files for {dataset}: {sorted(SMALL_DATA_OVERRIDES)} have")
    return root
