"""Files a run reads back are never half-written (vaelab.runs.atomic): a full disk is one line
that keeps what was there, killed writers' temporary files are cleared, and JSON holds
no bare NaN."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO, make_vae, run_app

from vaelab.data.array_cache import ArrayCache
from vaelab.runs.atomic import DiskFullError, atomic_path, remove_orphans, temp_path
from vaelab.runs.checkpoints import AtomicCheckpointIO
from vaelab.runs.files import write_json


def test_a_checkpoint_too_big_for_the_disk_is_one_line_and_keeps_the_last(
    small_disk: Path,
) -> None:
    io = AtomicCheckpointIO()
    path = small_disk / "checkpoints" / "last.ckpt"
    small = {"state_dict": {"w": torch.ones(1000)}, "hyper_parameters": {}}
    io.save_checkpoint(small, path)
    big = {"state_dict": {"w": torch.ones(500_000)}, "hyper_parameters": {}}  # 2 MB of floats

    with pytest.raises(DiskFullError) as caught:
        io.save_checkpoint(big, path)

    message = str(caught.value)
    assert "\n" not in message
    assert f"could not write checkpoint {path}: " in message
    assert "needs at least 2.0 MB" in message and "are intact" in message
    kept = torch.load(path, weights_only=True)
    assert torch.equal(kept["state_dict"]["w"], torch.ones(1000))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no partial file


DECODE_ON_FULL_DISK = """
import sys, numpy as np
from vaelab.runs.atomic import DiskFullError
from vaelab.data.array_cache import ArrayCache
cache = ArrayCache(sys.argv[1])
try:
    with cache.writer("train_images", (4, 1000, 1000), np.uint8) as out:
        out[...] = 7          # touches every page: without reserving, SIGBUS here
except DiskFullError as exc:
    print(exc)
    sys.exit(3)
"""


def test_decoding_into_a_full_disk_is_one_line_not_a_bus_error(small_disk: Path) -> None:
    folder = small_disk / "decoded"
    result = subprocess.run(
        [sys.executable, "-c", DECODE_ON_FULL_DISK, str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert result.returncode == 3, (result.returncode, result.stderr)  # not -7 (SIGBUS)
    assert "could not write data cache" in result.stdout
    assert "needs at least 4.0 MB" in result.stdout
    assert list(folder.iterdir()) == []  # no sparse temporary file left filling the disk


def test_a_cache_written_in_full_loads_back(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path / "c", {"source": "test"})
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    cache.save("images", array)
    assert np.array_equal(cache.load("images"), array)
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names == ["images.npy", "manifest.json", "params.json"]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_next_write_removes_the_temporary_files_of_killed_writers(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    mine = temp_path(target)
    host = mine.name.split(".")[-3]
    orphan = tmp_path / f".last.ckpt.{host}.{_dead_pid()}.tmp"
    live = tmp_path / f".best.ckpt.{host}.{os.getppid()}.tmp"  # a writer still running
    other_host = tmp_path / f".last.ckpt.othernode.{_dead_pid()}.tmp"  # not ours to judge
    for path in (orphan, live, other_host):
        path.write_bytes(b"x" * 100)

    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")

    assert target.read_bytes() == b"new"
    assert not orphan.exists()
    assert live.exists() and other_host.exists()
    assert remove_orphans(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_json_summaries_hold_null_for_non_finite_numbers(tmp_path: Path) -> None:
    path = tmp_path / "eval.json"
    write_json(path, {"metrics": {"nelbo": float("nan"), "kl": float("inf"), "recon": 1.5}})

    def refuse(token: str) -> None:
        raise AssertionError(f"bare {token} in the file")

    loaded = json.loads(path.read_text(), parse_constant=refuse)
    assert loaded == {"metrics": {"nelbo": None, "kl": None, "recon": 1.5}}


def test_a_run_whose_folder_fills_up_stops_with_one_line(small_disk: Path) -> None:
    run = small_disk / "run"
    result = run_app("train", "debug=smoke", "logger=csv", f"hydra.run.dir={run}", timeout=120)

    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("vaelab: error:")]
    assert f"could not write checkpoint {run}/checkpoints/" in line and "free)" in line
    assert list((run / "checkpoints").iterdir()) == []  # no partial checkpoint
    assert json.loads((run / "metrics.json").read_text())["status"] == "failed"


def test_a_checkpoint_with_damaged_tensor_bytes_is_refused_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from data_fixtures import damage_tensor_bytes

    from vaelab.errors import CheckpointError
    from vaelab.runs.checkpoints import read_checkpoint

    path = tmp_path / "best.ckpt"
    weights = torch.arange(4096, dtype=torch.float32)
    hparams = {"data_shape": [1, 8, 8], "latent_dim": 2}
    AtomicCheckpointIO().save_checkpoint(
        {"state_dict": {"w": weights}, "hyper_parameters": hparams}, path
    )
    assert torch.equal(read_checkpoint(path)["state_dict"]["w"], weights)  # intact: loads

    damage_tensor_bytes(path)
    damaged = torch.load(path, weights_only=False)["state_dict"]["w"]
    assert not torch.equal(damaged, weights)  # still loads, with other numbers

    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    assert str(caught.value).startswith(f"checkpoint {path} is damaged: its tensors do not match")
    monkeypatch.setenv("VAELAB_VERIFY_CHECKPOINTS", "0")  # the opt-out the message names
    assert torch.equal(read_checkpoint(path)["state_dict"]["w"], damaged)


def test_the_model_refuses_a_damaged_checkpoint_in_load_from_checkpoint(tmp_path: Path) -> None:
    from data_fixtures import damage_tensor_bytes

    from vaelab.errors import CheckpointError
    from vaelab.models import VAE

    mlp = {
        "encoder": {"_target_": "vaelab.models.backbones.MLPEncoder", "hidden": [32]},
        "decoder": {"_target_": "vaelab.models.backbones.MLPDecoder", "hidden": [32]},
    }
    model = make_vae((1, 8, 8), latent_dim=2, data_levels=2, **mlp)
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    checkpoint["pytorch-lightning_version"] = "2.6.0"
    path = tmp_path / "model.ckpt"
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)
    assert VAE.load_from_checkpoint(path) is not None

    damage_tensor_bytes(path)
    with pytest.raises(CheckpointError, match="is damaged"):
        VAE.load_from_checkpoint(path)
