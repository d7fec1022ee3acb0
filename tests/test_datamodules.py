"""DataModules on fixture files in the real formats: splits, binarisation, cache, configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import (
    dead_base_url,
    fixture_specs,
    serve_directory,
    write_celeba,
    write_cifar10_tarball,
    write_image_folder,
    write_mnist_files,
)
from helpers import check_arguments

from vaelab.data.batching import BatchLoader, TensorSource
from vaelab.data.celeba import CelebADataModule
from vaelab.data.cifar10 import CIFAR10DataModule
from vaelab.data.digits import DigitsDataModule
from vaelab.data.folder import ImageFolderDataModule
from vaelab.data.mnist import FashionMNISTDataModule, MNISTDataModule
from vaelab.errors import ConfigError, DataError

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # No test here may reach the internet; the download tests opt back in.
    monkeypatch.setenv("VAELAB_OFFLINE", "1")


@pytest.fixture
def mnist_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root with fixture MNIST files (60 train, 20 test) standing in for the real."""
    data_dir = tmp_path / "data"
    write_mnist_files(data_dir / "mnist", n_train=60, n_test=20)
    monkeypatch.setattr(
        MNISTDataModule, "files", fixture_specs(MNISTDataModule.files, data_dir / "mnist")
    )
    return data_dir


def split_values(dm: MNISTDataModule, split: str) -> torch.Tensor:
    source = dm.splits[split]
    return source.batch(torch.arange(len(source)))


# -------------------------------------------------------------------------- MNIST


def test_mnist_splits_dims_and_targets(mnist_dir: Path) -> None:
    dm = MNISTDataModule(data_dir=mnist_dir, val_size=10, binarize="none", batch_size=16)
    assert dm.dims == (1, 28, 28) and dm.levels == 256
    dm.prepare_data()
    dm.setup()
    assert dm.split_sizes() == {"train": 50, "val": 10, "test": 20}
    assert {k: len(v) for k, v in dm.targets.items()} == dm.split_sizes()
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (16, 1, 28, 28) and batch.dtype == torch.float32
    assert batch.min() >= 0 and batch.max() <= 1
    assert len(dm.train_dataloader()) == 50 // 16  # training drops the ragged batch


def test_validation_carve_is_fixed_by_seed(mnist_dir: Path) -> None:
    def val(seed: int) -> torch.Tensor:
        dm = MNISTDataModule(data_dir=mnist_dir, val_size=10, seed=seed, binarize="none")
        dm.setup()
        return split_values(dm, "val")

    assert torch.equal(val(1), val(1))
    assert not torch.equal(val(1), val(2))


def test_static_binarisation_is_fixed_by_seed(mnist_dir: Path) -> None:
    def setup(seed: int) -> MNISTDataModule:
        dm = MNISTDataModule(data_dir=mnist_dir, val_size=10, seed=seed, binarize="static")
        dm.setup()
        return dm

    a, b, c = setup(0), setup(0), setup(1)
    assert a.levels == 2
    for split in ("train", "val", "test"):
        assert set(split_values(a, split).unique().tolist()) == {0.0, 1.0}
        assert torch.equal(split_values(a, split), split_values(b, split))
    assert not torch.equal(split_values(a, "train"), split_values(c, "train"))
    assert a.train_transform() is None


