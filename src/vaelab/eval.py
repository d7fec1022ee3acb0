"""`evaluate(cfg)`: the function `src/eval.py` calls. Scores one checkpoint on its run's
test set and writes `eval.json` beside it (see conf/eval.yaml).

How the test set is evaluated: through `Trainer.test` with the run's own trainer
config (so `trainer=ddp` evaluates on every rank), not a hand-written loop. The test
loaders shard the split into contiguous pieces without padding, every number is a
per-example value reduced as a sum and a count (torchmetrics), and each example's
random draws come from its index; so each example counts exactly once and the result
does not depend on batch size or the number of processes. What needs the whole
model rather than the test split (disentanglement, which samples its own
observations from the ground-truth factors) runs afterwards on rank 0 alone.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, open_dict
from torch import Tensor

from vaelab.config import handover
from vaelab.config.checks import check_config
from vaelab.errors import VaelabError
from vaelab.launch.job import job_output_dir
from vaelab.lightning.trainer import tidy_lightning_output
from vaelab.metrics.protocol import StageTimes, evaluate_disentanglement, headline_scores

log = logging.getLogger(__name__)

#: The headline numbers of eval.json (and `eval/<name>` in W&B), from the test stage.
TEST_KEYS = ("nelbo", "recon", "kl", "nll_iwae", "bpd", "bpd_iwae", "active_units", "psnr", "ssim")


def build_test_trainer(
    run_trainer: DictConfig, overridden: frozenset[str], callbacks: list[Any]
) -> Any:
    """The run's Trainer (`vaelab.lightning.trainer.build_trainer`, as training builds
    it), set up to test: the whole test split unless the command line limits it (a
    `debug=smoke` run's `limit_test_batches` does not carry over), no checkpoints, no
    loggers (eval.json and the training's W&B run get the numbers)."""
    from vaelab.config.checks import check_devices
    from vaelab.lightning.trainer import build_trainer

    trainer_cfg = run_trainer.copy()
    with open_dict(trainer_cfg):
        if "trainer.limit_test_batches" not in overridden:
            trainer_cfg.limit_test_batches = 1.0
        trainer_cfg.default_root_dir = str(job_output_dir())
        trainer_cfg.enable_checkpointing = False
    check_devices(trainer_cfg)
    return build_trainer(trainer_cfg, callbacks, [])


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate `cfg.ckpt_path`; write and return the contents of eval.json. A folder
    (a sweep, or a run) evaluates each of its runs' checkpoints (`evaluate_folder`).

    On DDP ranks other than 0 the test is run (each rank its shard) and an empty dict
    returned; rank 0 writes the file.
    """
    if Path(str(cfg.ckpt_path)).is_dir():
        return evaluate_folder(cfg)
    checked, run = handover.take_over(cfg, "eval")  # the checks opened the checkpoint
    if not checked:
        run = check_config(cfg, "eval")
    import lightning as L

    from vaelab.callbacks import ReconstructionQuality
    from vaelab.callbacks.run_summary import package_versions
    from vaelab.launch import distributed
    from vaelab.runs.files import read_eval_report, write_json
    from vaelab.runs.trained import warn_if_outside_a_run
    from vaelab.tracking import identity

    tidy_lightning_output()
    # Under DDP Lightning suggests sync_dist for every epoch-level value; these are
    # torchmetrics sums and counts, reduced across ranks already.
    warnings.filterwarnings("ignore", message=r".*self\.log\('test/.*sync_dist=True")
    started = time.time()
    warn_if_outside_a_run(run)
    path = Path(cfg.eval.output) if cfg.eval.get("output") else run.checkpoint_path.parent
    path = path / "eval.json" if path.suffix != ".json" else path
    if distributed.needs_own_ddp_group(run.config):
        # `-m` over checkpoints with a DDP trainer: as for training, each job runs as
        # its own single run, whose ranks Lightning can start by re-running it.
        distributed.run_job_as_single_run(cfg, identity.hydra_job_identity())
        report, problem = read_eval_report(path)
        if report is None:
            raise VaelabError(problem or f"the evaluation job wrote no {path}")
        return report

    model, datamodule = run.model, run.datamodule
    model.configure_evaluation(int(cfg.eval.iwae_k), int(cfg.eval.iwae_max_decoded))
    trainer: L.Trainer = build_test_trainer(
        run.config.trainer, run.overridden, [ReconstructionQuality()]
    )
    times = StageTimes()
    with times.stage("test", f"ELBO, IWAE with k={cfg.eval.iwae_k}, PSNR/SSIM"):
        trainer.test(model, datamodule=datamodule, verbose=False)
    if trainer.global_rank != 0:
        return {}

    results = {
        "checkpoint": str(run.checkpoint_path.resolve()),
        "run_dir": str(run.run_dir) if run.run_dir else None,
        "eval_dir": str(job_output_dir()),
        "iwae_k": int(cfg.eval.iwae_k),
        **summarise_test(trainer, model),
    }
    if model.quantiser is not None:
        batch = int(getattr(datamodule, "eval_batch_size", 256))
        results["metrics"].update(codebook_usage(model.eval(), datamodule, batch))
    report = evaluate_disentanglement(
        model,
        datamodule,
        cfg.eval.disentanglement,
        trainer.strategy.root_device,
        int(getattr(datamodule, "eval_batch_size", 256)),
        times,
    )
    if report is not None:
        results["metrics"].update(
            headline_scores(report["scores"], report["settings"].get("metrics"))
        )
        results["disentanglement"] = report
    with times.stage(
        "sample_quality",
        f"{cfg.eval.sample_quality.n_samples} samples of {cfg.get('sampler', {}).get('_target_')}",
    ):
        quality = measure_sample_quality(cfg, run, model, datamodule)
    if quality is not None:
        results["sample_quality"] = quality
        if "code_nll" in quality:  # a VQ-VAE with its learned prior: the pair's bound
            from vaelab.metrics.likelihood import bits_per_dim

            pair = results["metrics"]["recon"] + quality["code_nll"]
            results["metrics"]["nll_pair"] = pair
            if model._reports_bpd():
                results["metrics"]["bpd_pair"] = float(bits_per_dim(pair, model.data_shape))
        results["metrics"].update(
            {
                k: quality[k]
                for k in ("fid", "kid_mean", "blank_fraction")
                if quality.get(k) is not None
            }
        )

    results["stage_times_s"] = dict(times)
    results["wall_time_s"] = round(time.time() - started, 3)
    results["versions"] = package_versions()
    non_finite = [k for k, v in results["metrics"].items() if not math.isfinite(v)]
    results["status"] = "non_finite" if non_finite else "finished"
    results["non_finite"] = non_finite
    write_json(path, results)  # non-finite numbers as null
    if non_finite:
        raise NonFiniteMetricsError(
            f"{', '.join(non_finite)} of {run.checkpoint_path} are not finite (written as null "
            f"to {path}, status non_finite): its weights are damaged or diverged; evaluate "
            "another checkpoint, e.g. <run folder>/checkpoints/last.ckpt"
        )
    log.info("wrote %s: %s", path, _headline(results["metrics"]))
    report_to_wandb(run, results)
    return results


class EvaluationsFailedError(VaelabError):
    """Some checkpoints of a folder could not be evaluated (the others were)."""


def evaluate_folder(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate every run below the folder `cfg.ckpt_path`, one after the other, with
    the same eval settings: each run's `best.ckpt` (else `last.ckpt`) gets its own
    eval.json beside it. A run that fails is reported and the others still run; the
    command then fails with one line naming them. Returns {checkpoint: its results}."""
    from vaelab.runs.checkpoints import run_checkpoints

    checkpoints = run_checkpoints(str(cfg.ckpt_path))
    log.info("evaluating %d run checkpoint(s) below %s", len(checkpoints), cfg.ckpt_path)
    results: dict[str, Any] = {}
    failed: list[str] = []
    for number, checkpoint in enumerate(checkpoints, 1):
        job = cfg.copy()
        with open_dict(job):
            job.ckpt_path = str(checkpoint)
        log.info("[%d/%d] %s", number, len(checkpoints), checkpoint)
        try:
            results[str(checkpoint)] = evaluate(job)
        except VaelabError as exc:
            failed.append(f"{checkpoint} ({exc})")
            log.error("[%d/%d] %s failed: %s", number, len(checkpoints), checkpoint, exc)
    for evaluated, report in results.items():
        log.info("evaluated %s: %s", evaluated, _headline(report.get("metrics", {})))
    if failed:
        raise EvaluationsFailedError(
            f"{len(failed)} of {len(checkpoints)} checkpoints could not be evaluated (the "
            f"others wrote their eval.json): {'; '.join(failed)}"
        )
    return results


class NonFiniteMetricsError(VaelabError):
    """A checkpoint whose test metrics are NaN or infinite: a result that is wrong."""


def measure_sample_quality(
    cfg: DictConfig, run: Any, model: Any, datamodule: Any
) -> dict[str, Any] | None:
    """`eval.sample_quality`: `n_samples` draws of `sampler=` (None when 0), their share
    of blank images on binary data, and FID/KID against as many test images where the
    Inception weights are at hand (else `fid_unavailable` says why, in one line)."""
    from vaelab.errors import DataError
    from vaelab.metrics.fid import inception_features, sample_quality
    from vaelab.metrics.sample_quality import blank_fraction
    from vaelab.samplers import CodePriorSampler
    from vaelab.samplers.use import ready_sampler, sampled_images

    options = cfg.eval.sample_quality
    n = int(options.n_samples)
    if n == 0:
        return None
    model = model.eval()
    sampler, how = ready_sampler(cfg.get("sampler"), model, datamodule, run.checkpoint_path)
    batch = int(options.batch_size)
    seed = int(options.seed)
    # A conditional model draws sample i with the labels of test image i: the samples
    # and the real images FID compares have the same labels.
    labels = datamodule.example_labels(n, model.label_names, "test") if model.conditional else None
    samples = [
        sampled_images(
            sampler,
            model,
            min(batch, n - i),
            1.0,
            seed + i,
            None if labels is None else labels[i : i + batch],
        )
        for i in range(0, n, batch)
    ]
    quality: dict[str, Any] = {"sampler": sampler.name, "sampler_fit": how, "n_samples": n}
    if isinstance(sampler, CodePriorSampler):
        quality["code_nll"] = test_code_nll(sampler, model, datamodule, batch)
    if getattr(datamodule, "levels", None) == 2:
        quality["blank_fraction"] = blank_fraction(torch.cat(samples))
    if not options.fid:
        return quality
    try:
        features = inception_features(cfg.paths.data_dir).to(model.device)
    except DataError as exc:
        log.warning("no FID/KID: %s", exc)
        quality["fid_unavailable"] = str(exc)
        return quality
    real = datamodule.example_batch(n, split="test").split(batch)
    quality.update(
        sample_quality(
            [x.to(model.device) for x in real],
            [x.to(model.device) for x in samples],
            features,
            int(options.kid_subset_size),
        )
    )
    return quality


@torch.no_grad()
def codebook_usage(model: Any, datamodule: Any, batch: int) -> dict[str, float]:
    """How a VQ-VAE uses its codebook on the test split: the perplexity exp(H) of the
    code frequencies over every position of every image, and the share of codes used."""
    counts = torch.zeros(model.quantiser.codes, dtype=torch.float64)
    for chunk, labels in test_chunks(model, datamodule, batch):
        indices = model.code_indices(chunk, labels).flatten().cpu()
        counts += torch.bincount(indices, minlength=len(counts)).double()
    share = counts / counts.sum()
    entropy = -(share * torch.log(share.clamp_min(1e-300))).sum()
    return {"perplexity": float(entropy.exp()), "codes_used": float((counts > 0).double().mean())}


@torch.no_grad()
def test_code_nll(sampler: Any, model: Any, datamodule: Any, batch: int) -> float:
    """The mean −log p(k) of the test images' VQ codes under a fitted code prior, nats."""
    total, count = 0.0, 0
    for chunk, labels in test_chunks(model, datamodule, batch):
        total += float(sampler.code_nll(model.code_indices(chunk, labels)).sum())
        count += len(chunk)
    return total / count


def test_chunks(model: Any, datamodule: Any, batch: int) -> Iterator[tuple[Tensor, Tensor | None]]:
    """The whole test split in chunks of `batch` on the model's device, each with its
    labels for a conditional model (else None)."""
    n_test = datamodule.split_sizes()["test"]
    x, labels = datamodule.labelled_examples(n_test, model.label_names, split="test")
    for start in range(0, len(x), batch):
        chunk_labels = None if labels is None else labels[start : start + batch]
        yield x[start : start + batch].to(model.device), chunk_labels


def summarise_test(trainer: Any, model: Any) -> dict[str, Any]:
    """eval.json's test part: headline metrics, latent statistics, every test/ value."""
    from vaelab.metrics.latents import active_dimensions, dimensions_by_information

    logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    metrics: dict[str, Any] = {k: logged[f"test/{k}"] for k in TEST_KEYS if f"test/{k}" in logged}
    metrics["active_units"] = int(metrics["active_units"])
    groups = model.latents.group_sizes if model.hierarchy is not None else {}
    for group in groups:  # a hierarchy's groups: each one's KL and active units
        metrics[f"kl/{group}"] = logged[f"test/kl/{group}"]
        metrics[f"active_units/{group}"] = int(logged[f"test/active_units/{group}"])
    stats = model.test_latent_stats
    return {
        "split": "test",
        "n_examples": int(logged["test/n_examples"]),
        "metrics": metrics,
        "latents": {
            # None for a learned prior or a flow posterior: no closed form per dimension
            "kl_per_dim": stats["kl_per_dim"].tolist() if "kl_per_dim" in stats else None,
            "kl_estimate": model.kl_estimate,
            "groups": model.latents.group_sizes,
            "posterior_mean_variance": stats["mean_variance"].tolist(),
            "active_dims_by_kl": dimensions_by_information(
                stats.get("kl_per_dim"),
                stats["mean_variance"],
                active_dimensions(stats["mean_variance"]),
            ),
        },
        "disentanglement": None,
        "test_metrics": logged,
    }


def report_to_wandb(run: Any, results: dict[str, Any]) -> None:
    """Add the headline numbers as eval/<name> (history and summary) to the W&B run the
    training made, if it made one."""
    from vaelab.tracking import setup as tracking

    wandb_run = tracking.continue_run(run.run_dir, (run.config.get("logger") or {}).get("wandb"))
    if wandb_run is None:
        return
    values = {f"eval/{k}": v for k, v in results["metrics"].items()}
    kl_per_dim = results["latents"]["kl_per_dim"] or []
    values.update({f"eval/kl_dim/{i}": v for i, v in enumerate(kl_per_dim)})
    wandb_run.log(values)
    wandb_run.summary.update({**values, "eval/iwae_k": results["iwae_k"]})
    wandb_run.finish()


def _headline(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
