"""Training speed: vaelab against a hand-written PyTorch loop, in one process, interleaved.

    python bench/speed.py                 # the full benchmark (about 15 minutes on 2 cores)
    python bench/speed.py --quick         # a few steps of everything (the test suite runs it)
    python bench/speed.py --parts mlp,options      # some parts: the others keep their results

(a) is the loop a researcher writes by hand: the split as one uint8 tensor, a randperm
per epoch, index slices, Adam. (b) is `vaelab.train.train` with the project's config and
its defaults (CSV + W&B offline logging, progress bar, checkpoints, image grids): the
same model (MLP 784-512-256, latent 32, Bernoulli), the same Fashion-MNIST training
split, batch 128, Adam 1e-3 (vaelab's presets use Adam's fused implementation). A third
loop, (a) with `Adam(fused=True)`, isolates what the training loop itself costs.
Epoch time is training only (validation excluded in all).
The machine is noisy, so (a) and (b) alternate within each repeat and the reported time
is a low percentile (p20) over all epochs but each run's first; the median of
the ratios of epochs paired within a repeat is reported beside it.

Also measured: the conv and resnet presets on 3x32x32 images, bf16-mixed against fp32
for the conv model, `model.compile=true`, every option of the objective, model and
likelihood groups against its group's default (the per-option speed table), the test
nelbo of (a) and (b) after the same epochs, what flushing subnormal floats to zero
(vaelab's default) does to the hand loop over 8 epochs, `src/train.py --help` and the
time from command to first training step.
Both (a) and (b) run with subnormals flushed, so that their ratio compares the loops.
Results go to bench/results/speed.json (and speed_quick.json for --quick).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from record import stamp  # noqa: E402  (bench/record.py, beside this script)

from vaelab.data.batching import TensorSource  # noqa: E402
from vaelab.data.memory import InMemoryDataModule  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RandomImages(InMemoryDataModule):
    """Uniform 8-bit noise images: a stand-in with CIFAR-10's shape for speed runs."""

    def __init__(
        self,
        n_train: int = 10000,
        shape: tuple = (3, 32, 32),
        batch_size: int = 128,
        eval_batch_size: int = 500,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, seed)
        self.n_train, self.dims, self.levels = n_train, tuple(shape), 256

    def build_splits(self) -> dict:
        g = torch.Generator().manual_seed(self.seed)

        def noise(n: int) -> TensorSource:
            return TensorSource(
                torch.randint(0, 256, (n, *self.dims), generator=g, dtype=torch.uint8)
            )

        return {"train": noise(self.n_train), "val": noise(500), "test": noise(500)}


# ------------------------------------------------------------------ (a) by hand
class HandVAE(nn.Module):
    """The benchmark's model written plainly: MLP encoder/decoder, Bernoulli, N(0, I)."""

    def __init__(self, d_in: int = 784, latent: int = 32) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            nn.Flatten(), nn.Linear(d_in, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU()
        )
        self.head = nn.Linear(256, 2 * latent)
        self.dec = nn.Sequential(
            nn.Linear(latent, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, d_in)
        )

    def nelbo(self, x: torch.Tensor) -> torch.Tensor:
        mean, log_var = self.head(self.enc(x)).chunk(2, -1)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        logits = self.dec(z).view_as(x)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(1)
        return recon + kl


def hand_loop(
    train_u8: torch.Tensor,
    test_u8: torch.Tensor,
    epochs: int,
    max_steps: int | None,
    seed: int,
    fused: bool = False,
) -> dict[str, Any]:
    """The loop as a researcher writes it; `fused=True` gives its Adam vaelab's default
    implementation, so that the ratio to vaelab measures only the training loop."""
    torch.manual_seed(seed)
    model = HandVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    n, times = train_u8.shape[0], []
    for _ in range(epochs):
        start = time.perf_counter()
        perm = torch.randperm(n)
        steps = n // 128 if max_steps is None else min(max_steps, n // 128)
        for b in range(steps):
            x = train_u8[perm[b * 128 : (b + 1) * 128]].float().div_(255)
            loss = model.nelbo(x).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - start)
    with torch.no_grad():
        test = torch.cat(
            [model.nelbo(test_u8[i : i + 1000].float() / 255) for i in range(0, len(test_u8), 1000)]
        )
    return {"epoch_s": times, "test_nelbo": float(test.mean()), "steps_per_epoch": steps}