def test_dynamic_binarisation_resamples_training_batches_only(mnist_dir: Path) -> None:
    dm = MNISTDataModule(data_dir=mnist_dir, val_size=10, binarize="dynamic", batch_size=50)
    dm.setup()
    assert dm.levels == 2
    loader = dm.train_dataloader()
    loader.shuffle = False  # the same images twice, to see the resampling
    first, second = next(iter(loader)), next(iter(loader))
    assert set(first.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(first, second)
    val = [next(iter(dm.val_dataloader()))[0] for _ in range(2)]  # (batch, index) pairs
    assert torch.equal(val[0], val[1]) and set(val[0].unique().tolist()) == {0.0, 1.0}


def test_binarize_choice_is_checked_and_recorded(mnist_dir: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"data\.binarize='yes' must be one of none, static, dynamic"
    ):
        check_arguments("vaelab.data.mnist.MNISTDataModule", "data", binarize="yes")
    dm = MNISTDataModule(data_dir=mnist_dir, binarize="static")
    assert dm.hparams["binarize"] == "static"


def test_second_run_reads_the_cache_only(mnist_dir: Path) -> None:
    MNISTDataModule(data_dir=mnist_dir, binarize="none").prepare_data()
    for p in (mnist_dir / "mnist").glob("*.gz"):
        p.unlink()  # sources gone: only the decoded cache can serve now
    dm = MNISTDataModule(data_dir=mnist_dir, binarize="none", val_size=5)
    dm.prepare_data()
    dm.setup()
    assert dm.split_sizes()["test"] == 20


def test_missing_files_stop_with_one_line(tmp_path: Path) -> None:
    dm = MNISTDataModule(data_dir=tmp_path)
    with pytest.raises(DataError) as info:
        dm.setup()
    message = str(info.value)
    assert "\n" not in message
    assert "train-images-idx3-ubyte.gz" in message and str(tmp_path / "mnist") in message
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in message  # the published md5
    assert "https://" in message


def test_fashion_mnist_found_in_another_tools_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"  # torchvision's layout
    arrays = write_mnist_files(raw, n_train=30, n_test=10, seed=5)
    specs = fixture_specs(FashionMNISTDataModule.files, raw)
    monkeypatch.setattr(FashionMNISTDataModule, "files", specs)
    monkeypatch.setattr(FashionMNISTDataModule, "system_dirs", ())
    dm = FashionMNISTDataModule(data_dir=tmp_path, val_size=5, binarize="none")
    dm.setup()
    expected = torch.from_numpy(arrays["test_images"]).float()[:, None] / 255
    assert torch.equal(split_values(dm, "test"), expected)


def test_download_through_the_datamodule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAELAB_OFFLINE")
    served = tmp_path / "server"
    write_mnist_files(served, n_train=30, n_test=10)
    data_dir = tmp_path / "data"
    with serve_directory(served) as base:
        specs = fixture_specs(MNISTDataModule.files, served, (dead_base_url(), base))
        monkeypatch.setattr(MNISTDataModule, "files", specs)
        MNISTDataModule(data_dir=data_dir).prepare_data()
    assert sorted(p.name for p in (data_dir / "mnist").glob("*.gz")) == sorted(
        s.name for s in specs.values()
    )
    dm = MNISTDataModule(data_dir=data_dir, val_size=5)  # server down: the cache serves
    dm.setup()
    assert dm.split_sizes() == {"train": 25, "val": 5, "test": 10}


# ----------------------------------------------------------------------- CIFAR-10


def test_cifar10_from_its_tarball(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Placed in the data root itself, where torchvision keeps it.
    written = write_cifar10_tarball(tmp_path / "cifar-10-python.tar.gz", n_per_batch=6)
    monkeypatch.setattr(
        CIFAR10DataModule, "files", fixture_specs(CIFAR10DataModule.files, tmp_path)
    )
    dm = CIFAR10DataModule(data_dir=tmp_path, val_size=6, batch_size=8)
    assert dm.dims == (3, 32, 32) and dm.levels == 256
    dm.setup()
    assert dm.split_sizes() == {"train": 24, "val": 6, "test": 6}
    assert torch.equal(dm.splits["test"].data, torch.from_numpy(written["test"][0]))
    assert torch.equal(dm.targets["test"], torch.from_numpy(written["test"][1]).long())
    assert next(iter(dm.train_dataloader())).shape == (8, 3, 32, 32)


# ------------------------------------------------------------------------- CelebA


def test_celeba_official_splits_and_resize(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    splits = write_celeba(tmp_path / "celeba", n=12)
    monkeypatch.setattr(
        CelebADataModule, "files", fixture_specs(CelebADataModule.files, tmp_path / "celeba")
    )
    dm = CelebADataModule(data_dir=tmp_path, image_size=16, batch_size=4)
    assert dm.dims == (3, 16, 16)
    dm.setup()
    assert dm.split_sizes() == {s: len(names) for s, names in splits.items()}
    assert next(iter(dm.train_dataloader())).shape == (4, 3, 16, 16)
    # Another size is another cache, not the 16x16 arrays reused.
    CelebADataModule(data_dir=tmp_path, image_size=8).prepare_data()
    assert len(list((tmp_path / "celeba").glob("decoded-*"))) == 2


def test_celeba_attributes_are_its_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Known without any file: label_space reads nothing (the data root is empty).
    space = CelebADataModule(data_dir=tmp_path / "empty").label_space()
    assert len(space.names) == 40 and space.sizes == (2,) * 40
    assert space.names[0] == "5_o_Clock_Shadow" and space.names[-1] == "Young"
    assert space.names.index("Male") == 20 and space.names.index("Smiling") == 31
    assert space.level_names == {} and space.level_name("Smiling", 1) == "Smiling=1"
    assert not (tmp_path / "empty").exists()

    splits = write_celeba(tmp_path / "celeba", n=12)
    monkeypatch.setattr(
        CelebADataModule, "files", fixture_specs(CelebADataModule.files, tmp_path / "celeba")
    )
    # The file read independently of vaelab's reader: image name -> 0/1 per attribute.
    lines = (tmp_path / "celeba" / "list_attr_celeba.txt").read_text().splitlines()
    assert tuple(lines[1].split()) == space.names
    written = {f[0]: [int(v == "1") for v in f[1:]] for f in map(str.split, lines[2:])}
    dm = CelebADataModule(data_dir=tmp_path, image_size=8, batch_size=4)
    for split, images in splits.items():
        labels = dm.split_labels(split)
        assert labels.dtype == torch.int64 and labels.shape == (len(images), 40)
        assert labels.tolist() == [written[name] for name in images], split
    # The cache holds them beside the images, uint8, row for row.
    cached = dm.load_arrays()
    assert cached["val_attributes"].dtype == np.uint8
    assert len(cached["val_attributes"]) == len(cached["val_images"])
    # What a conditional model is served: the chosen columns, beside each batch.
    smiling = dm.chosen_labels("test", ["Smiling", "Male"])
    assert smiling.tolist() == [[written[n][31], written[n][20]] for n in splits["test"]]


def test_celeba_malformed_attributes_stop_before_the_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_celeba(tmp_path / "celeba", n=12)
    path = tmp_path / "celeba" / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:2], *lines[3:]]) + "\n")  # one image fewer
    monkeypatch.setattr(
        CelebADataModule, "files", fixture_specs(CelebADataModule.files, tmp_path / "celeba")
    )
    with pytest.raises(DataError, match=r"list_attr_celeba\.txt: line 1 says 12 images, the "):
        CelebADataModule(data_dir=tmp_path, image_size=8).check_available()
    assert not list((tmp_path / "celeba").glob("decoded-*/*_images.npy"))


