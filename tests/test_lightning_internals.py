"""vaelab.lightning.internals reaches into Lightning: fail here, not silently, when an
upgrade moves what it relies on."""

from __future__ import annotations

import torch
from helpers import make_vae, quiet_trainer


def test_lightning_optimizer_still_counts_steps_through_its_step_callbacks() -> None:
    from lightning.pytorch.core.optimizer import LightningOptimizer
    from lightning.pytorch.loops.optimization.manual import _ManualOptimization

    optimizer = LightningOptimizer(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1))
    assert callable(optimizer._on_before_step) and callable(optimizer._on_after_step)
    assert hasattr(_ManualOptimization, "_on_before_step")
    assert hasattr(_ManualOptimization, "_on_after_step")


def test_step_uncounted_steps_without_advancing_the_global_step(tmp_path) -> None:
    """Two optimisers in manual optimisation: the second, stepped uncounted, moves its
    parameters while the global step counts batches."""
    import lightning as L

    from vaelab.lightning.internals import step_uncounted

    class TwoOptimisers(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
            self.automatic_optimization = False
            self.hook_names: set[str] = set()

        def training_step(self, batch, batch_idx):
            self.hook_names.add(self._current_fx_name)  # what CheapHookName relies on
            first, second = self.optimizers()
            loss = self.a(batch[0]).sum() + self.b(batch[0]).sum()
            first.zero_grad()
            second.zero_grad()
            self.manual_backward(loss)
            first.step()
            step_uncounted(second)

        def configure_optimizers(self):
            return [
                torch.optim.SGD(self.a.parameters(), lr=0.1),
                torch.optim.SGD(self.b.parameters(), lr=0.1),
            ]

    model = TwoOptimisers()
    before = model.b.weight.detach().clone()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(5, 1)))
    trainer = quiet_trainer(
        max_epochs=1,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, data)
    assert trainer.global_step == 5
    assert model.hook_names == {"training_step"}  # Lightning still names the running hook
    assert not torch.equal(model.b.weight, before)


def test_model_checkpoint_still_has_the_methods_save_last_if_stale_calls() -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    callback = ModelCheckpoint(save_last=True)
    for name in (
        "_save_last_checkpoint",
        "_should_skip_saving_checkpoint",
        "_should_save_on_train_epoch_end",
        "_monitor_candidates",
    ):
        assert callable(getattr(callback, name)), name
    assert hasattr(callback, "_last_global_step_saved")


def test_last_checkpoint_holds_the_newest_epoch_when_the_metric_stops_improving(
    tmp_path,
) -> None:
    """mode=max on val/nelbo, which falls as the model trains: the best checkpoint stays
    at epoch 0, and last.ckpt must still follow every epoch (Lightning 2.6 alone leaves
    it at epoch 0)."""
    import json

    from in_process import call_train

    result = call_train(
        "debug=smoke",
        "logger=csv",
        "data.resolution=32",
        "model/encoder=mlp",
        "trainer.max_epochs=3",
        "callbacks.model_checkpoint.mode=max",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    load = lambda name: torch.load(tmp_path / "checkpoints" / name, weights_only=False)  # noqa: E731
    assert load("last.ckpt")["global_step"] == 12 and load("last.ckpt")["epoch"] == 2
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert load("best.ckpt")["global_step"] < 12, summary["best_checkpoint"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "best.ckpt",
        "last.ckpt",
    ]


def test_lightning_still_inspects_training_step_through_its_signature() -> None:
    """`cached_signature` helps only while Lightning asks `inspect` about training_step."""
    import inspect as inspect_module

    from lightning.pytorch.loops import training_epoch_loop
    from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature

    from vaelab.lightning.internals import cached_signature
    from vaelab.models import VAE

    source = inspect_module.getsource(training_epoch_loop)
    assert 'is_param_in_hook_signature(training_step_fx, "batch_idx"' in source
    assert is_param_in_hook_signature(VAE.training_step, "batch_idx")
    assert VAE.training_step.__signature__ == inspect_module.signature(VAE.training_step)

    @cached_signature
    def step(batch, batch_idx):
        return batch

    assert "__signature__" in step.__dict__


def test_the_hook_name_skips_module_bookkeeping_and_nothing_else() -> None:

    model = make_vae(
        (1, 8, 8),
        latent_dim=2,
        encoder={"_target_": "vaelab.models.backbones.MLPEncoder", "hidden": [4]},
        decoder={"_target_": "vaelab.models.backbones.MLPDecoder", "hidden": [4]},
    )
    model._current_fx_name = "training_step"
    assert model.__dict__["_current_fx_name"] == "training_step"
    model.extra = torch.nn.Linear(1, 1)  # other attributes still go through nn.Module
    assert "extra" in model._modules


def test_callback_metrics_published_by_a_step_reach_the_monitors(tmp_path) -> None:
    """The dict behind `trainer.callback_metrics` keeps what a step put there, and
    EarlyStopping reads it: it stops a run whose published value does not improve."""
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping

    from vaelab.lightning.internals import publish_callback_metrics

    seen: list[float] = []

    class Publishes(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Linear(1, 1)

        def training_step(self, batch, batch_idx):
            publish_callback_metrics(self.trainer, {"train/constant": torch.tensor(7.0)})
            return self.w(batch[0]).sum()

        def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
            seen.append(float(self.trainer.callback_metrics["train/constant"]))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(3, 1)))
    stop = EarlyStopping("train/constant", patience=1, check_on_train_epoch_end=True)
    trainer = quiet_trainer(
        max_epochs=10,
        default_root_dir=tmp_path,
        callbacks=[stop],
    )
    trainer.fit(Publishes(), data)
    assert seen and set(seen) == {7.0}
    assert trainer.current_epoch == 2 and stop.stopped_epoch == 1  # patience 1: epoch 0 sets it


def test_lightning_skips_the_per_step_hooks_a_callback_does_not_implement(tmp_path) -> None:
    """`skip_unused_step_hooks` leaves implemented hooks alone and sets the rest to
    None, which Lightning's hook caller passes over: the run trains as before."""
    import lightning as L
    from lightning.pytorch.trainer import call

    from vaelab.lightning.internals import PER_STEP_CALLBACK_HOOKS, skip_unused_step_hooks

    calls: list[str] = []

    class Counts(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            calls.append("end")

    class Linear(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Linear(1, 1)

        def training_step(self, batch, batch_idx):
            return self.w(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    counts = Counts()
    skip_unused_step_hooks([counts])
    assert counts.on_train_batch_end is not None
    unused = [h for h in PER_STEP_CALLBACK_HOOKS if h != "on_train_batch_end"]
    assert all(getattr(counts, h) is None for h in unused)
    for hook in PER_STEP_CALLBACK_HOOKS:
        assert callable(getattr(L.Callback, hook))  # still hooks of Lightning's Callback
    called: list[str] = []
    original = call._call_callback_hooks

    def recording(trainer, hook_name, *args, **kwargs):
        called.append(hook_name)
        return original(trainer, hook_name, *args, **kwargs)

    call._call_callback_hooks = recording
    try:
        data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(3, 1)))
        trainer = quiet_trainer(
            max_epochs=1,
            default_root_dir=tmp_path,
            callbacks=[counts],
        )
        trainer.fit(Linear(), data)
    finally:
        call._call_callback_hooks = original
    assert calls == ["end"] * 3
    # The None hooks went through Lightning's caller, which passed over them.
    assert called.count("on_before_backward") == 3 and called.count("on_train_batch_start") == 3
