"""Faults that lose nothing: a NaN loss never reaches a checkpoint, a full disk never
truncates one."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import check_arguments, make_vae, quiet_trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf

from vaelab.callbacks import NonFiniteGuard, NonFiniteLossError
from vaelab.data.shapes import ShapesDataModule
from vaelab.errors import ConfigError
from vaelab.lightning.trainer import build_trainer
from vaelab.runs.atomic import DiskFullError
from vaelab.runs.checkpoints import AtomicCheckpointIO, read_checkpoint

MLP = {
    "encoder": {"_target_": "vaelab.models.backbones.MLPEncoder", "hidden": [32]},
    "decoder": {"_target_": "vaelab.models.backbones.MLPDecoder", "hidden": [32]},
}


class PoisonAt(L.Callback):
    """Make the loss NaN from step `step` on by poisoning one weight."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                pl_module.posterior_head.weight[0, 0] = float("nan")


def fit(tmp_path: Path, guard: NonFiniteGuard, poison_step: int, epochs: int = 3):
    torch.manual_seed(0)
    data = ShapesDataModule(resolution=16, n_train=64, n_val=32, n_test=32, batch_size=16)
    model = make_vae((1, 16, 16), latent_dim=2, data_levels=2, **MLP)
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path / "checkpoints", save_last=True, monitor="val/nelbo"
    )
    trainer = quiet_trainer(
        max_epochs=epochs,
        callbacks=[checkpoint, guard, PoisonAt(poison_step)],
        enable_checkpointing=True,
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(model, datamodule=data)
    return trainer, model, checkpoint


def all_finite(state_dict: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state_dict.values() if v.is_floating_point())


def test_nan_loss_stops_naming_the_step_and_last_good_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError) as caught:
        fit(tmp_path, NonFiniteGuard(action="stop"), poison_step=6)  # epoch 1 (4 steps/epoch)
    message = str(caught.value)
    assert "nan at step 6 (epoch 1)" in message
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert f"last good checkpoint: {last}" in message
    saved = read_checkpoint(last)
    assert saved["global_step"] == 4 and all_finite(saved["state_dict"])


def test_nan_loss_can_skip_the_batch(tmp_path: Path) -> None:
    class PoisonOnce(PoisonAt):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            weight = pl_module.posterior_head.weight
            if not torch.isfinite(weight[0, 0]):  # the batch's update was skipped: clean up
                with torch.no_grad():
                    weight[0, 0] = 0.0

    guard = NonFiniteGuard(action="skip")
    torch.manual_seed(0)
    data = ShapesDataModule(resolution=16, n_train=64, n_val=32, n_test=32, batch_size=16)
    model = make_vae((1, 16, 16), latent_dim=2, data_levels=2, **MLP)
    trainer = quiet_trainer(max_epochs=2, callbacks=[guard, PoisonOnce(5)])
    trainer.fit(model, datamodule=data)
    assert guard.skipped == 1
    assert all_finite(model.state_dict()) and trainer.global_step == 8


def test_full_disk_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "hyper_parameters": {}}, path)
    before = path.read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(
        DiskFullError,
        match=r"No space left on device \(needs at least 12 B, .* free\); "
        r"the checkpoints already in .* are intact",
    ):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temp file left


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_gradient_clipping_bounds_the_update(algorithm: str) -> None:
    # SGD with lr=1: the update is minus the clipped gradient, so its size is the clip.
    torch.manual_seed(0)
    data = ShapesDataModule(resolution=16, n_train=16, n_val=16, n_test=16, batch_size=16)
    sgd = {"_target_": "torch.optim.SGD", "lr": 1.0}
    model = make_vae((1, 16, 16), latent_dim=2, data_levels=2, optimizer=sgd, **MLP)
    before = [p.detach().clone() for p in model.parameters()]
    # The trainer flags as a config gives them (the VAE optimises manually, where
    # Lightning itself refuses them): the training app's own Trainer builder.
    trainer_cfg = OmegaConf.create(
        {
            "_target_": "lightning.pytorch.Trainer",
            "accelerator": "cpu",
            "max_steps": 1,
            "limit_val_batches": 0,
            "enable_progress_bar": False,
            "enable_checkpointing": False,
            "enable_model_summary": False,
            "gradient_clip_val": 1e-3,
            "gradient_clip_algorithm": algorithm,
        }
    )
    trainer = build_trainer(trainer_cfg, [], [])
    trainer.fit(model, datamodule=data)
    after = list(model.parameters())
    update = torch.cat([(p.detach() - b).flatten() for p, b in zip(after, before, strict=True)])
    if algorithm == "norm":
        torch.testing.assert_close(update.norm(), torch.tensor(1e-3), rtol=1e-3, atol=0)
    else:
        assert update.abs().max().item() == pytest.approx(1e-3, rel=1e-5)