def test_celeba_bad_crop_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.crop=0 must be an integer >= 1 or null"):
        check_arguments("vaelab.data.celeba.CelebADataModule", "data", crop=0)


# ------------------------------------------------------------------ digits, folder


def test_digits_offline_with_seventeen_levels() -> None:
    dm = DigitsDataModule(val_size=0.1, test_size=0.2, batch_size=32)
    assert dm.dims == (1, 8, 8) and dm.levels == 17
    dm.setup()
    sizes = dm.split_sizes()
    assert sum(sizes.values()) == 1797 and sizes["test"] == 359 and sizes["val"] == 180
    values = torch.cat([s.batch(torch.arange(len(s))) for s in dm.splits.values()])
    assert values.min() == 0 and values.max() == 1
    assert torch.allclose(values * 16, (values * 16).round())


def test_digits_test_split_does_not_move_with_the_seed() -> None:
    a, b = DigitsDataModule(seed=0), DigitsDataModule(seed=1)
    a.setup()
    b.setup()
    assert torch.equal(a.splits["test"].data, b.splits["test"].data)
    assert not torch.equal(a.splits["val"].data, b.splits["val"].data)


def test_image_folder(tmp_path: Path) -> None:
    images = tmp_path / "images"
    write_image_folder(images, n=20)
    dm = ImageFolderDataModule(
        path=images, data_dir=tmp_path / "data", image_size=12, val_size=4, test_size=0.2
    )
    dm.setup()
    assert dm.dims == (3, 12, 12)
    assert dm.split_sizes() == {"train": 12, "val": 4, "test": 4}
    # An added image is noticed: a new cache, one more example.
    write_image_folder(images / "more", n=1, seed=9)
    dm = ImageFolderDataModule(path=images, data_dir=tmp_path / "data", image_size=12)
    dm.setup()
    assert sum(dm.split_sizes().values()) == 21
    assert len(list((tmp_path / "data" / "folder").glob("decoded-*"))) == 2


