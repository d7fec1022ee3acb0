"""`trainer.accumulate_grad_batches`: the VAE (which optimises manually, where Lightning
refuses the flag) steps once per n batches on the mean of their gradients."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch
from helpers import make_vae, quiet_trainer
from in_process import call_train

from vaelab.data.shapes import ShapesDataModule
from vaelab.models import VAE

MLP = {
    "encoder": {"_target_": "vaelab.models.backbones.MLPEncoder", "hidden": [32]},
    "decoder": {"_target_": "vaelab.models.backbones.MLPDecoder", "hidden": [32]},
    "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.01},
}


def _trained(batch_size: int, accumulate: int, batches: int) -> VAE:
    torch.manual_seed(0)
    model = make_vae((1, 16, 16), latent_dim=8, data_levels=2, **MLP)
    model.configure_accumulation(accumulate)
    data = ShapesDataModule(resolution=16, n_train=64, n_val=16, n_test=16, batch_size=batch_size)
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=batches, limit_val_batches=0)
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 1  # one optimiser step either way
    return model


def test_two_accumulated_batches_of_16_step_as_one_batch_of_32() -> None:
    """Same examples in the same order, the same noise (CPU `randn` draws 16 values at
    a time, so 2 x 128 and 1 x 256 draws coincide), SGD: the same update, up to the
    order in which the two halves' gradients are summed."""
    accumulated = _trained(batch_size=16, accumulate=2, batches=2)
    whole = _trained(batch_size=32, accumulate=1, batches=1)
    untrained = make_vae((1, 16, 16), latent_dim=8, data_levels=2, **MLP)
    for (name, a), b in zip(
        accumulated.state_dict().items(), whole.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    moved = [
        not torch.equal(a, b)
        for a, b in zip(whole.parameters(), untrained.parameters(), strict=True)
    ]
    assert all(moved)


def test_accumulation_through_the_app_counts_optimiser_steps(tmp_path: Path) -> None:
    result = call_train(
        "debug=smoke",
        "logger=csv",
        "data.resolution=32",
        "model/encoder=mlp",
        "trainer.max_epochs=2",
        "trainer.accumulate_grad_batches=2",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["status"] == "finished"
    assert summary["global_step"] == 4  # 2 epochs x 4 batches / 2
    assert summary["skipped_steps"] == 0
    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r["train/loss"]]
    assert steps == [0, 1, 2, 3]  # each optimiser step logged once
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    (guard,) = [v for k, v in last["callbacks"].items() if k.startswith("NonFiniteGuard")]
    assert guard == {"skipped": 0, "stepped": 4}
