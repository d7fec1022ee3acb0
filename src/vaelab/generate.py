"""`generate(cfg)`: the function `src/generate.py` calls. Pictures of what a trained
model does, written to `generated/` beside the checkpoint (see conf/generate.yaml):

- samples.png: `n_samples` decoded draws z ~ N(0, temperature² I);
- reconstructions.png: test images, each grid row followed by its reconstructions;
- interpolation_linear.png, interpolation_spherical.png: one pair of test images per
  row, the first image, `steps` decoded points between their posterior means (ends
  included), the second image;
- traversals.png: one row per active latent dimension (largest KL first), z_d swept
  over [-range, range] with the other dimensions at a test image's posterior mean;
  traversals.gif: the same sweep as an animation, one frame per value;
- generated.json: what each file shows (dimensions, KL, settings).

Every image is the likelihood's mean, decoded on `device`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from vaelab.config_checks import check_config

log = logging.getLogger(__name__)


def lerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    """Linear interpolation: (P, D) endpoints, (T,) fractions -> (P, T, D)."""
    t = t.to(z0).view(1, -1, 1)
    return (1 - t) * z0.unsqueeze(1) + t * z1.unsqueeze(1)


def slerp(z0: Tensor, z1: Tensor, t: Tensor, eps: float = 1e-6) -> Tensor:
    """Spherical interpolation as White (2016, "Sampling Generative Networks") uses it:
    (P, D) endpoints, (T,) fractions -> (P, T, D).

    sin((1-t)ω)/sin ω · z0 + sin(tω)/sin ω · z1, ω the angle between z0 and z1: the path
    bends around the origin instead of cutting through the low-norm centre, where a
    high-dimensional Gaussian prior has almost no mass. (Nearly) parallel pairs, where
    sin ω vanishes, fall back to `lerp`.
    """
    u0 = z0 / z0.norm(dim=-1, keepdim=True).clamp_min(eps)
    u1 = z1 / z1.norm(dim=-1, keepdim=True).clamp_min(eps)
    omega = torch.arccos((u0 * u1).sum(-1).clamp(-1.0, 1.0)).view(-1, 1, 1)  # (P, 1, 1)
    so = torch.sin(omega)
    tt = t.to(z0).view(1, -1, 1)
    safe = torch.where(so.abs() < eps, torch.ones_like(so), so)
    spherical = torch.sin((1 - tt) * omega) / safe * z0.unsqueeze(1) + torch.sin(
        tt * omega
    ) / safe * z1.unsqueeze(1)
    return torch.where(so.abs() < eps, lerp(z0, z1, t), spherical)


def traversal_latents(base: Tensor, dims: list[int], values: Tensor) -> Tensor:
    """`base` (D,) with dimension d set to each of `values` (T,), for each d in `dims`:
    (len(dims), T, D)."""
    z = base.view(1, 1, -1).repeat(len(dims), len(values), 1)
    for row, d in enumerate(dims):
        z[row, :, d] = values.to(z)
    return z


@torch.no_grad()
def latent_statistics(model: Any, x: Tensor, batch_size: int = 500) -> dict[str, Tensor]:
    """KL per dimension (mean over `x`) and the variance over `x` of the posterior mean."""
    from vaelab.metrics.latents import kl_per_dimension, posterior_mean_variance

    kl, means = [], []
    for i in range(0, len(x), batch_size):
        posterior = model.encode(x[i : i + batch_size].to(model.device))
        kl.append(kl_per_dimension(posterior).cpu())
        means.append(posterior.mean.cpu())
    return {
        "kl_per_dim": torch.cat(kl).mean(0),
        "mean_variance": posterior_mean_variance(torch.cat(means)),
    }


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def generate(cfg: DictConfig) -> dict[str, Path]:
    """Write the grids and the GIF for `cfg.ckpt_path`; return {name: path}."""
    check_config(cfg, "generate")
    from vaelab import tracking
    from vaelab.callbacks.run_summary import write_json
    from vaelab.images import interleave_rows, make_grid, save_gif, save_png
    from vaelab.metrics.latents import active_dimensions, dimensions_by_kl
    from vaelab.runs import load_trained_run

    run = load_trained_run(cfg)
    device = pick_device(str(cfg.device))
    model = run.model.to(device).eval()
    data = run.datamodule
    out = Path(cfg.output) if cfg.get("output") else run.checkpoint_path.parent / "generated"
    up, nrow = int(cfg.upscale), int(cfg.nrow)
    written: dict[str, Path] = {}

    def decode(z: Tensor) -> Tensor:
        with torch.no_grad():
            return model.decode(z.reshape(-1, model.latent_dim).to(device)).mean.cpu()

    def encode_mean(x: Tensor) -> Tensor:
        with torch.no_grad():
            return model.encode(x.to(device)).mean.cpu()

    # Prior samples, from their own generator: the same picture for the same seed.
    generator = torch.Generator().manual_seed(int(cfg.sample_seed))
    z = torch.randn(int(cfg.n_samples), model.latent_dim, generator=generator) * cfg.temperature
    written["samples"] = save_png(make_grid(decode(z), nrow), out / "samples.png", up)

    x = data.example_batch(int(cfg.n_reconstructions), split="test")
    grid = make_grid(interleave_rows(x, decode(encode_mean(x)), nrow), nrow)
    written["reconstructions"] = save_png(grid, out / "reconstructions.png", up)

    pairs, steps = int(cfg.interpolation.pairs), int(cfg.interpolation.steps)
    ends = data.example_batch(2 * pairs, split="test")
    pairs = len(ends) // 2  # a test split smaller than asked for
    xa, xb = ends[0 : 2 * pairs : 2], ends[1 : 2 * pairs : 2]
    za, zb = encode_mean(xa), encode_mean(xb)
    t = torch.linspace(0, 1, steps)
    for name, path_fn in (("linear", lerp), ("spherical", slerp)):
        decoded = decode(path_fn(za, zb, t)).view(pairs, steps, *x.shape[1:])
        rows = torch.cat([xa.unsqueeze(1), decoded, xb.unsqueeze(1)], dim=1)
        grid = make_grid(rows.flatten(0, 1), steps + 2)
        written[f"interpolation_{name}"] = save_png(grid, out / f"interpolation_{name}.png", up)

    tr = cfg.traversal
    stats = latent_statistics(model, data.example_batch(int(tr.n_stats), split="test"))
    active = active_dimensions(stats["mean_variance"])
    dims = dimensions_by_kl(stats["kl_per_dim"], active)
    if not dims:
        # A fully collapsed posterior: show every dimension rather than nothing.
        log.warning("no active latent dimension; traversing all %d by KL", model.latent_dim)
        dims = dimensions_by_kl(stats["kl_per_dim"])
    base = encode_mean(data.example_batch(int(tr.example) + 1, split="test")[-1:])[0]
    values = torch.linspace(-float(tr.range), float(tr.range), int(tr.steps))
    frames = decode(traversal_latents(base, dims, values)).view(
        len(dims), len(values), *x.shape[1:]
    )
    grid = make_grid(frames.flatten(0, 1), len(values))
    written["traversals"] = save_png(grid, out / "traversals.png", up)
    # GIF: frame j shows every traversed dimension at values[j], left to right in KL
    # order; forward then back, so the loop has no jump.
    order = [*range(len(values)), *range(len(values) - 2, 0, -1)]
    gif_frames = [make_grid(frames[:, j], len(dims)) for j in order]
    written["traversals_gif"] = save_gif(
        gif_frames, out / "traversals.gif", duration_ms=int(tr.frame_ms), upscale=up
    )

    info = {
        "checkpoint": str(run.checkpoint_path.resolve()),
        "files": {name: path.name for name, path in written.items()},
        "traversal": {
            "dims": dims,
            "active": [bool(a) for a in active],
            "kl_per_dim": [float(v) for v in stats["kl_per_dim"]],
            "posterior_mean_variance": [float(v) for v in stats["mean_variance"]],
            "values": [float(v) for v in values],
            "gif_frames": len(order),
        },
        "settings": {
            k: OmegaConf.to_container(v, resolve=True) if isinstance(v, DictConfig) else v
            for k, v in cfg.items()
            if k
            in (
                "n_samples",
                "temperature",
                "sample_seed",
                "nrow",
                "n_reconstructions",
                "interpolation",
                "traversal",
                "upscale",
            )
        },
    }
    info_path = out / "generated.json"
    write_json(info_path, info)
    written["info"] = info_path
    log.info("wrote %d files to %s", len(written), out)

    wandb_run = tracking.continue_run(run.run_dir, (run.config.get("logger") or {}).get("wandb"))
    if wandb_run is not None:
        import wandb

        media: dict[str, Any] = {
            f"generated/{name}": wandb.Image(str(path))
            for name, path in written.items()
            if path.suffix == ".png"
        }
        media["generated/traversals_gif"] = wandb.Video(
            str(written["traversals_gif"]), format="gif"
        )
        wandb_run.log(media)
        wandb_run.finish()
    return written
