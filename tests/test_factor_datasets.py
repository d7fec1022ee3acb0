"""The factor-grid datasets (dSprites, 3dshapes, MPI3D) on small files the tests write
in each real on-disk format: reading, splits, the factor API, the memory-mapped cache
and one-line errors for damaged files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import (
    fixture_specs,
    norb_matrix_bytes,
    write_cars3d_tarball,
    write_dsprites_npz,
    write_mpi3d_npz,
    write_shapes3d_h5,
    write_smallnorb,
)

from vaelab.data import array_cache as cache_module
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


# ------------------------------------------------------------ smallNORB, Cars3D


def lanczos_64(image: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((64, 64), Image.Resampling.LANCZOS))


def test_smallnorb_reads_both_official_splits_into_its_grid_and_hides_the_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vaelab.data.smallnorb import SmallNORBDataModule

    sizes, test_instances = (2, 3, 2, 2, 2), (0, 2)
    monkeypatch.setattr(SmallNORBDataModule, "factor_sizes", sizes)
    monkeypatch.setattr(SmallNORBDataModule, "test_instances", test_instances)
    folder = tmp_path / "data" / "smallnorb"
    left = write_smallnorb(folder, sizes, test_instances)
    monkeypatch.setattr(
        SmallNORBDataModule, "files", fixture_specs(SmallNORBDataModule.files, folder)
    )
    dm = SmallNORBDataModule(data_dir=tmp_path / "data", n_val=2)
    dm.setup()
    grid = np.stack(np.unravel_index(np.arange(len(left)), sizes), axis=1)
    # The official split: the test split is exactly the test instances' photographs.
    test_rows = dm.split_rows()["test"].numpy()
    assert sorted(set(grid[test_rows, 1])) == list(test_instances)
    assert dm.split_sizes() == {"train": 16 - 2, "val": 2, "test": 32}
    # Each stored image is the left camera's, resized as disentanglement_lib resizes.
    served = dm.splits["test"].batch(torch.arange(3))
    for i, row in enumerate(test_rows[:3]):
        expected = torch.from_numpy(lanczos_64(left[row])).float() / 255
        torch.testing.assert_close(served[i, 0], expected)
    space = dm.factor_space()
    assert space.names == ("category", "elevation", "azimuth", "lighting")
    assert space.sizes == (2, 2, 2, 2)
    # Observing one factor combination many times: only the instance varies, so every
    # image is one of that combination's three photographs.
    factors = torch.tensor([[1, 0, 1, 1]] * 60)
    seen = {space.observe(factors)[i].numpy().tobytes() for i in range(60)}
    cells = [np.ravel_multi_index((1, inst, 0, 1, 1), sizes) for inst in range(3)]
    photographs = {
        (torch.from_numpy(lanczos_64(left[c])).float().div_(255))[None].numpy().tobytes()
        for c in cells
    }
    assert seen == photographs
    assert dm.example_factors("val").shape == (2, 4)


def test_smallnorb_refuses_a_matrix_whose_data_does_not_fit_its_header(tmp_path: Path) -> None:
    from vaelab.data.array_readers import read_norb_matrix

    path = tmp_path / "m.mat"
    path.write_bytes(norb_matrix_bytes(np.zeros((4, 3), dtype="<i4"))[:-4])
    with pytest.raises(DataError, match=r"holds 44 data bytes, but its header \(4, 3\) needs 48"):
        read_norb_matrix(path)
    path.write_bytes(b"\x00" * 40)
    with pytest.raises(DataError, match="has no smallNORB matrix header"):
        read_norb_matrix(path)


def test_cars3d_reads_its_tarball_of_matlab_files_into_the_grid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vaelab.data.cars3d import Cars3DDataModule

    monkeypatch.setattr(Cars3DDataModule, "factor_sizes", (2, 3, 4))
    folder = tmp_path / "data" / "cars3d"
    images = write_cars3d_tarball(folder, n_cars=4, elevations=2, azimuths=3)
    monkeypatch.setattr(Cars3DDataModule, "files", fixture_specs(Cars3DDataModule.files, folder))
    dm = Cars3DDataModule(data_dir=tmp_path / "data", n_val=2, n_test=2)
    dm.setup()
    space = dm.factor_space()
    assert space.names == ("elevation", "azimuth", "object")
    observed = space.observe(torch.tensor([[1, 2, 3], [0, 1, 0]]))
    for i, (e, a, car) in enumerate([(1, 2, 3), (0, 1, 0)]):
        expected = torch.from_numpy(lanczos_64(images[car, e, a])).permute(2, 0, 1).float() / 255
        torch.testing.assert_close(observed[i], expected)


def test_cars3d_with_the_wrong_number_of_cars_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vaelab.data.cars3d import Cars3DDataModule

    monkeypatch.setattr(Cars3DDataModule, "factor_sizes", (2, 3, 5))
    folder = tmp_path / "data" / "cars3d"
    write_cars3d_tarball(folder, n_cars=4, elevations=2, azimuths=3)
    monkeypatch.setattr(Cars3DDataModule, "files", fixture_specs(Cars3DDataModule.files, folder))
    with pytest.raises(DataError, match="holds 4 car meshes, not Cars3D's 5"):
        Cars3DDataModule(data_dir=tmp_path / "data", n_val=2, n_test=2).prepare_data()
