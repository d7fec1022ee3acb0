"""The default experiment (`make train`: no arguments) end to end, timed, and what it
learnt, measured on its best checkpoint. Run it alone on the machine.

    .venv/bin/python bench/default_experiment.py [overrides ...]
    .venv/bin/python bench/default_experiment.py --hand-loop [overrides ...]
    .venv/bin/python bench/default_experiment.py --measure <run folder>   # no training

With `--hand-loop`, the machine's speed that hour as well: the epoch time of
`bench/speed.py`'s hand-written loop (`--parts mlp --repeats 1 --epochs 3`), run just
before and just after the experiment, so that a wall time can be read against the
machine's drift.

- wall time of `python src/train.py` (fit, test and the end-of-training metrics);
- of 512 prior samples (z ~ N(0, I)), the share that is blank: fewer than 20 pixels
  above 0.5; and the same for those latents scaled by 0.5 and 0.75 (the temperature),
  which tells holes at the prior's centre from holes in its tails;
- posterior-mean reconstructions of 2,000 freshly rendered shapes (random grid indices,
  a seed of their own), thresholded at 0.5: mean IoU with the originals, overall and
  per shape;
- the disentanglement scores the run wrote into metrics.json.
Writes bench/results/default_experiment.json (with the overrides, if any) and copies
the run's last sample and reconstruction grids, and the labelled traversals that
`src/generate.py` draws from its best checkpoint, to docs/images/ for the README.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from vaelab.data.shapes import N_IMAGES, SHAPE_NAMES, index_to_factors, render  # noqa: E402
from vaelab.metrics.sample_quality import blank_fraction, intersection_over_union  # noqa: E402
from vaelab.runs.trained import load_vae  # noqa: E402

RESULTS = REPO / "bench" / "results" / "default_experiment.json"
IMAGES = REPO / "docs" / "images"
N_PRIOR, N_FRESH, FRESH_SEED = 512, 2000, 12345
# What the default experiment aims for: few blank prior samples, sharp
# reconstructions of every shape, some disentanglement, and five minutes on 2 CPU cores.
# bench/report.py prints each measurement beside its target and says whether it is met.
TARGETS = {
    "blank": 0.05,
    "iou": 0.90,
    "iou_per_shape": 0.85,
    "mig": 0.10,
    "factor_vae": 0.65,
    "wall_s": 300.0,
}


@torch.no_grad()
def measure(run_dir: Path) -> dict:
    model, _ = load_vae(run_dir / "checkpoints" / "best.ckpt")
    resolution = int(model.hparams.data_shape[-1])
    torch.manual_seed(0)
    samples = model.sample(N_PRIOR)
    # Where the holes are: the same 512 directions drawn closer to the origin. A share
    # that grows as the temperature falls puts the holes at the centre of the prior,
    # not in its tails.
    blank_by_temperature = {}
    for temperature in (0.5, 0.75):
        torch.manual_seed(0)
        blank_by_temperature[str(temperature)] = blank_fraction(
            model.sample(N_PRIOR, temperature=temperature)
        )
    generator = torch.Generator().manual_seed(FRESH_SEED)
    index = torch.randint(0, N_IMAGES, (N_FRESH,), generator=generator)
    originals = render(index, resolution)
    recon = torch.cat([model.reconstruct(x) for x in originals.split(500)])
    iou = intersection_over_union(recon, originals)
    shape = index_to_factors(index)[:, 0]
    summary = json.loads((run_dir / "metrics.json").read_text())
    scores = {
        k: v
        for k, v in summary["metrics"].items()
        if k.startswith("test/")
        and (k.split("/", 1)[1] in ("mig", "factor_vae", "dci", "sap", "beta_vae", "nelbo"))
    }
    return {
        "prior_blank_fraction": blank_fraction(samples),
        "prior_blank_fraction_by_temperature": blank_by_temperature,
        "recon_iou": float(iou.mean()),
        "recon_iou_per_shape": {
            name: float(iou[shape == i].mean()) for i, name in enumerate(SHAPE_NAMES)
        },
        "scores": scores,
        "global_step": summary.get("global_step"),
    }


def hand_loop_epoch_s() -> float:
    """The epoch time of bench/speed.py's hand-written loop (plain Adam), measured now."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speed.json"
        command = [sys.executable, "bench/speed.py", "--parts", "mlp", "--repeats", "1"]
        subprocess.run([*command, "--epochs", "3", "--out", str(out)], cwd=REPO, check=True)
        return float(json.loads(out.read_text())["mlp_fashion_mnist"]["hand_epoch_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--measure", type=Path, help="a finished run folder: measure only")
    parser.add_argument(
        "--hand-loop", action="store_true", help="time bench/speed.py's hand loop around the run"
    )
    args = parser.parse_args()
    loop_before = hand_loop_epoch_s() if args.hand_loop else None
    if args.measure:
        run_dir, wall = args.measure, None
    else:
        run_dir = REPO / "outputs" / "bench_default" / time.strftime("%Y-%m-%d_%H-%M-%S")
        start = time.monotonic()
        command = [sys.executable, "src/train.py", *args.overrides, f"hydra.run.dir={run_dir}"]
        subprocess.run(command, cwd=REPO, check=True)
        wall = time.monotonic() - start
    loop_after = hand_loop_epoch_s() if args.hand_loop else None
    result = {
        "overrides": args.overrides,
        "wall_s": wall,
        "run_dir": str(run_dir),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if args.hand_loop:
        result["hand_loop_epoch_s"] = {"before": loop_before, "after": loop_after}
    result.update(measure(run_dir))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name in ("samples", "recon"):  # the last epoch's grids (ImageGrids)
        found = sorted((run_dir / "images").glob(f"epoch_*_{name}.png"))
        if found:
            shutil.copyfile(found[-1], IMAGES / f"default_{name}.png")
    # The labelled traversals: src/generate.py on the best checkpoint.
    best = run_dir / "checkpoints" / "best.ckpt"
    subprocess.run(
        [sys.executable, "src/generate.py", f"ckpt_path={best}", "upscale=2"], cwd=REPO, check=True
    )
    generated = run_dir / "checkpoints" / "generated"
    for name in ("traversals.gif", "traversals.png"):
        shutil.copyfile(generated / name, IMAGES / f"default_{name}")
    info = json.loads((generated / "generated.json").read_text())
    result["traversal_factors"] = info["traversal"]["factors"]
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
