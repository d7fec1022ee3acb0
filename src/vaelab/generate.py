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
- class_grid.png, for a conditional model (`conditional=`): one row per level of a
  label it reads (`class_grid.label`; the first one by default), `nrow` draws per row,
  the same prior draw down each column, so a column shows one "style" in every class;
- generated.json: what each file shows (dimensions, KL, factor labels, settings).

A conditional model reads each test image's labels with it; its samples.png draws
sample i with the labels of test image i, and an interpolation or a traversal decodes
with the labels of its (first) image.

Every image is the likelihood's mean, decoded on `device`; the data are the first
images of the run's test split, so the pictures of two checkpoints compare.
"""

from __future__ import annotations

import logging
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
    "class_grid",
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
def latent_statistics(
    model: Any, x: Tensor, batch_size: int = 500, labels: Tensor | None = None
) -> dict[str, Tensor | None]:
    """KL per dimension (mean over `x`; None where the model's KL has no closed form per
    dimension) and the variance over `x` of the latent code. Under a hierarchy of
    latent groups, of z1's dimensions only: the group the decoder reads, the one a
    traversal shows."""
    from vaelab.metrics.latents import kl_per_dimension, posterior_mean_variance

    kl, means = [], []
    for i in range(0, len(x), batch_size):
        chunk = x[i : i + batch_size].to(model.device)
        chunk_labels = None if labels is None else labels[i : i + batch_size]
        if model.analytic_kl:
            kl.append(kl_per_dimension(model.encode(chunk, chunk_labels)).cpu())
        means.append(model.code(chunk, chunk_labels)[:, : model.latent_dim].cpu())
    return {
        "kl_per_dim": torch.cat(kl).mean(0) if kl else None,
        "mean_variance": posterior_mean_variance(torch.cat(means)),
    }


@torch.no_grad()
def decode_mean(model: Any, z: Tensor, labels: Tensor | None = None) -> Tensor:
    """Images (N, C, H, W) on the CPU: p(x|z)'s mean for latents (..., D), N of them in
    all; a conditional model's `labels` (N, K) one row per image."""
    z = z.reshape(-1, model.code_dim).to(model.device)
    images: Tensor = model.decode(z, labels).mean.cpu()
    return images


@torch.no_grad()
def encode_mean(model: Any, x: Tensor, labels: Tensor | None = None) -> Tensor:
    """Latent codes (N, D) on the CPU: the posterior means (`VAE.code`)."""
    means: Tensor = model.code(x.to(model.device), labels).cpu()
    return means


def repeat_rows(labels: Tensor | None, times: int) -> Tensor | None:
    """Each row of `labels` `times` times in a row: the labels of the `times` images
    decoded from one example's latents (an interpolation's or a traversal's)."""
    return None if labels is None else labels.repeat_interleave(times, dim=0)


@torch.no_grad()
def class_grid(
    model: Any, data: Any, label: str | None, per_row: int, temperature: float, seed: int
) -> tuple[Tensor, list[str], str]:
    """A conditional model's draws by class: one row per level of `label` (None: the
    first label it reads), `per_row` prior draws at `temperature`, the same draw down
    each column. The model's other labels are those of the first test image. Returns
    the images (levels · per_row, C, H, W), each row's level name and the label."""
    from vaelab.errors import ConfigError

    names = list(model.label_names)
    label = label or names[0]
    if label not in names:
        raise ConfigError(
            f"class_grid.label={label} is not a label the model reads ({','.join(names)}): "
            f"use class_grid.label={names[0]}"
        )
    levels = model.label_sizes[label]
    generator = torch.Generator().manual_seed(seed)
    z = model.prior.sample(per_row, temperature, generator).to(model.device)
    rows = data.example_labels(1, names, split="test").repeat(levels * per_row, 1)
    rows[:, names.index(label)] = torch.arange(levels).repeat_interleave(per_row)
    images = decode_mean(model, z.repeat(levels, 1), rows)
    space = data.label_space()
    return images, [space.level_name(label, level) for level in range(levels)], label


def prior_samples(model: Any, n: int, temperature: float, seed: int) -> Tensor:
    """`n` decoded draws of the model's prior at `temperature` (N(0, temperature² I) for
    the standard normal), from their own seeded generator (the same picture for the
    same seed, whatever ran before)."""
    from vaelab.samplers import PriorSampler
    from vaelab.samplers.use import sampled_images

    return sampled_images(PriorSampler(), model, n, temperature, seed)