def test_gradient_clipping_rejects_a_bad_value() -> None:
    with pytest.raises(ConfigError, match=r"trainer\.gradient_clip_val=-1\.0 must be a number > 0"):
        check_arguments("lightning.pytorch.Trainer", "trainer", gradient_clip_val=-1.0)
    with pytest.raises(ConfigError, match="must be one of norm, value or null"):
        check_arguments("lightning.pytorch.Trainer", "trainer", gradient_clip_algorithm="max")


def test_metrics_json_says_running_while_the_run_is_in_progress(tmp_path: Path) -> None:
    from vaelab.callbacks import RunSummary

    seen = {}

    class ReadSummary(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            seen.update(json.loads((tmp_path / "metrics.json").read_text()))

    torch.manual_seed(0)
    data = ShapesDataModule(resolution=16, n_train=32, n_val=16, n_test=16, batch_size=16)
    model = make_vae((1, 16, 16), latent_dim=2, data_levels=2, **MLP)
    summary = RunSummary(str(tmp_path / "metrics.json"), params={"beta": 1.0})
    trainer = quiet_trainer(max_epochs=1, callbacks=[summary, ReadSummary()])
    trainer.fit(model, datamodule=data)
    assert seen["status"] == "running" and seen["params"] == {"beta": 1.0}
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "fitted"


def test_a_run_whose_every_step_is_skipped_fails(tmp_path: Path) -> None:
    """PoisonAt(0) makes every loss NaN: with action=skip nothing trains, so the run fails
    instead of "finishing" with the initial weights."""

    class PoisonEveryStep(PoisonAt):  # a NaN loss each step; the weight cleaned after it
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            with torch.no_grad():
                pl_module.posterior_head.weight[0, 0] = float("nan")

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            with torch.no_grad():
                pl_module.posterior_head.weight[0, 0] = 0.0

    torch.manual_seed(0)
    data = ShapesDataModule(resolution=16, n_train=64, n_val=32, n_test=32, batch_size=16)
    model = make_vae((1, 16, 16), latent_dim=2, data_levels=2, **MLP)
    guard = NonFiniteGuard(action="skip", max_skips=100)
    trainer = quiet_trainer(max_epochs=2, callbacks=[guard, PoisonEveryStep(0)])
    with pytest.raises(NonFiniteLossError, match=r"every one of the 8 training steps had"):
        trainer.fit(model, datamodule=data)
    assert guard.skipped == 8 and guard.stepped == 0


def test_a_diverging_run_with_skip_stops_before_a_checkpoint_holds_it(tmp_path: Path) -> None:
    """lr=1e6 keeps the loss finite for a few steps, then the model diverges: the run ends
    "failed" with one line, counts its skipped steps, and writes no checkpoint of the
    diverged weights."""
    from helpers import run_train

    run = tmp_path / "run"
    result = run_train(
        "debug=smoke",
        "logger=csv",
        "model.optimizer.lr=1e6",
        "callbacks.nonfinite_guard.action=skip",
        f"hydra.run.dir={run}",
        timeout=120,
    )

    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("vaelab: error:")]
    assert "the model diverged" in line and "last good checkpoint: none written yet" in line
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "failed" and summary["skipped_steps"] >= 1
    assert not (run / "checkpoints").exists() or not any((run / "checkpoints").iterdir())
