"""The factor-grid datasets (dSprites, 3dshapes, MPI3D) on small files the tests write
in each real on-disk format: reading, splits, the factor API, the memory-mapped cache
and one-line errors for damaged files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import fixture_specs, write_dsprites_npz, write_mpi3d_npz, write_shapes3d_h5

from vaelab.data import cache as cache_module
from vaelab.data.dsprites import DSpritesDataModule
from vaelab.data.factors import FactorSpace, factor_space_of
from vaelab.data.mpi3d import MPI3D_FILES, MPI3DDataModule
from vaelab.data.shapes3d import Shapes3DDataModule
from vaelab.errors import ConfigError, DataError

SMALL = {
    DSpritesDataModule: (3, 2, 2, 2, 2),
    Shapes3DDataModule: (2, 2, 2, 2, 2, 2),
    MPI3DDataModule: (2, 1, 2, 1, 2, 2, 3),
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAELAB_OFFLINE", "1")


def small_grid(
    cls: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, np.ndarray]:
    """A data root holding `cls`'s file for a small grid, and its images as (N, C, H, W)."""
    sizes = SMALL[cls]
    monkeypatch.setattr(cls, "factor_sizes", sizes)
    data_dir = tmp_path / "data"
    folder = data_dir / cls.folder
    if cls is DSpritesDataModule:
        images = write_dsprites_npz(folder, sizes)[:, None]
        monkeypatch.setattr(cls, "files", fixture_specs(cls.files, folder))
    elif cls is Shapes3DDataModule:
        images = write_shapes3d_h5(folder, sizes).transpose(0, 3, 1, 2)
        monkeypatch.setattr(cls, "files", fixture_specs(cls.files, folder))
    else:
        images = write_mpi3d_npz(folder, "toy", sizes).transpose(0, 3, 1, 2)
        specs = fixture_specs({"toy": MPI3D_FILES["toy"]}, folder)
        monkeypatch.setitem(MPI3D_FILES, "toy", specs["toy"])
    return data_dir, images


@pytest.mark.parametrize("cls", list(SMALL), ids=lambda c: c.__name__)
def test_a_factor_grid_reads_its_real_format_and_looks_up_any_factor_combination(
    cls: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, images = small_grid(cls, tmp_path, monkeypatch)
    n = len(images)
    dm = cls(data_dir=data_dir, n_val=4, n_test=4, batch_size=4)
    dm.prepare_data()
    dm.setup()
    assert dm.split_sizes() == {"train": n - 8, "val": 4, "test": 4}
    scale = 1.0 if dm.levels == 2 else 255.0
    expected = torch.from_numpy(images).float() / scale

    space = factor_space_of(dm)
    assert isinstance(space, FactorSpace) and space.sizes == SMALL[cls]
    assert space.names == cls.factor_names and len(space.names) == len(space.sizes)
    # Any factor combination: its image is the grid's row at the C-order position.
    factors = torch.from_numpy(
        np.stack(np.unravel_index(np.arange(n)[::-1].copy(), SMALL[cls]), axis=1)
    )
    torch.testing.assert_close(space.observe(factors), expected.flip(0), rtol=0, atol=0)
    # The factors of each split's examples give back exactly that split's images.
    for split in ("train", "val", "test"):
        source = dm.splits[split]
        served = source.batch(torch.arange(len(source)))
        torch.testing.assert_close(space.observe(dm.example_factors(split)), served)
    with pytest.raises(ValueError, match="factor indices must lie in"):
        space.observe(torch.tensor([list(SMALL[cls])]))


def test_dsprites_keeps_its_binary_pixels_and_skips_the_pickled_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pickle

    data_dir, images = small_grid(DSpritesDataModule, tmp_path, monkeypatch)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the reader unpickled something")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    dm = DSpritesDataModule(data_dir=data_dir, n_val=4, n_test=4)
    assert dm.levels == 2 and dm.dims == (1, 64, 64)
    dm.setup()
    rows = dm.split_rows()["train"][:8]
    batch = dm.splits["train"].batch(torch.arange(8))
    assert torch.equal(batch, torch.from_numpy(images[rows.numpy()]).float())  # {0, 1} kept


def test_a_large_grid_is_memory_mapped_not_read_into_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, _ = small_grid(MPI3DDataModule, tmp_path, monkeypatch)
    monkeypatch.setattr(cache_module, "MMAP_THRESHOLD_BYTES", 1)  # every array counts as large
    dm = MPI3DDataModule(data_dir=data_dir, n_val=4, n_test=4)
    dm.setup()
    assert isinstance(dm.load_arrays()["images"], np.memmap)
    assert dm.splits["train"].batch(torch.arange(3)).shape == (3, 3, 64, 64)


def test_a_truncated_file_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, _ = small_grid(MPI3DDataModule, tmp_path, monkeypatch)
    path = data_dir / "mpi3d" / "mpi3d_toy.npz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    specs = fixture_specs({"toy": MPI3D_FILES["toy"]}, path.parent)  # the damaged copy's md5
    monkeypatch.setitem(MPI3D_FILES, "toy", specs["toy"])
    with pytest.raises(DataError, match=r"mpi3d_toy\.npz .*delete it and rerun") as caught:
        MPI3DDataModule(data_dir=data_dir, n_val=4, n_test=4).prepare_data()
    assert "\n" not in str(caught.value)
    assert not list((data_dir / "mpi3d").glob("decoded-*/images.npy"))  # nothing half-written


def test_a_file_whose_rows_are_out_of_grid_order_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import h5py

    data_dir, _ = small_grid(Shapes3DDataModule, tmp_path, monkeypatch)
    path = data_dir / "3dshapes" / "3dshapes.h5"
    with h5py.File(path, "r+") as f:
        labels = f["labels"][...]
        f["labels"][...] = labels[::-1]
    monkeypatch.setattr(
        Shapes3DDataModule, "files", fixture_specs(Shapes3DDataModule.files, path.parent)
    )
    with pytest.raises(DataError, match="not 3dshapes' factor grid in order"):
        Shapes3DDataModule(data_dir=data_dir, n_val=4, n_test=4).prepare_data()


def test_the_wrong_number_of_images_is_refused_with_the_grid_it_expected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, _ = small_grid(DSpritesDataModule, tmp_path, monkeypatch)
    monkeypatch.setattr(DSpritesDataModule, "factor_sizes", (3, 2, 2, 2, 3))
    with pytest.raises(DataError, match=r"holds 48 images, but .*3x2x2x2x3 has 72"):
        DSpritesDataModule(data_dir=data_dir, n_val=4, n_test=4).prepare_data()


def test_a_missing_file_offline_names_it_and_its_url(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        DSpritesDataModule(data_dir=tmp_path).prepare_data()
    line = str(caught.value)
    assert "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz" in line and "https://" in line
    assert "\n" not in line


def test_splits_that_leave_no_training_data_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"data\.n_val \+ data\.n_test = 737280 leaves no"):
        DSpritesDataModule(n_val=700000, n_test=37280)
