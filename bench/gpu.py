"""vaelab on a CUDA device: the speed benchmark's models in fp32, bf16-mixed and compiled,
the default experiment, and a DDP smoke run. Started by `bash bench/gpu.sh`, which
bounds it to ten minutes; run it alone on the machine.

    python bench/gpu.py              # everything, about 5-8 minutes on one recent GPU
    python bench/gpu.py --quick      # two short epochs of each part (a check of the script)

Parts, each a list of runs in bench/results/gpu_<device>.json:
- `mlp`: `bench/speed.py`'s MLP (784-512-256, 32 latents, Bernoulli, batch 128, Adam 1e-3)
  on the Fashion-MNIST training split with `trainer=gpu`: fp32, `trainer.precision=
  bf16-mixed`, `model.compile=true`, and `data.on_device=true` (the uint8 split held in
  GPU memory: no host-to-device copy per step);
- `conv`: the conv preset on 3x32x32 images (speed.py's stand-in with CIFAR-10's shape),
  the same three variants;
- `default`: the default experiment (`python src/train.py trainer=gpu`; its built-in
  shapes are rendered on the host, so there is no `data.on_device` for it): wall time
  from the command to the end, and its test -ELBO;
- `ddp`: `trainer=ddp trainer.devices=<every visible GPU>` for two steps at
  `debug=smoke`, as a child process: that DDP starts, steps and ends cleanly.

Epoch time is training only, the p20 over all epochs but each run's first (as in
bench/speed.py); variants alternate within each repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "src"))

from record import stamp  # noqa: E402
from speed import low_percentile, vaelab_run  # noqa: E402

BATCH = 128
MLP = [
    "model=mlp",
    "data=fashion_mnist",
    "data.binarize=none",
    "latent_dim=32",
    f"data.batch_size={BATCH}",
    "model.encoder.hidden=[512,256]",
    "model.decoder.hidden=[256,512]",
    "model.optimizer.lr=1e-3",
    "~model/scheduler",
]
CONV = [  # bench/speed.py's RandomImages: the shapes data config retargeted at it
    "data=shapes",
    "data._target_=speed.RandomImages",
    "~data.resolution",
    "~data.n_val",
    "~data.n_test",
    "~data.examples_per_epoch",
    "data.n_train=20480",
    "+data.shape=[3,32,32]",
    "likelihood=discretized_logistic",
    "model=conv",
    "latent_dim=32",
    f"data.batch_size={BATCH}",
]
VARIANTS = {
    "fp32": [],
    "bf16-mixed": ["trainer.precision=bf16-mixed"],
    "compile": ["model.compile=true"],
}


def timed_variants(
    part: str, base: list[str], variants: dict[str, list[str]], epochs: int, repeats: int, tmp: Path
) -> list[dict[str, Any]]:
    runs: dict[str, list[list[float]]] = {name: [] for name in variants}
    images: dict[str, int] = {}
    for r in range(repeats):
        for name, extra in variants.items():
            run_dir = tmp / f"{part}-{name}-{r}"
            run = vaelab_run(
                [*base, *extra, "trainer=gpu", f"trainer.max_epochs={epochs}", "test=false"],
                run_dir,
            )
            runs[name].append(run["epoch_s"])
            steps = json.loads((run_dir / "metrics.json").read_text())["global_step"]
            images[name] = steps // epochs * BATCH
    rows = []
    for name, times in runs.items():
        epoch = low_percentile(times)
        rows.append(
            {
                "name": f"{part}, {name}",
                "epoch_s": epoch,
                "samples_per_s": images[name] / epoch if images[name] else None,
                "epochs_s": times,
                "overrides": [*base, *variants[name], "trainer=gpu"],
            }
        )
    return rows


def default_experiment(tmp: Path) -> dict[str, Any]:
    run_dir = tmp / "default"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "src/train.py", "trainer=gpu", f"hydra.run.dir={run_dir}"],
        cwd=REPO,
        check=True,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    wall = time.perf_counter() - started
    summary = json.loads((run_dir / "metrics.json").read_text())
    return {
        "name": "default experiment, `trainer=gpu`",
        "epoch_s": summary["timing"]["epoch_train_s"][-1],
        "samples_per_s": None,
        "wall_s": wall,
        "test_nelbo": summary["metrics"]["test/nelbo"],
        "note": f"command to end {wall:.0f} s; test −ELBO {summary['metrics']['test/nelbo']:.2f}",
    }


def ddp_smoke(tmp: Path) -> dict[str, Any]:
    devices = torch.cuda.device_count()
    run_dir = tmp / "ddp"
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "src/train.py",
            "trainer=ddp",
            f"trainer.devices={devices}",
            "debug=smoke",
            "trainer.max_steps=2",
            "logger=csv",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    ok = result.returncode == 0 and (run_dir / "metrics.json").is_file()
    steps = json.loads((run_dir / "metrics.json").read_text())["global_step"] if ok else None
    return {
        "name": f"DDP smoke, {devices} GPU{'s' if devices > 1 else ''}",
        "epoch_s": None,
        "samples_per_s": None,
        "wall_s": wall,
        "exit_code": result.returncode,
        "note": f"{'ran' if ok else 'FAILED'}: {steps} steps, command to end {wall:.0f} s"
        + ("" if ok else f"; {result.stderr.strip().splitlines()[-1:]}"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="two short epochs of each part")
    parser.add_argument("--parts", default="mlp,conv,default,ddp", help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench/gpu.py: error: no CUDA device here; run it on a machine with a GPU")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    sys.path.insert(0, str(BENCH))  # speed.RandomImages, importable by its _target_
    epochs, repeats = (2, 1) if args.quick else (4, 2)
    limit = ["trainer.limit_train_batches=10", "trainer.limit_val_batches=2"] if args.quick else []
    parts = set(args.parts.split(","))
    runs: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="vaelab-gpu-"))
    if "mlp" in parts:
        variants = {**VARIANTS, "fp32, data.on_device=true": ["data.on_device=true"]}
        runs += timed_variants("mlp", [*MLP, *limit], variants, epochs, repeats, tmp)
    if "conv" in parts:
        runs += timed_variants("conv", [*CONV, *limit], VARIANTS, epochs, repeats, tmp)
    if "default" in parts and not args.quick:
        runs.append(default_experiment(tmp))
    if "ddp" in parts:
        runs.append(ddp_smoke(tmp))
    device = torch.cuda.get_device_name(0)
    slug = re.sub(r"[^a-z0-9]+", "_", device.lower()).strip("_")
    out = args.out or BENCH / "results" / f"gpu_{slug}{'_quick' if args.quick else ''}.json"
    record = {**stamp(), "device": device, "devices": torch.cuda.device_count(), "runs": runs}
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
