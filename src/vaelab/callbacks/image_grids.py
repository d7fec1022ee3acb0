"""Reconstruction and prior-sample grids written as PNG while a model trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

from vaelab.config.constraints import PositiveInt, Seed
from vaelab.runs.images import interleave_rows, make_grid, save_png


def log_image(trainer: L.Trainer, key: str, grid: torch.Tensor, path: Path) -> None:
    """Send one grid to every logger that shows images (W&B, TensorBoard), at this step."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[str(path)], step=trainer.global_step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, grid.clamp(0, 1), trainer.global_step)


class ImageGrids(L.Callback):
    """Write `recon.png` (originals above reconstructions) and `samples.png` to `dirpath`.

    The same validation images and the same prior draws (fixed seed) are used every
    time, so grids from successive epochs show the model changing, not the inputs.
    Every `every_n_epochs` validation epochs an `epoch_NNN_` copy is kept too.
    A conditional model reconstructs each image with its labels and draws each sample
    with the labels of the image at the same place in `recon.png`'s originals.
    """

    def __init__(
        self,
        dirpath: str,
        n_images: PositiveInt = 32,
        nrow: PositiveInt = 8,
        every_n_epochs: PositiveInt = 1,
        upscale: PositiveInt = 2,
        seed: Seed = 0,
    ) -> None:
        self.dirpath = Path(dirpath)
        self.n_images = n_images
        self.nrow = nrow
        self.every_n_epochs = every_n_epochs
        self.upscale = upscale
        self.seed = seed
        self.written: dict[str, Path] = {}

    def grids(
        self,
        pl_module: L.LightningModule,
        originals: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The two grids as (C, H, W) tensors, from `pl_module` in eval mode; `labels`:
        the originals' labels, for a conditional model."""
        vae: Any = pl_module  # duck-typed: a VAE's reconstruct and sample
        was_training = pl_module.training
        pl_module.eval()
        try:
            originals = originals.to(pl_module.device)
            recon = vae.reconstruct(originals, labels)
            generator = torch.Generator().manual_seed(self.seed)
            # from the model's prior
            samples = vae.sample(len(originals), generator=generator, labels=labels)
        finally:
            pl_module.train(was_training)
        return {
            "recon": make_grid(interleave_rows(originals, recon, self.nrow), self.nrow),
            "samples": make_grid(samples, self.nrow),
        }

    @rank_zero_only
    def write(self, trainer: L.Trainer, pl_module: L.LightningModule, prefix: str = "") -> None:
        # set by Lightning's data connector; Trainer does not declare it
        datamodule: L.LightningDataModule | None = cast(Any, trainer).datamodule
        if datamodule is None or not hasattr(datamodule, "labelled_examples"):
            return
        chosen = cast(Any, pl_module).label_names
        x, labels = datamodule.labelled_examples(self.n_images, chosen)
        for name, grid in self.grids(pl_module, x, labels).items():
            path = save_png(grid, self.dirpath / f"{prefix}{name}.png", upscale=self.upscale)
            self.written[f"{prefix}{name}"] = path
            log_image(trainer, f"images/{name}", grid, path)

    @override
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch
        if self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0:
            self.write(trainer, pl_module, prefix=f"epoch_{epoch:03d}_")

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer, pl_module)