def test_image_folder_needs_a_path(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"data\.path is required: .*e\.g\. data\.path=/my/images"
    ):
        check_arguments("vaelab.data.folder.ImageFolderDataModule", "data", path="???")
    dm = ImageFolderDataModule(path=tmp_path / "nowhere", data_dir=tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        dm.prepare_data()


# ---------------------------------------------------------------------- the loader


def test_ddp_ranks_get_disjoint_equal_shares() -> None:
    source = TensorSource(torch.arange(103, dtype=torch.uint8).view(103, 1, 1, 1), scale=1.0)

    def seen(rank: int, shuffle: bool) -> list[int]:
        loader = BatchLoader(source, 10, shuffle=shuffle, seed=3, rank=rank, world_size=2)
        return [int(v) for batch in loader for v in batch.flatten()]

    train = [seen(r, shuffle=True) for r in (0, 1)]
    assert len(train[0]) == len(train[1]) == 51 and not set(train[0]) & set(train[1])
    evaluation = [seen(r, shuffle=False) for r in (0, 1)]
    assert sorted(evaluation[0] + evaluation[1]) == list(range(103))  # each once


def test_on_device_is_a_no_op_without_an_accelerator(mnist_dir: Path) -> None:
    dm = MNISTDataModule(
        data_dir=mnist_dir, on_device=True, pin_memory=True, val_size=10, batch_size=8
    )
    dm.setup()
    assert dm.splits["train"].data.device.type == "cpu"
    assert next(iter(dm.train_dataloader())).device.type == "cpu"


# ------------------------------------------------------------------------ configs


LIKELIHOOD_OF = {
    "mnist": "bernoulli",
    "fashion_mnist": "bernoulli",
    "cifar10": "discretized_logistic",
    "celeba": "discretized_logistic",
    "folder": "discretized_logistic",
    "digits": "gaussian",
}


@pytest.mark.parametrize("name", sorted(LIKELIHOOD_OF))
def test_data_config_instantiates_with_its_likelihood(hydra_conf, name: str) -> None:
    from helpers import compose_train
    from hydra.utils import instantiate

    overrides = [f"data={name}", "seed=7", "paths.data_dir=/nonexistent/data"]
    overrides += ["data.path=/some/images"] if name == "folder" else []
    user_choice = compose_train(*overrides, "likelihood=gaussian")
    cfg = compose_train(*overrides)
    assert (
        cfg.likelihood._target_.split(".")[-1]
        .lower()
        .startswith(LIKELIHOOD_OF[name].replace("_", ""))
    )
    assert user_choice.likelihood._target_.endswith("GaussianLikelihood")  # the command line wins
    dm = instantiate(cfg.data)  # cheap: reads no data
    assert dm.seed == 7 and len(dm.dims) == 3
    if hasattr(dm, "data_dir"):
        assert dm.data_dir == Path("/nonexistent/data")


def test_a_resumed_epoch_continues_the_same_permutation_at_its_next_batch() -> None:
    source = TensorSource(torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1), scale=1.0)

    def batches(**kwargs) -> list[list[int]]:
        loader = BatchLoader(source, 8, shuffle=True, drop_last=True, seed=5, **kwargs)
        return [[int(v) for v in batch.flatten()] for batch in loader]

    whole = batches(epoch_fn=lambda: 3)
    assert batches(epoch_fn=lambda: 3, resume_at=(3, 2)) == whole[2:]
    assert batches(epoch_fn=lambda: 4, resume_at=(3, 2)) == batches(epoch_fn=lambda: 4)
    loader = BatchLoader(source, 8, shuffle=True, drop_last=True, seed=5, resume_at=(0, 2))
    assert len(list(loader)) == len(whole) - 2 and len(list(loader)) == len(whole)  # once