def reconstruction_pairs(model: Any, x: Tensor, labels: Tensor | None = None) -> Tensor:
    """(2N, C, H, W): each image followed by its reconstruction from the posterior mean."""
    recon = decode_mean(model, encode_mean(model, x, labels), labels)
    return torch.stack([x, recon], dim=1).flatten(0, 1)


def interpolation_rows(
    model: Any,
    xa: Tensor,
    xb: Tensor,
    steps: int,
    spherical: bool,
    labels: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """(P * (steps + 2), C, H, W): per pair, the first image, `steps` decoded points from
    its posterior mean to the second's (ends included), the second image. A conditional
    model's `labels` (of xa, of xb) encode each end; the path decodes with xa's."""
    la, lb = labels if labels is not None else (None, None)
    t = torch.linspace(0, 1, steps)
    path = (slerp if spherical else lerp)(encode_mean(model, xa, la), encode_mean(model, xb, lb), t)
    decoded = decode_mean(model, path, repeat_rows(la, steps)).view(len(xa), steps, *xa.shape[1:])
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
    # A conditional model reads the factors it is conditioned on (its labels) beside x.
    columns = [space.names.index(name) for name in model.label_names]
    given = torch.from_numpy(factors[:, columns]) if columns else None
    codes = torch.cat(
        [
            encode_mean(model, images[i : i + 500], None if given is None else given[i : i + 500])
            for i in range(0, len(images), 500)
        ]
    ).numpy()
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

    chosen = model.label_names  # () for an unconditional model: no labels anywhere

    def test_examples(n: int) -> tuple[Tensor, Tensor | None]:
        x, labels = data.labelled_examples(n, chosen, split="test")
        return x, labels

    sampler, how = ready_sampler(cfg.get("sampler"), model, data, run.checkpoint_path)
    n_samples = int(cfg.n_samples)
    # sample i with the labels of test image i
    sample_labels = data.example_labels(n_samples, chosen, "test") if chosen else None
    samples = sampled_images(
        sampler, model, n_samples, float(cfg.temperature), int(cfg.sample_seed), sample_labels
    )
    samples_name = "samples" if sampler.name == "prior" else f"samples_{sampler.name}"
    save(samples_name, samples, nrow)
    x, x_labels = test_examples(int(cfg.n_reconstructions))
    save("reconstructions", reconstruction_pairs(model, x, x_labels), 2 * nrow)

    class_info = None
    if chosen:
        grid_images, level_names, grid_label = class_grid(
            model,
            data,
            cfg.class_grid.get("label"),
            nrow,
            float(cfg.temperature),
            int(cfg.sample_seed),
        )
        cell = grid_images.shape[-2]
        written["class_grid"] = save_png(
            make_grid(grid_images, nrow),
            out / "class_grid.png",
            up,
            labels=RowLabels(level_names, cell),
        )
        class_info = {"label": grid_label, "rows": level_names, "per_row": nrow}

    steps = int(cfg.interpolation.steps)
    ends, end_labels = test_examples(2 * int(cfg.interpolation.pairs))
    n_ends = len(ends) // 2 * 2  # a test split smaller than asked for
    pair_labels = None if end_labels is None else (end_labels[0:n_ends:2], end_labels[1:n_ends:2])
    for name, spherical in (("linear", False), ("spherical", True)):
        rows = interpolation_rows(
            model, ends[0:n_ends:2], ends[1:n_ends:2], steps, spherical, pair_labels
        )
        save(f"interpolation_{name}", rows, steps + 2)

    tr = cfg.traversal
    stats_x, stats_labels = test_examples(int(tr.n_stats))
    stats = latent_statistics(model, stats_x, labels=stats_labels)
    dims = traversed_dimensions(stats)
    variance = stats["mean_variance"]
    assert variance is not None
    bases, base_labels = test_examples(int(tr.example) + 1)
    base_label = None if base_labels is None else base_labels[-1:]
    base = encode_mean(model, bases[-1:], base_label)[0]
    values = torch.linspace(-float(tr.range), float(tr.range), int(tr.steps))
    frames = decode_mean(
        model,
        traversal_latents(base, dims, values),
        repeat_rows(base_label, len(dims) * len(values)),
    )
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
        "class_grid": class_info,  # a conditional model's rows of draws by class
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
