"""`generate(cfg)`: the function `src/generate.py` calls. Pictures of what a trained
model does, written to `generated/` beside the checkpoint (see conf/generate.yaml):

- samples.png: `n_samples` decoded draws of the model's prior at `temperature`, or
  samples_<sampler>.png with `sampler=gmm|two_stage|maf`: draws of a density fitted to
  the training latents (`vaelab.samplers`; fitted once, saved beside the checkpoint);
- reconstructions.png: test images, each with its reconstruction beside it (`nrow`
  pairs per row);
- interpolation_linear.png, interpolation_spherical.png: one pair of test images per
  row, the first image, `steps` decoded points between their posterior means (ends
  included), the second image;
- traversals.png: one row per active latent dimension (largest KL first), z_d swept
  over [-range, range] with the other dimensions at a test image's posterior mean;
  traversals.gif: the same sweep as an animation, one frame per value, one dimension
  per row. On data with known factors each row is labelled with the factor its
  dimension is most informative about and its share of that factor's information,
  I(z_d; v_k) / H(v_k) from MIG's mutual-information matrix ("z3: pos_x 62%");
- generated.json: what each file shows (dimensions, KL, factor labels, settings).

Every image is the likelihood's mean, decoded on `device`; the data are the first
images of the run's test split, so the pictures of two checkpoints compare.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from vaelab.config import handover
from vaelab.config.checks import check_config
from vaelab.lightning.trainer import pick_device

log = logging.getLogger(__name__)

#: The config values generated.json records next to the pictures.
SETTINGS = (
    "n_samples",
    "temperature",
    "sample_seed",
    "nrow",
    "n_reconstructions",
    "interpolation",
    "traversal",
    "upscale",
)


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
def latent_statistics(model: Any, x: Tensor, batch_size: int = 500) -> dict[str, Tensor | None]:
    """KL per dimension (mean over `x`; None where the model's KL has no closed form per
    dimension) and the variance over `x` of the latent code. Under a hierarchy of
    latent groups, of z1's dimensions only: the group the decoder reads, the one a
    traversal shows."""
    from vaelab.metrics.latents import kl_per_dimension, posterior_mean_variance

    kl, means = [], []
    for i in range(0, len(x), batch_size):
        chunk = x[i : i + batch_size].to(model.device)
        if model.analytic_kl:
            kl.append(kl_per_dimension(model.encode(chunk)).cpu())
        means.append(model.code(chunk)[:, : model.latent_dim].cpu())
    return {
        "kl_per_dim": torch.cat(kl).mean(0) if kl else None,
        "mean_variance": posterior_mean_variance(torch.cat(means)),
    }


@torch.no_grad()
def decode_mean(model: Any, z: Tensor) -> Tensor:
    """Images (N, C, H, W) on the CPU: p(x|z)'s mean for latents (..., D)."""
    images: Tensor = model.decode(z.reshape(-1, model.code_dim).to(model.device)).mean.cpu()
    return images


@torch.no_grad()
def encode_mean(model: Any, x: Tensor) -> Tensor:
    """Latent codes (N, D) on the CPU: the posterior means (`VAE.code`)."""
    means: Tensor = model.code(x.to(model.device)).cpu()
    return means


def prior_samples(model: Any, n: int, temperature: float, seed: int) -> Tensor:
    """`n` decoded draws of the model's prior at `temperature` (N(0, temperature² I) for
    the standard normal), from their own seeded generator (the same picture for the
    same seed, whatever ran before)."""
    from vaelab.samplers import PriorSampler
    from vaelab.samplers.use import sampled_images

    return sampled_images(PriorSampler(), model, n, temperature, seed)


def reconstruction_pairs(model: Any, x: Tensor) -> Tensor:
    """(2N, C, H, W): each image followed by its reconstruction from the posterior mean."""
    return torch.stack([x, decode_mean(model, encode_mean(model, x))], dim=1).flatten(0, 1)


def interpolation_rows(model: Any, xa: Tensor, xb: Tensor, steps: int, spherical: bool) -> Tensor:
    """(P * (steps + 2), C, H, W): per pair, the first image, `steps` decoded points from
    its posterior mean to the second's (ends included), the second image."""
    t = torch.linspace(0, 1, steps)
    path = (slerp if spherical else lerp)(encode_mean(model, xa), encode_mean(model, xb), t)
    decoded = decode_mean(model, path).view(len(xa), steps, *xa.shape[1:])
    return torch.cat([xa.unsqueeze(1), decoded, xb.unsqueeze(1)], dim=1).flatten(0, 1)


def traversed_dimensions(stats: dict[str, Tensor | None]) -> list[int]:
    """The active dimensions, largest KL first (largest posterior-mean variance where
    the KL has no per-dimension form); all of them if none is active (a fully collapsed
    posterior: better to show that than nothing)."""
    from vaelab.metrics.latents import active_dimensions, dimensions_by_information

    kl, variance = stats["kl_per_dim"], stats["mean_variance"]
    assert variance is not None
    dims = dimensions_by_information(kl, variance, active_dimensions(variance))
    if not dims:
        log.warning("no active latent dimension; traversing all of them")
        dims = dimensions_by_information(kl, variance)
    return dims