def test_short_epochs_walk_the_stream_of_permutations_without_repeats() -> None:
    source = TensorSource(torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1), scale=1.0)

    def epoch(e: int, per_epoch: int | None, rank: int = 0, world: int = 1) -> list[int]:
        loader = BatchLoader(
            source,
            4,
            shuffle=True,
            drop_last=True,
            seed=5,
            epoch_fn=lambda: e,
            examples_per_epoch=per_epoch,
            rank=rank,
            world_size=world,
        )
        return [int(v) for batch in loader for v in batch.flatten()]

    # The stream, written out: permutation p drawn from seed + p, one after another.
    stream = torch.cat(
        [torch.randperm(50, generator=torch.Generator().manual_seed(5 + p)) for p in range(3)]
    ).tolist()
    assert epoch(1, None) == stream[50:98]  # the default: one permutation an epoch
    epochs = [epoch(e, 20) for e in range(5)]
    assert all(len(e) == 20 for e in epochs)  # 5 batches of 4
    assert [v for e in epochs for v in e] == stream[:100]  # each epoch the next 20 of the stream
    assert sorted(epochs[0] + epochs[1] + stream[40:50]) == list(range(50))  # no repeats
    # DDP: two ranks share each epoch's stretch, disjoint and equally long.
    # Each rank: every other example of the stretch, 10, of which 2 full batches.
    assert [epoch(3, 20, rank, 2) for rank in (0, 1)] == [stream[60:80][r::2][:8] for r in (0, 1)]
    assert len(BatchLoader(source, 4, shuffle=True, drop_last=True, examples_per_epoch=22)) == 5
    # At most the split: a longer epoch is the whole split, as without the key.
    assert epoch(1, 500) == epoch(1, None)
    # An evaluation loader always serves its whole split.
    assert len(BatchLoader(source, 10, examples_per_epoch=20)) == 5


@pytest.mark.parametrize("damage", ["bytes", "float32", "shape"])
def test_a_damaged_cache_is_rebuilt_from_the_sources_with_one_warning(
    mnist_dir: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    import numpy as np

    from vaelab.data import array_cache as cache_module

    first = MNISTDataModule(data_dir=mnist_dir, binarize="none", val_size=5)
    original = first.load_arrays(mmap=False)["test_images"].copy()
    path = first.cache().path("test_images")
    if damage == "bytes":  # white out the first test images, in place: still a valid .npy
        data = bytearray(path.read_bytes())
        data[-original.size : -original.size + 28 * 28 * 4] = b"\xff" * (28 * 28 * 4)
        path.write_bytes(bytes(data))
    elif damage == "float32":
        np.save(path, original.astype(np.float32))
    else:
        np.save(path, original[:5])
    cache_module._verified.clear()  # a new process: nothing verified yet

    with caplog.at_level("WARNING", logger="vaelab.data.file_datamodule"):
        arrays = MNISTDataModule(data_dir=mnist_dir, binarize="none").load_arrays(mmap=False)

    assert np.array_equal(arrays["test_images"], original)  # rebuilt, not the damage
    (record,) = caplog.records
    message = record.getMessage()
    assert f"cached array {path}" in message and "rebuilding" in message and "\n" not in message


def test_an_intact_cache_is_checksummed_once_per_process(mnist_dir: Path, monkeypatch) -> None:
    from vaelab.data import array_cache as cache_module

    MNISTDataModule(data_dir=mnist_dir, binarize="none").prepare_data()
    cache_module._verified.clear()
    hashed = []
    real = cache_module.file_digest
    monkeypatch.setattr(cache_module, "file_digest", lambda p: hashed.append(p) or real(p))
    for _ in range(3):
        MNISTDataModule(data_dir=mnist_dir, binarize="none").load_arrays(mmap=False)
    assert len(hashed) == len(MNISTDataModule.parts)  # each array once, not per load