# ------------------------------------------------------------------ (b) vaelab
def vaelab_run(overrides: list[str], run_dir: Path) -> dict[str, Any]:
    """`vaelab.train.train` in this process, exactly as `python src/train.py` composes it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict, read_write

    from vaelab.config.resolvers import register_resolvers
    from vaelab.train import train

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            "train", overrides=[*overrides, f"hydra.run.dir={run_dir}"], return_hydra_config=True
        )
    with read_write(cfg), open_dict(cfg):  # what Hydra sets when it runs a job
        cfg.hydra.runtime.output_dir = str(run_dir)
    HydraConfig().set_config(cfg)
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]  # as in a real job: `${hydra:...}` reads HydraConfig, not cfg
    train(cfg)
    summary = json.loads((run_dir / "metrics.json").read_text())
    return {
        "epoch_s": summary["timing"]["epoch_train_s"],
        "test_nelbo": summary["metrics"].get("test/nelbo"),
    }


def low_percentile(runs: list[list[float]], q: float = 20) -> float:
    """p20 over all epochs but each run's first (warm-up: allocator, thread pool)."""
    times = [t for run in runs for t in (run[1:] if len(run) > 1 else run)]
    return float(np.percentile(times, q))


# ------------------------------------------------------------------ start-up
def startup(quick: bool, tmp: Path) -> dict[str, float]:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    helps = []
    for _ in range(1 if quick else 3):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "src/train.py", "--help"],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
        )
        helps.append(time.perf_counter() - start)
    run_dir = tmp / "startup"
    launched = time.time()
    subprocess.run(
        [sys.executable, "src/train.py", "debug=smoke", f"hydra.run.dir={run_dir}"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    first = json.loads((run_dir / "metrics.json").read_text())["timing"]["first_step_at"]
    return {"help_s": min(helps), "command_to_first_step_s": first - launched}


# ------------------------------------------------------------------ subnormals
DENORMAL_CHILD = """
import json, sys, torch
torch.set_flush_denormal(sys.argv[1] == "1")  # before the thread pool starts
sys.path.insert(0, sys.argv[4])
from speed import hand_loop
from vaelab.data.mnist import FashionMNISTDataModule
data = FashionMNISTDataModule(binarize="none", seed=0)
data.prepare_data(); data.setup()
steps = None if sys.argv[3] == "all" else int(sys.argv[3])
run = hand_loop(data.splits["train"].data, data.splits["test"].data, int(sys.argv[2]), steps, 0)
print(json.dumps(run["epoch_s"]))
"""


def bench_denormal(quick: bool) -> dict[str, Any]:
    """The hand-written loop for several epochs with and without flushing subnormals
    to zero, each in a fresh process (the flag must be set before torch's threads
    start). Adam's second moments of near-zero gradients decay into subnormals, so
    the unflushed run slows down epoch after epoch."""
    epochs, steps = (2, "5") if quick else (8, "all")
    runs: dict[str, list[float]] = {}
    for flush in ("0", "1"):
        out = subprocess.run(
            [sys.executable, "-c", DENORMAL_CHILD, flush, str(epochs), steps, str(REPO / "bench")],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO / "src")},
            check=True,
            capture_output=True,
            text=True,
        )
        runs["flushed" if flush == "1" else "not_flushed"] = json.loads(out.stdout.splitlines()[-1])
    return {
        "epochs_s": runs,
        "last_epoch_speedup": runs["not_flushed"][-1] / runs["flushed"][-1],
        "total_speedup": sum(runs["not_flushed"]) / sum(runs["flushed"]),
    }


# ------------------------------------------------------------------ objectives
# The per-option speed table: for each config group, every option of `conf/<group>/`
# against the group's default, each on data and a preset that every option of the group
# can run. A new option file is measured (and listed in the docs' tables) without an edit
# here; a new group is one entry.
OPTION_GROUPS: dict[str, dict[str, Any]] = {
    "objective": {
        "baseline": "beta_vae",
        "setting": ["model=conv", "data=shapes"],
        "data": "shapes 1x64x64",
        "preset": "conv",
    },
    "model": {
        "baseline": "mlp",
        "setting": ["data=shapes"],
        "data": "shapes 1x64x64",
        "preset": "each option",
    },
    "likelihood": {
        "baseline": "bernoulli",
        "setting": ["model=mlp", "data=fashion_mnist", "data.binarize=none"],
        "data": "Fashion-MNIST 1x28x28, 256 grey levels",
        "preset": "mlp",
    },
    "prior": {
        "baseline": "normal",
        "setting": ["model=mlp", "data=fashion_mnist", "latent_dim=32"],
        "data": "Fashion-MNIST 1x28x28, binarised",
        "preset": "mlp",
    },
    "posterior": {
        "baseline": "gaussian",
        "setting": ["model=mlp", "data=fashion_mnist", "latent_dim=32"],
        "data": "Fashion-MNIST 1x28x28, binarised",
        "preset": "mlp",
    },
    "latent": {
        "baseline": "gaussian",
        "setting": ["model=mlp", "data=fashion_mnist", "latent_dim=32"],
        "data": "Fashion-MNIST 1x28x28, binarised",
        "preset": "mlp",
    },
    # A key, not a config group: its values are listed here.
    "conditional": {
        "baseline": "false",
        "values": ["false", "true"],
        "setting": ["model=mlp", "data=fashion_mnist", "latent_dim=32"],
        "data": "Fashion-MNIST 1x28x28, binarised",
        "preset": "mlp",
    },
}


