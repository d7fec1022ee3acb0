"""Readers of the real on-disk formats, and the decoded-array cache, on fixture files."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import (
    MNIST_NAMES,
    encode,
    idx_bytes,
    random_image,
    write_celeba,
    write_cifar10_tarball,
    write_idx,
    write_image_folder,
    write_mnist_files,
)
from PIL import Image

from vaelab.data.array_cache import ArrayCache, cache_key
from vaelab.data.celeba import ATTRIBUTE_NAMES
from vaelab.data.readers import (
    CelebAZip,
    ImageSpec,
    image_to_array,
    list_image_files,
    read_celeba_attributes,
    read_celeba_partition,
    read_cifar10,
    read_idx,
    read_idx_pair,
    read_image_files,
)
from vaelab.errors import DataError

# ---------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("name", ["x.idx", "x.idx.gz"])
def test_idx_round_trip(tmp_path: Path, name: str) -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / name, images)), images)


def test_idx_pair_gives_nchw_images_and_labels(tmp_path: Path) -> None:
    arrays = write_mnist_files(tmp_path, n_train=7, n_test=3)
    images, labels = read_idx_pair(
        tmp_path / MNIST_NAMES["train_images"], tmp_path / MNIST_NAMES["train_labels"]
    )
    assert images.shape == (7, 1, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[:, 0], arrays["train_images"])
    np.testing.assert_array_equal(labels, arrays["train_labels"])


def test_idx_pair_with_mismatched_counts_is_refused(tmp_path: Path) -> None:
    write_idx(tmp_path / "i.gz", np.zeros((4, 28, 28), np.uint8))
    write_idx(tmp_path / "l.gz", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match=r"4 images but .* 3 labels"):
        read_idx_pair(tmp_path / "i.gz", tmp_path / "l.gz")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x02\x08\x01" + bytes(8), "bad magic"),
        (b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + bytes(12), "not supported"),
        (b"\x00\x00\x08\x03" + (2).to_bytes(4, "big"), "truncated inside its IDX header"),
        (idx_bytes(np.zeros((3, 4, 4), np.uint8))[:-5], "truncated or corrupt"),
        (idx_bytes(np.zeros(3, np.uint8)) + b"extra", "truncated or corrupt"),
    ],
)
def test_corrupt_idx_is_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(content))
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_gzip_is_one_clear_error(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x.gz", np.zeros((10, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match="not a readable gzip file"):
        read_idx(path)


# ------------------------------------------------------------------------ CIFAR-10


def test_cifar10_tarball_round_trip(tmp_path: Path) -> None:
    written = write_cifar10_tarball(tmp_path / "cifar-10-python.tar.gz", n_per_batch=4)
    read = read_cifar10(tmp_path / "cifar-10-python.tar.gz")
    for split in ("train", "test"):
        np.testing.assert_array_equal(read[split][0], written[split][0])
        np.testing.assert_array_equal(read[split][1], written[split][1])
    assert read["train"][0].shape == (20, 3, 32, 32)


def test_cifar10_tarball_missing_a_batch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        blob = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]})
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(DataError, match="lacks data_batch_2"):
        read_cifar10(path)


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.getcwd, ())  # harmless, but a pickle may name any callable


def test_cifar10_pickles_naming_code_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
            blob = pickle.dumps({b"data": _RunsCode(), b"labels": [0]})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(DataError, match="refusing to unpickle"):
        read_cifar10(path)


def test_not_a_tarball_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "c.tar.gz").write_bytes(b"<html>quota exceeded</html>")
    with pytest.raises(DataError, match="not a readable tarball"):
        read_cifar10(tmp_path / "c.tar.gz")


# -------------------------------------------------------------------------- images


def test_centre_crop_then_resize() -> None:
    # A 178x218 image whose centred 148-square is white and the rest black.
    array = np.zeros((218, 178, 3), np.uint8)
    array[35:183, 15:163] = 255
    out = image_to_array(Image.fromarray(array), ImageSpec(size=148, crop=148))
    assert out.shape == (3, 148, 148) and out.min() == 255
    small = image_to_array(Image.fromarray(array), ImageSpec(size=32, crop=None, channels=1))
    assert small.shape == (1, 32, 32)


def test_celeba_zip_and_partition(tmp_path: Path) -> None:
    splits = write_celeba(tmp_path, n=10)
    assert read_celeba_partition(tmp_path / "list_eval_partition.txt") == splits
    with CelebAZip(tmp_path / "img_align_celeba.zip") as archive:
        out = np.zeros((len(splits["val"]), 3, 16, 16), np.uint8)
        archive.decode_into(out, splits["val"], ImageSpec(size=16, crop=148))
        assert out.std() > 0
        with pytest.raises(DataError, match=r"has no image 999999\.jpg"):
            archive.read("999999.jpg")


def test_bad_partition_line_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("000001.jpg 0\n000002.jpg 7\n")
    with pytest.raises(DataError, match=r"p.txt:2: expected"):
        read_celeba_partition(tmp_path / "p.txt")


def parse_attribute_file(path: Path) -> tuple[list[str], dict[str, list[int]]]:
    """The header names and each image's values of a ``list_attr_celeba.txt``, read
    with numpy rather than the reader under test, as 0/1."""
    names = path.read_text().splitlines()[1].split()
    images = np.loadtxt(path, skiprows=2, usecols=0, dtype=str)
    values = np.loadtxt(path, skiprows=2, usecols=range(1, 41), dtype=int)
    present = (values == 1).astype(int).tolist()
    return names, dict(zip(images.tolist(), present, strict=True))


def test_celeba_attributes_follow_the_partition_order(tmp_path: Path) -> None:
    splits = write_celeba(tmp_path, n=10)
    names, expected = parse_attribute_file(tmp_path / "list_attr_celeba.txt")
    attributes = read_celeba_attributes(tmp_path / "list_attr_celeba.txt", ATTRIBUTE_NAMES)
    assert attributes.names == tuple(names) == ATTRIBUTE_NAMES
    assert attributes.values.dtype == np.uint8 and attributes.values.shape == (10, 40)
    for split, images in splits.items():
        rows = attributes.select(images)
        assert rows.shape == (len(images), 40), split
        assert rows.tolist() == [expected[image] for image in images], split
    assert attributes.select([]).shape == (0, 40)


def test_celeba_attributes_accept_runs_of_spaces_and_a_plus_sign(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("2\r\n  A   B \r\n000002.jpg   +1  -1\r\n\r\n000001.jpg\t-1 1\r\n")
    attributes = read_celeba_attributes(path)
    assert attributes.names == ("A", "B")
    assert attributes.select(["000001.jpg", "000002.jpg"]).tolist() == [[0, 1], [1, 0]]


ROW = "000001.jpg " + " ".join(["-1"] * 40)
HEADER = " ".join(ATTRIBUTE_NAMES)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", r":1: expected the number of images, got 'an empty file'"),
        (f"one\n{HEADER}\n{ROW}\n", r":1: expected the number of images, got 'one'"),
        (f"2\n{HEADER}\n{ROW}\n", r": line 1 says 2 images, the file lists 1; .* delete it"),
        ("1\n", r":2: expected the attribute names, got none"),
        (f"1\n{HEADER.replace('Smiling', 'Smile')}\n{ROW}\n", r":2: attribute 32 is 'Smile'"),
        (f"1\n{HEADER} Extra\n{ROW}\n", r":2: names 41 attributes, expected 40"),
        (f"1\n{HEADER}\n{ROW[:-3]}\n", r":3: 000001\.jpg has 39 values for 40 attributes"),
        (f"1\n{HEADER}\n{ROW[:-2]}0\n", r":3: 000001\.jpg has '0' for Young; expected 1 or"),
        (f"2\n{HEADER}\n{ROW}\n\n{ROW}\n", r":5: 000001\.jpg is listed twice \(first on line 3\)"),
    ],
)
def test_malformed_celeba_attributes_are_one_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=re.escape(str(path)) + problem) as caught:
        read_celeba_attributes(path, ATTRIBUTE_NAMES)
    assert "\n" not in str(caught.value)


def test_celeba_image_without_attributes_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text(f"1\n{HEADER}\n{ROW}\n")
    attributes = read_celeba_attributes(path, ATTRIBUTE_NAMES)
    with pytest.raises(DataError, match=r"has no attributes for 000002\.jpg \(named in the"):
        attributes.select(["000001.jpg", "000002.jpg"])


def test_image_folder_lists_images_only(tmp_path: Path) -> None:
    written = write_image_folder(tmp_path / "imgs", n=7)
    assert list_image_files(tmp_path / "imgs") == sorted(written)
    images = read_image_files(sorted(written), ImageSpec(size=24))
    assert images.shape == (7, 3, 24, 24) and images.dtype == np.uint8


def test_empty_or_missing_folder_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no png/jpg/jpeg"):
        list_image_files(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        list_image_files(tmp_path / "nowhere")


def test_undecodable_image_names_the_file(tmp_path: Path) -> None:
    good = tmp_path / "a.png"
    good.write_bytes(encode(random_image(np.random.default_rng(0), (8, 8)), "PNG"))
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError, match=r"b\.jpg cannot be decoded"):
        read_image_files([good, bad], ImageSpec(size=8))


# --------------------------------------------------------------------------- cache


def test_cache_round_trip_and_memory_map(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path / "c", params={"what": "test"})
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    cache.save("x", array)
    assert cache.complete(["x"]) and not cache.complete(["x", "y"])
    np.testing.assert_array_equal(cache.load("x", mmap=False), array)
    mapped = cache.load("x", mmap=True)
    assert isinstance(mapped, np.memmap) and mapped.flags.writeable
    np.testing.assert_array_equal(mapped, array)
    assert (tmp_path / "c" / "params.json").read_text().count('"test"') == 1
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "manifest.json",
        "params.json",
        "x.npy",
    ]


def test_interrupted_write_leaves_nothing(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path / "c")
    with pytest.raises(RuntimeError), cache.writer("x", (4, 4), np.uint8) as out:
        out[:2] = 1
        raise RuntimeError("killed half-way")
    assert not cache.complete(["x"])
    assert list((tmp_path / "c").iterdir()) == []


def test_corrupt_cache_file_says_how_to_rebuild(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path / "c")
    cache.save("x", np.zeros(10, np.uint8))
    cache.path("x").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"delete .* to rebuild it"):
        cache.load("x")


def test_cache_key_follows_every_parameter() -> None:
    base = cache_key(source={"a": "md5"}, preprocessing={"image_size": 64, "crop": 148})
    assert base == cache_key(preprocessing={"crop": 148, "image_size": 64}, source={"a": "md5"})
    assert base != cache_key(source={"a": "md5"}, preprocessing={"image_size": 32, "crop": 148})
    assert base != cache_key(source={"a": "other"}, preprocessing={"image_size": 64, "crop": 148})
