"""The per-step cost cuts keep Lightning's behaviour: step values reach the loggers as
`self.log` would have sent them, the progress bar shows the loss, the checkpoint
callback keeps Lightning's state key, the trainer's profiler is still choosable, and
the presets' Adam is the fused one."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from helpers import make_vae, quiet_trainer
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.profilers import SimpleProfiler
from tqdm import tqdm

from vaelab.callbacks import ModelCheckpoint, ProgressBar
from vaelab.data.shapes import ShapesDataModule
from vaelab.lightning.profiler import NullProfiler
from vaelab.models import VAE

MLP = {
    "encoder": {"_target_": "vaelab.models.backbones.MLPEncoder", "hidden": [16]},
    "decoder": {"_target_": "vaelab.models.backbones.MLPDecoder", "hidden": [16]},
}


class SelfLogVAE(VAE):
    """The VAE with its step values sent the plain Lightning way, through `self.log`."""

    def _log_train_step(self, step: int, values: dict[str, torch.Tensor]) -> None:
        self.log_dict(values, on_step=True, on_epoch=False)


def csv_rows(
    model_cls: type[VAE], tmp_path: Path, callback_metrics: dict | None = None
) -> list[dict[str, str]]:
    """The logged train rows of a short run; its final `train/*` callback metrics go
    into `callback_metrics`."""
    torch.manual_seed(0)
    data = ShapesDataModule(resolution=16, n_train=96, n_val=16, n_test=16, batch_size=16)
    model = make_vae((1, 16, 16), cls=model_cls, latent_dim=2, data_levels=2, **MLP)
    logger = CSVLogger(tmp_path, name="csv", version="")
    trainer = quiet_trainer(
        max_epochs=2, logger=logger, log_every_n_steps=4, limit_val_batches=0, deterministic=True
    )
    trainer.fit(model, datamodule=data)
    if callback_metrics is not None:
        step_keys = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
        callback_metrics.update({k: float(v) for k, v in step_keys.items()})
    with open(tmp_path / "csv" / "metrics.csv") as f:
        return [row for row in csv.DictReader(f) if row.get("train/loss")]


def test_step_values_reach_the_loggers_as_self_log_would_send_them(tmp_path: Path) -> None:
    direct_metrics, self_log_metrics = {}, {}
    direct = csv_rows(VAE, tmp_path / "direct", direct_metrics)
    via_self_log = csv_rows(SelfLogVAE, tmp_path / "self_log", self_log_metrics)
    # The last step (11) is a logged one: the monitors see the same train/ values.
    assert {k for k in direct_metrics if not k.endswith("_epoch")} == {
        "train/loss",
        "train/recon",
        "train/kl",
        "train/nelbo",
        "train/beta",
    }
    assert direct_metrics == self_log_metrics
    # 6 steps per epoch, every 4th step logged: global steps 3, 7, 11 (epochs 0, 1, 1).
    assert [(r["epoch"], r["step"]) for r in direct] == [("0", "3"), ("1", "7"), ("1", "11")]
    keys = ["epoch", "step", "train/loss", "train/recon", "train/kl", "train/nelbo", "train/beta"]
    assert [{k: r[k] for k in keys} for r in direct] == [
        {k: r[k] for k in keys} for r in via_self_log
    ]
    for row in direct:
        total = float(row["train/recon"]) + float(row["train/kl"])
        assert float(row["train/nelbo"]) == pytest.approx(total, rel=1e-6)
        assert row["train/loss"] == row["train/nelbo"]  # β = 1: the same float32 number
        assert float(row["train/loss"]) > 0


def test_monitors_read_the_step_values_of_every_step(tmp_path: Path) -> None:
    """`train/loss` is in `trainer.callback_metrics` after every optimiser step, logged
    or not: a checkpoint every 2 steps monitoring it keeps the lowest of those steps."""
    from lightning.pytorch.callbacks import Callback

    seen: dict[int, float] = {}

    class Record(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            seen[trainer.global_step] = float(trainer.callback_metrics["train/loss"])
            assert float(outputs["loss"]) == seen[trainer.global_step]  # this step's own loss

    torch.manual_seed(0)
    data = ShapesDataModule(resolution=16, n_train=96, n_val=16, n_test=16, batch_size=16)
    model = make_vae((1, 16, 16), latent_dim=2, data_levels=2, **MLP)
    best = ModelCheckpoint(
        dirpath=tmp_path, monitor="train/loss", every_n_train_steps=2, save_top_k=1
    )
    trainer = quiet_trainer(
        max_epochs=1,
        log_every_n_steps=50,  # no step is logged: the monitor reads callback_metrics
        limit_val_batches=0,
        enable_checkpointing=True,
        callbacks=[Record(), best],
    )
    trainer.fit(model, datamodule=data)
    assert sorted(seen) == [1, 2, 3, 4, 5, 6]
    assert float(best.best_model_score) == min(seen[s] for s in (2, 4, 6))


def test_progress_bar_shows_the_loss_and_redraws_once_per_refresh() -> None:
    bar = ProgressBar(refresh_rate=3)
    redraws = []
    shown = tqdm(total=7, file=io.StringIO())
    shown.refresh = lambda *a, **k: redraws.append((shown.n, shown.postfix))  # type: ignore[method-assign]
    bar._train_progress_bar = shown
    trainer = SimpleNamespace(loggers=[], progress_bar_metrics={})
    module = SimpleNamespace(last_train_step={"train/loss": 12.5})
    for batch_idx in range(7):
        bar.on_train_batch_end(trainer, module, None, None, batch_idx)  # type: ignore[arg-type]
    # Every 3rd step and the last, one redraw each, with the values already in place.
    assert redraws == [(3, "loss=12.5"), (6, "loss=12.5"), (7, "loss=12.5")]


def test_checkpoint_callback_keeps_lightnings_state_key() -> None:
    settings = {"monitor": "val/nelbo", "mode": "min", "every_n_epochs": 2}
    ours, theirs = ModelCheckpoint(**settings), LightningModelCheckpoint(**settings)
    assert ours.state_key == theirs.state_key  # checkpoints move between the two
    assert ours.state_key.startswith("ModelCheckpoint{") and "val/nelbo" in ours.state_key
    assert ours.state_key is ours.state_key  # computed once, not per hook call


def test_trainer_gets_null_profiler_unless_one_is_chosen(hydra_conf) -> None:
    from helpers import compose_train

    from vaelab.lightning.trainer import build_trainer

    with NullProfiler().profile("step") as entered:  # a working no-op context
        assert entered is None
    default = build_trainer(compose_train("debug=smoke").trainer, [], [])
    assert type(default.profiler) is NullProfiler
    chosen = build_trainer(compose_train("debug=smoke", "trainer.profiler=simple").trainer, [], [])
    assert isinstance(chosen.profiler, SimpleProfiler)


@pytest.mark.parametrize("preset", ["mlp", "conv", "resnet"])
def test_presets_use_fused_adam(hydra_conf, preset: str) -> None:
    from helpers import compose_train

    from vaelab.config.build import build_model

    # No schedule: one needs a trainer to size it (tests/test_lr_schedule.py).
    cfg = compose_train("debug=smoke", f"model={preset}", "~model/scheduler")
    model = build_model(cfg, ShapesDataModule(resolution=32))
    (optimizer,) = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["fused"] is True
    # One step updates every parameter, as the per-tensor implementation would.
    before = [p.detach().clone() for p in model.parameters()]
    batch = ShapesDataModule(resolution=32).example_batch(4)
    model.compute_objective(batch)[0].loss.backward()
    optimizer.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_checkpoint_of_an_unfused_optimizer_resumes_under_the_fused_default(
    tmp_path: Path,
) -> None:
    # Runs started before the presets set `fused: true` hold Adam states of the
    # per-tensor implementation; they continue, with the optimiser settings they saved.
    data = ShapesDataModule(resolution=16, n_train=64, n_val=16, n_test=16, batch_size=16)
    plain = {"_target_": "torch.optim.Adam", "lr": 1e-3, "fused": False}

    def trainer(epochs: int) -> L.Trainer:
        return quiet_trainer(max_epochs=epochs, limit_val_batches=0, default_root_dir=tmp_path)

    first = trainer(1)
    first.fit(make_vae((1, 16, 16), latent_dim=2, data_levels=2, optimizer=plain, **MLP), data)
    first.save_checkpoint(tmp_path / "old.ckpt")
    resumed_model = make_vae((1, 16, 16), latent_dim=2, data_levels=2, **MLP)  # fused default
    resumed = trainer(2)
    resumed.fit(resumed_model, data, ckpt_path=tmp_path / "old.ckpt")
    assert resumed.global_step == 8  # 4 steps an epoch, the first epoch's 4 restored
    (optimizer,) = resumed.optimizers
    assert optimizer.param_groups[0]["fused"] is False
    assert all(optimizer.state[p]["step"] == 8 for p in resumed_model.parameters())


def test_optimiser_without_a_fused_implementation_takes_the_preset_as_is(hydra_conf) -> None:
    from helpers import compose_train

    from vaelab.config.build import build_model

    cfg = compose_train(
        "debug=smoke", "model.optimizer._target_=torch.optim.RMSprop", "~model/scheduler"
    )
    assert cfg.model.optimizer.fused is True  # the preset's key is still there
    model = build_model(cfg, ShapesDataModule(resolution=32))
    (optimizer,) = model.configure_optimizers()
    assert type(optimizer) is torch.optim.RMSprop
    assert optimizer.defaults["lr"] == cfg.model.optimizer.lr  # the preset's rate, kept