def companions(group: str, option: str) -> list[str]:
    """The other choices an option cannot run without: the VQ-VAE's loss and its
    quantised latents go only together (`needs_quantised`, `discrete` on the classes)."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    file = REPO / "conf" / group / f"{option}.yaml"
    if not file.is_file():  # a key's value (`conditional`), not a group's option
        return []
    target = OmegaConf.load(file).get("_target_")
    cls = get_class(target) if target else None
    if group == "objective" and getattr(cls, "needs_quantised", False):
        return ["latent=vq"]
    if group == "latent" and getattr(cls, "discrete", False):
        return ["objective=vq"]
    return []


def bench_options(quick: bool, tmp: Path, groups: list[str] | None = None) -> dict[str, Any]:
    """Epoch time of each option of each group in OPTION_GROUPS (at the option's own
    defaults: FactorVAE's 6 x 1000 discriminator, IWAE's k = 5, ...), relative to the
    group's default option. Within each repeat the options alternate, and the ratio is
    the median over epochs of the option's epoch time to the baseline's same epoch of
    the same repeat (first epochs dropped), so that the machine's drift between repeats
    cancels."""
    batches, epochs, repeats = (3, 2, 1) if quick else (16, 3, 3)
    results: dict[str, Any] = {}
    for group, spec in OPTION_GROUPS.items():
        if groups is not None and group not in groups:
            continue
        options = spec.get("values") or sorted(
            p.stem for p in (REPO / "conf" / group).glob("*.yaml")
        )
        runs: dict[str, list[list[float]]] = {name: [] for name in options}
        for r in range(repeats):
            for name in options:
                run = vaelab_run(
                    [
                        *spec["setting"],
                        f"{group}={name}",
                        *companions(group, name),
                        f"trainer.max_epochs={epochs}",
                        f"trainer.limit_train_batches={batches}",
                        "trainer.limit_val_batches=2",
                        "test=false",
                        "data.batch_size=128",
                        "logger=csv",
                    ],
                    tmp / f"{group}-{name}{r}",
                )
                runs[name].append(run["epoch_s"])
        base = runs[spec["baseline"]]
        results[group] = {
            **stamp(),  # each group says when it ran: `--option-groups` re-runs some alone
            "protocol": {
                "batches_per_epoch": batches,
                "epochs": epochs,
                "repeats": repeats,
                "batch": 128,
                "data": spec["data"],
                "model": spec["preset"],
                "baseline": spec["baseline"],
                "overrides": spec["setting"],
                "statistic": "step: p20 of epoch time over its steps, first epochs dropped; "
                "relative: median ratio of epochs paired within repeats",
            },
            "options": {
                name: {
                    "epoch_s": low_percentile(r),
                    "ms_per_step": low_percentile(r) / batches * 1e3,
                    "relative": median_paired_ratio(base, r),
                    "epochs_s": r,
                }
                for name, r in runs.items()
            },
        }
    return results


def merge_option_groups(earlier: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    """The `options` record after re-measuring some groups: those `measured` now, and the
    other groups of `earlier`, each keeping the date, commit and machine of the run that
    measured it (a group without its own stamp takes the record's)."""
    kept = {k: dict(v) for k, v in earlier.items() if k in OPTION_GROUPS and k not in measured}
    for value in kept.values():
        for field in ("measured_at", "commit", "machine"):
            if field in earlier:
                value.setdefault(field, earlier[field])
    return {**kept, **measured}


# ------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few steps of each part (smoke test)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--quality-epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--option-groups",
        default=None,
        help="with --parts options: only these groups (comma-separated); the file keeps the others",
    )
    parser.add_argument(
        "--parts",
        default="mlp,quality,images,options,denormal,startup",
        help="comma-separated subset",
    )
    args = parser.parse_args()
    # Before any torch op starts the CPU thread pool (its threads copy the flag from
    # this one): (a) and (b) run with subnormals flushed, as `vaelab.train` does, so the
    # ratio compares loops, not float modes. The `denormal` part measures the mode.
    torch.set_flush_denormal(True)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    torch.set_num_threads(os.cpu_count() or 1)
    quick = args.quick
    repeats, epochs = (1, 2) if quick else (args.repeats, args.epochs)
    steps = 5 if quick else None
    tmp = Path(tempfile.mkdtemp(prefix="vaelab-bench-"))

    from vaelab.data.mnist import FashionMNISTDataModule

    data = FashionMNISTDataModule(binarize="none", seed=0)
    data.prepare_data()
    data.setup()
    train_u8, test_u8 = data.splits["train"].data, data.splits["test"].data
    n_train = train_u8.shape[0]
    common = [
        "model=mlp",
        "data=fashion_mnist",
        "data.binarize=none",
        "latent_dim=32",
        "data.batch_size=128",
        "model.encoder.hidden=[512,256]",
        "model.decoder.hidden=[256,512]",
        "model.encoder.activation=ReLU",  # the hand loop's (the MLP backbones default to SiLU)
        "model.decoder.activation=ReLU",
        "model.optimizer.lr=1e-3",
        "~model/scheduler",  # a constant rate, as the hand loop keeps
    ]
    limit = (
        [
            f"trainer.limit_train_batches={steps}",
            "trainer.limit_val_batches=2",
            "trainer.limit_test_batches=2",
        ]
        if quick
        else []
    )
    results: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "protocol": {
            "repeats": repeats,
            "epochs": epochs,
            "n_train": n_train,
            "batch": 128,
            "statistic": "p20 of epoch train time, first epoch of each run dropped",
        },
    }

    parts = set(args.parts.split(","))
    if "mlp" in parts:
        results["mlp_fashion_mnist"] = bench_mlp(
            train_u8, test_u8, common, limit, repeats, epochs, steps, n_train, tmp
        )
    if "quality" in parts:
        q_epochs = 1 if quick else args.quality_epochs
        results["quality"] = bench_quality(train_u8, test_u8, common, limit, q_epochs, steps, tmp)
    if "images" in parts:
        results["images_3x32x32"] = bench_images(quick, epochs, steps, limit, tmp)
    if "options" in parts:
        groups = args.option_groups.split(",") if args.option_groups else None
        results["options"] = bench_options(quick, tmp, groups)
        out_file = args.out or REPO / "bench" / "results" / "speed.json"
        if groups is not None and out_file.exists() and not quick:
            earlier = json.loads(out_file.read_text()).get("options", {})
            results["options"] = merge_option_groups(earlier, results["options"])
        print(json.dumps(results["options"], indent=1), flush=True)
    if "denormal" in parts:
        results["denormal"] = bench_denormal(quick)
        print(json.dumps(results["denormal"], indent=1), flush=True)
    if "startup" in parts:
        results["startup"] = startup(quick, tmp)
        print(json.dumps(results["startup"], indent=1), flush=True)

    for part in (
        "mlp_fashion_mnist",
        "quality",
        "images_3x32x32",
        "options",
        "denormal",
        "startup",
    ):
        if part in results:  # each part says when and where it ran: parts are re-run alone
            results[part] = {**stamp(), **results[part]}
    out = args.out or REPO / "bench" / "results" / ("speed_quick.json" if quick else "speed.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not quick:  # a run of some parts updates those, keeps the rest
        results = {**json.loads(out.read_text()), **results}
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


def bench_mlp(train_u8, test_u8, common, limit, repeats, epochs, steps, n_train, tmp) -> dict:
    """(a), (a) with fused Adam, and (b), alternating, `repeats` times, `epochs` epochs each.

    (b)/(a) is the issue's comparison: vaelab as configured against the loop a researcher
    writes. (b)/(a fused) compares the loops alone: vaelab's presets use Adam's fused
    implementation (one kernel per step instead of about ten per parameter tensor), and
    with it in both the difference left is Lightning's per-step machinery."""
    runs: dict[str, list[list[float]]] = {"hand": [], "hand_fused": [], "vaelab": []}
    for r in range(repeats):
        runs["hand"].append(hand_loop(train_u8, test_u8, epochs, steps, seed=r)["epoch_s"])
        fused = hand_loop(train_u8, test_u8, epochs, steps, seed=r, fused=True)
        runs["hand_fused"].append(fused["epoch_s"])
        lab = vaelab_run(
            [*common, f"trainer.max_epochs={epochs}", "test=false", f"seed={r}", *limit],
            tmp / f"mlp{r}",
        )
        runs["vaelab"].append(lab["epoch_s"])
    times = {name: low_percentile(r) for name, r in runs.items()}
    per_epoch = n_train if steps is None else steps * 128
    steps_per_epoch = per_epoch // 128
    result = {
        **{f"{name}_epoch_s": t for name, t in times.items()},
        **{f"{name}_samples_per_s": per_epoch / t for name, t in times.items()},
        "ratio_vaelab_to_hand": times["vaelab"] / times["hand"],
        "median_paired_ratio": median_paired_ratio(runs["hand"], runs["vaelab"]),
        "ratio_vaelab_to_hand_fused": times["vaelab"] / times["hand_fused"],
        "median_paired_ratio_fused": median_paired_ratio(runs["hand_fused"], runs["vaelab"]),
        "loop_overhead_ms_per_step": (times["vaelab"] - times["hand_fused"])
        / steps_per_epoch
        * 1e3,
        "peak_rss_mb": peak_rss_mb(),
        **{f"{name}_epochs_s": r for name, r in runs.items()},
    }
    print(json.dumps({k: v for k, v in result.items() if "epochs_s" not in k}, indent=1))
    assert math.isfinite(result["ratio_vaelab_to_hand"])
    return result


def median_paired_ratio(base: list[list[float]], other: list[list[float]]) -> float | None:
    """Median over epochs of other/base, each epoch paired with the same epoch of the same
    repeat (first epochs dropped): less sensitive than a percentile to one lucky epoch."""
    paired = [
        b / a
        for base_run, other_run in zip(base, other, strict=True)
        for a, b in zip(base_run[1:], other_run[1:], strict=True)
    ]
    return float(np.median(paired)) if paired else None


def bench_quality(train_u8, test_u8, common, limit, q_epochs, steps, tmp) -> dict:
    """Test nelbo of (a) and (b) after the same number of epochs, same seed and data."""
    hand_q = hand_loop(train_u8, test_u8, q_epochs, steps, seed=0)
    fused_q = hand_loop(train_u8, test_u8, q_epochs, steps, seed=0, fused=True)
    lab_q = vaelab_run(
        [*common, f"trainer.max_epochs={q_epochs}", "seed=0", *limit], tmp / "quality"
    )
    result = {
        "epochs": q_epochs,
        "hand_test_nelbo": hand_q["test_nelbo"],
        "hand_fused_test_nelbo": fused_q["test_nelbo"],
        "vaelab_test_nelbo": lab_q["test_nelbo"],
        "difference_nats": lab_q["test_nelbo"] - hand_q["test_nelbo"],
    }
    print(json.dumps(result, indent=1), flush=True)
    return result


def bench_images(quick, epochs, steps, limit, tmp) -> dict:
    """conv / resnet presets on 3x32x32, fp32 and bf16-mixed (conv), compile (conv)."""
    n_img = 256 if quick else 5120
    # The shapes data config, retargeted at RandomImages (its keys, less four).
    images = [
        "data=shapes",
        "data._target_=__main__.RandomImages",
        "~data.resolution",
        "~data.n_val",
        "~data.n_test",
        "~data.examples_per_epoch",
        f"data.n_train={n_img}",
        "+data.shape=[3,32,32]",
        "likelihood=discretized_logistic",
    ]
    variants = {
        "conv": ["model=conv"],
        "resnet": ["model=resnet"],
        "conv_bf16": ["model=conv", "trainer.precision=bf16-mixed"],
    }
    if not quick:  # compiling takes minutes on a CPU: the full run only
        variants["conv_compile"] = ["model=conv", "model.compile=true"]
    image_runs: dict[str, list[list[float]]] = {k: [] for k in variants}
    for r in range(1 if quick else 2):
        for name, extra in variants.items():
            run = vaelab_run(
                [
                    *images,
                    *extra,
                    "latent_dim=32",
                    f"trainer.max_epochs={epochs}",
                    "test=false",
                    "data.batch_size=128",
                    *limit,
                ],
                tmp / f"{name}{r}",
            )
            image_runs[name].append(run["epoch_s"])
    result: dict[str, Any] = {
        name: {
            "epoch_s": low_percentile(runs),
            "samples_per_s": (min(n_img, (steps or 10**9) * 128)) / low_percentile(runs),
            "epochs_s": runs,
        }
        for name, runs in image_runs.items()
    }
    conv = result["conv"]["epoch_s"]
    result["bf16_speedup_conv"] = conv / result["conv_bf16"]["epoch_s"]
    if "conv_compile" in image_runs:
        result["compile_speedup_conv"] = conv / result["conv_compile"]["epoch_s"]
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=1))
    return result


if __name__ == "__main__":
    main()