def factor_labels(
    model: Any, data: Any, dims: list[int], n: int, seed: int
) -> list[dict[str, Any]]:
    """On data with known factors, for each traversed dimension: the factor it is most
    informative about and its share I(z_d; v_k) / H(v_k) of that factor's information,
    from `n` examples of i.i.d. factors (the matrix MIG uses). [] on other data."""
    import numpy as np

    from vaelab.data.factors import factor_space_of
    from vaelab.metrics.disentanglement import dimension_factors, sample_factors

    space = factor_space_of(data)
    if space is None:
        return []
    factors = sample_factors(space.sizes, n, np.random.RandomState(seed))
    images = space.observe(torch.from_numpy(factors))
    split: Callable[[int], tuple[Tensor, ...]] = images.split  # unannotated in torch
    codes = torch.cat([encode_mean(model, x) for x in split(500)]).cpu().numpy()
    best = dimension_factors(codes, factors)
    labels = []
    for d in dims:
        k, share = best[d]
        labels.append({"dim": d, "factor": space.names[k] if k >= 0 else None, "share": share})
    return labels


def label_text(label: dict[str, Any]) -> str:
    """'z3: pos_x 62%' for a traversal row."""
    if label["factor"] is None:
        return f"z{label['dim']}: no factor"
    return f"z{label['dim']}: {label['factor']} {label['share']:.0%}"


def generate(cfg: DictConfig) -> dict[str, Path]:
    """Write the grids and the GIF for `cfg.ckpt_path`; return {name: path}."""
    checked, run = handover.take_over(cfg, "generate")  # the checks opened the checkpoint
    if not checked:
        run = check_config(cfg, "generate")
    from vaelab.metrics.latents import active_dimensions
    from vaelab.runs.files import write_json
    from vaelab.runs.images import RowLabels, make_grid, save_gif, save_png
    from vaelab.runs.trained import warn_if_outside_a_run
    from vaelab.samplers.use import ready_sampler, sampled_images
    from vaelab.tracking import setup as tracking

    warn_if_outside_a_run(run)
    model = run.model.to(pick_device(str(cfg.device))).eval()
    data = run.datamodule
    out = Path(cfg.output) if cfg.get("output") else run.checkpoint_path.parent / "generated"
    up, nrow = int(cfg.upscale), int(cfg.nrow)
    written: dict[str, Path] = {}

    def save(name: str, images: Tensor, per_row: int) -> None:
        written[name] = save_png(make_grid(images, per_row), out / f"{name}.png", up)

    sampler, how = ready_sampler(cfg.get("sampler"), model, data, run.checkpoint_path)
    samples = sampled_images(
        sampler, model, int(cfg.n_samples), float(cfg.temperature), int(cfg.sample_seed)
    )
    samples_name = "samples" if sampler.name == "prior" else f"samples_{sampler.name}"
    save(samples_name, samples, nrow)
    x = data.example_batch(int(cfg.n_reconstructions), split="test")
    save("reconstructions", reconstruction_pairs(model, x), 2 * nrow)

    steps = int(cfg.interpolation.steps)
    ends = data.example_batch(2 * int(cfg.interpolation.pairs), split="test")
    ends = ends[: len(ends) // 2 * 2]  # a test split smaller than asked for
    for name, spherical in (("linear", False), ("spherical", True)):
        rows = interpolation_rows(model, ends[0::2], ends[1::2], steps, spherical)
        save(f"interpolation_{name}", rows, steps + 2)

    tr = cfg.traversal
    stats = latent_statistics(model, data.example_batch(int(tr.n_stats), split="test"))
    dims = traversed_dimensions(stats)
    variance = stats["mean_variance"]
    assert variance is not None
    base = encode_mean(model, data.example_batch(int(tr.example) + 1, split="test")[-1:])[0]
    values = torch.linspace(-float(tr.range), float(tr.range), int(tr.steps))
    frames = decode_mean(model, traversal_latents(base, dims, values))
    frames = frames.view(len(dims), len(values), *frames.shape[1:])
    labels = factor_labels(model, data, dims, int(tr.n_stats), int(cfg.sample_seed))
    row_labels = RowLabels([label_text(x) for x in labels], frames.shape[-2]) if labels else None
    grid = make_grid(frames.flatten(0, 1), len(values))
    written["traversals"] = save_png(grid, out / "traversals.png", up, labels=row_labels)
    # GIF: frame j shows every traversed dimension at values[j], one per row in KL
    # order (labelled as in the PNG); forward then back, so the loop has no jump.
    order = [*range(len(values)), *range(len(values) - 2, 0, -1)]
    written["traversals_gif"] = save_gif(
        [make_grid(frames[:, j], 1) for j in order],
        out / "traversals.gif",
        duration_ms=int(tr.frame_ms),
        upscale=up,
        labels=row_labels,
    )

    info = {
        "checkpoint": str(run.checkpoint_path.resolve()),
        "files": {name: path.name for name, path in written.items()},
        "samples": {"file": f"{samples_name}.png", "sampler": sampler.name, "sampler_fit": how},
        "traversal": {
            "dims": dims,
            "active": active_dimensions(variance).tolist(),
            "kl_per_dim": None if stats["kl_per_dim"] is None else stats["kl_per_dim"].tolist(),
            "posterior_mean_variance": variance.tolist(),
            "values": values.tolist(),
            "gif_frames": len(order),
            "factors": labels,  # per traversed dimension, on data with known factors
        },
        "settings": OmegaConf.to_container(
            OmegaConf.masked_copy(cfg, list(SETTINGS)), resolve=True
        ),
    }
    written["info"] = out / "generated.json"
    write_json(written["info"], info)
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
