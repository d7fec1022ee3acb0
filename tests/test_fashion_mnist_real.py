"""The real Fashion-MNIST, as Debian's dataset-fashion-mnist installs it, through the DataModule.

Skipped only where that package is not installed
(``apt-get install dataset-fashion-mnist``).
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
import torch

from vaelab.data.download import file_hash, locate
from vaelab.data.mnist import FASHION_MNIST_FILES, FashionMNISTDataModule

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

# DATA.md: sha256 of the decompressed bytes, the same whichever gzip made the file,
# and the md5s of the .gz files as published and as Debian ships them.
DECOMPRESSED_SHA256 = {  # file: sha256 of the decompressed bytes (a table of hashes)
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
KNOWN_MD5 = {
    "train-images-idx3-ubyte.gz": {
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "cf8536b0aa1a6ac5fa3f23001093305c",
    },
    "train-labels-idx1-ubyte.gz": {
        "25c81989df183df01b3e8a0aad5dffbe",
        "10bea18fdb374794d4bb42e356e600c9",
    },
    "t10k-images-idx3-ubyte.gz": {
        "bef4ecab320f06d8554ea6380940ec79",
        "f78720b4224f21cce2f2ccf2d7a94c9a",
    },
    "t10k-labels-idx1-ubyte.gz": {
        "bb300cfdad3c16e7a12a480ee83cd310",
        "0d30e22e447f3c33dab9ed536400ac01",
    },
}

pytestmark = pytest.mark.skipif(
    not SYSTEM_DIR.is_dir(),
    reason=f"{SYSTEM_DIR} is absent: apt-get install dataset-fashion-mnist to run this test",
)


def test_the_files_found_are_the_real_fashion_mnist() -> None:
    for spec in FASHION_MNIST_FILES.values():
        path, rejected = locate(spec, [SYSTEM_DIR])
        assert path == SYSTEM_DIR / spec.name, rejected
        assert file_hash(path, "md5") in KNOWN_MD5[spec.name]
        inside = hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
        assert inside == DECOMPRESSED_SHA256[spec.name]


def test_real_fashion_mnist_through_the_datamodule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAELAB_OFFLINE", "1")  # must come from the system copy, not the net
    dm = FashionMNISTDataModule(data_dir=tmp_path, binarize="none", val_size=5000)
    dm.prepare_data()
    dm.setup()
    assert dm.dims == (1, 28, 28)
    assert dm.split_sizes() == {"train": 55_000, "val": 5_000, "test": 10_000}
    # Balanced classes: 6,000 of each in train+val, 1,000 in test.
    train_labels = torch.cat([dm.targets["train"], dm.targets["val"]])
    assert torch.bincount(train_labels).tolist() == [6000] * 10
    assert torch.bincount(dm.targets["test"]).tolist() == [1000] * 10
    # The published mean pixel intensity of the training set is 0.2860.
    train = dm.splits["train"].data.float().mean() / 255
    val = dm.splits["val"].data.float().mean() / 255
    assert abs((train * 55_000 + val * 5_000) / 60_000 - 0.2860) < 5e-4
    # Nothing was copied or downloaded into the data root: only the decoded cache.
    assert all(p.name.startswith("decoded-") for p in (tmp_path / "fashion_mnist").iterdir())
    assert not list(tmp_path.rglob("*.gz"))


# Measured 2026-11-25 on the project's 2-core machine: one epoch of the MLP preset
# (latent 16, dynamic binarisation) gives test nelbo 262.0 nats; an untrained model
# scores about 543 (784 ln 2). The bound leaves room for seeds and library versions.
ONE_EPOCH_TEST_NELBO_BOUND = 275.0


def test_one_epoch_on_the_real_fashion_mnist(tmp_path: Path) -> None:
    from in_process import call_train

    run_dir = tmp_path / "run"
    result = call_train(
        "data=fashion_mnist",
        "model=mlp",
        "latent_dim=16",
        "trainer.max_epochs=1",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        "callbacks.progress_bar=null",
        f"paths.data_dir={tmp_path / 'data'}",
        f"hydra.run.dir={run_dir}",
        env={"VAELAB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["global_step"] == 55_000 // 128  # the real 55,000 training images
    assert summary["metrics"]["test/nelbo"] < ONE_EPOCH_TEST_NELBO_BOUND
    assert summary["data"]["class"] == "FashionMNISTDataModule"
    assert summary["data"]["binarize"] == "dynamic"  # recorded with the numbers
    test_the_files_found_are_the_real_fashion_mnist()  # the checksums of what it read
