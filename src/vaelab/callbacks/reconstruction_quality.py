"""PSNR and SSIM of test reconstructions, as exact means over the test set."""

from __future__ import annotations

from typing import Any

import lightning as L
from torchmetrics import MeanMetric, SumMetric
from typing_extensions import override

from vaelab.metrics.reconstruction import psnr, ssim


class ReconstructionQuality(L.Callback):
    """Log `test/psnr` and `test/ssim`: per-image values of the posterior-mean
    reconstruction (`VAE.reconstruct`), averaged over every test example; and
    `test/n_examples`, how many examples the test saw (over all ranks).

    Sum-and-count means (torchmetrics), so under DDP each example counts once whatever
    the sharding. A callback rather than part of the VAE's test step: evaluation asks
    for these, a training run's closing test does not need the extra decoder pass.
    """

    def __init__(self, data_range: float = 1.0) -> None:
        self.data_range = data_range
        self.psnr = MeanMetric()
        self.ssim = MeanMetric()
        self.count = SumMetric()

    @override
    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for name in ("psnr", "ssim", "count"):
            metric = getattr(self, name).to(pl_module.device)
            metric.reset()
            setattr(self, name, metric)

    @override
    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        x = batch[0] if isinstance(batch, tuple | list) else batch
        # (x, index, labels): a conditional model's test batches carry its labels
        labels = batch[2] if isinstance(batch, tuple | list) and len(batch) > 2 else None
        # Clamped to the data's range: the picture a grid shows (a Gaussian likelihood's
        # mean can leave [0, 1]; no image can).
        vae: Any = pl_module  # duck-typed: a VAE's reconstruct
        reconstruction = vae.reconstruct(x, labels).clamp(0.0, self.data_range)
        self.psnr.update(psnr(reconstruction, x, self.data_range))
        self.ssim.update(ssim(reconstruction, x, self.data_range))
        self.count.update(float(x.shape[0]))

    #: What it logs, for checks of a monitored or optimised metric's name.
    metric_keys = frozenset({"test/psnr", "test/ssim", "test/n_examples"})

    @override
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        values = {
            "test/psnr": self.psnr.compute(),
            "test/ssim": self.ssim.compute(),
            "test/n_examples": self.count.compute(),
        }
        pl_module.log_dict(values)
