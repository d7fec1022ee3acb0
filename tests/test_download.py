"""The download path against a local HTTP server: verified, mirrored, nothing partial left."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from data_fixtures import dead_base_url, md5_of, serve_directory, write_idx

from vaelab.data.download import FileSpec, locate_or_fetch
from vaelab.errors import DataError

NAME = "train-labels-idx1-ubyte.gz"


@pytest.fixture(autouse=True)
def _network_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # These tests choose offline explicitly; an offline CI shell must not decide.
    monkeypatch.delenv("VAELAB_OFFLINE", raising=False)


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """A folder holding one published file, to be served."""
    import numpy as np

    folder = tmp_path / "server"
    write_idx(folder / NAME, np.arange(100, dtype=np.uint8))
    return folder


def spec_for(served: Path, *bases: str, md5: str | None = None) -> FileSpec:
    return FileSpec(NAME, md5 or md5_of(served / NAME), tuple(b + NAME for b in bases))


def assert_one_line_error(err: DataError, *must_contain: str) -> None:
    text = str(err)
    assert "\n" not in text
    for part in must_contain:
        assert part in text, f"{part!r} missing from: {text}"


def test_download_verifies_and_leaves_only_the_file(served: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with serve_directory(served) as base:
        path = locate_or_fetch(spec_for(served, base), data_dir)
    assert path == data_dir / NAME
    assert path.read_bytes() == (served / NAME).read_bytes()
    assert sorted(p.name for p in data_dir.iterdir()) == [NAME]


def test_a_verified_local_copy_is_used_without_network(served: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with serve_directory(served) as base:
        spec = spec_for(served, base)
        locate_or_fetch(spec, data_dir)
    # The server is gone now: a second run must not need it.
    assert locate_or_fetch(spec, data_dir, offline=True) == data_dir / NAME


def test_mirrors_are_tried_in_order(served: Path, tmp_path: Path) -> None:
    with serve_directory(served) as base:
        spec = FileSpec(
            NAME,
            md5_of(served / NAME),
            (dead_base_url() + NAME, base + "missing/" + NAME, base + NAME),
        )
        path = locate_or_fetch(spec, tmp_path / "data")
    assert md5_of(path) == spec.md5


def test_checksum_mismatch_is_one_line_and_leaves_nothing(served: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    wrong = "0" * 32
    with serve_directory(served) as base, pytest.raises(DataError) as info:
        locate_or_fetch(spec_for(served, base, md5=wrong), data_dir)
    assert_one_line_error(
        info.value,
        NAME,
        str(data_dir),
        wrong,
        base + NAME,
        "checksum mismatch",
        md5_of(served / NAME),
    )
    assert not data_dir.exists() or not any(data_dir.iterdir())


def test_server_down_is_one_line(served: Path, tmp_path: Path) -> None:
    base = dead_base_url()
    spec = spec_for(served, base)
    with pytest.raises(DataError) as info:
        locate_or_fetch(spec, tmp_path / "data")
    assert_one_line_error(info.value, NAME, "cannot connect", spec.md5, base + NAME)


def test_http_error_status_is_reported(served: Path, tmp_path: Path) -> None:
    with serve_directory(served) as base, pytest.raises(DataError) as info:
        locate_or_fetch(spec_for(served, base + "nowhere/"), tmp_path / "data")
    assert_one_line_error(info.value, "HTTP 404")


def test_offline_env_forbids_downloads(
    served: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAELAB_OFFLINE", "1")
    with serve_directory(served) as base, pytest.raises(DataError) as info:
        locate_or_fetch(spec_for(served, base), tmp_path / "data")
    assert_one_line_error(info.value, "VAELAB_OFFLINE", base + NAME)
    assert not (tmp_path / "data").exists()


def test_search_dirs_are_used_in_place(served: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    path = locate_or_fetch(spec_for(served, dead_base_url()), data_dir, search_dirs=[served])
    assert path == served / NAME
    assert not data_dir.exists()


def test_a_damaged_copy_beside_a_verified_system_copy_is_reported(
    served: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    damaged = data_dir / NAME
    damaged.write_bytes((served / NAME).read_bytes()[:-7])
    spec = spec_for(served, dead_base_url())

    with caplog.at_level("WARNING", logger="vaelab.data.download"):
        path = locate_or_fetch(spec, data_dir, search_dirs=[served], offline=True)

    assert path == served / NAME
    (record,) = caplog.records
    message = record.getMessage()
    assert "\n" not in message
    assert f"{damaged} has md5 {md5_of(damaged)}, not the published {spec.md5}" in message
    assert f"using the verified copy {served / NAME} instead" in message


def test_corrupt_local_copy_is_not_used(served: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / NAME).write_bytes((served / NAME).read_bytes()[:-7])  # truncated
    spec = spec_for(served, dead_base_url())
    with pytest.raises(DataError) as info:
        locate_or_fetch(spec, data_dir, offline=True)
    assert_one_line_error(info.value, f"{data_dir / NAME} has md5 {md5_of(data_dir / NAME)}")


def test_corrupt_local_copy_is_replaced_by_a_verified_download(
    served: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / NAME).write_bytes(b"partial")
    with serve_directory(served) as base:
        path = locate_or_fetch(spec_for(served, base), data_dir)
    assert md5_of(path) == md5_of(served / NAME)
    assert sorted(p.name for p in data_dir.iterdir()) == [NAME]


def test_a_recompressed_copy_is_accepted_by_its_decompressed_hash(
    served: Path, tmp_path: Path
) -> None:
    # Like Debian's Fashion-MNIST: same bytes inside, another gzip, another md5.
    import hashlib

    raw = gzip.decompress((served / NAME).read_bytes())
    other = tmp_path / "system"
    other.mkdir()
    (other / NAME).write_bytes(gzip.compress(raw, compresslevel=1, mtime=12345))
    assert md5_of(other / NAME) != md5_of(served / NAME)
    spec = FileSpec(NAME, md5_of(served / NAME), (), gunzip_sha256=hashlib.sha256(raw).hexdigest())
    assert locate_or_fetch(spec, tmp_path / "data", [other], offline=True) == other / NAME
    by_md5 = FileSpec(NAME, spec.md5, (), also_accept=(f"md5:{md5_of(other / NAME)}",))
    assert locate_or_fetch(by_md5, tmp_path / "data", [other], offline=True) == other / NAME
