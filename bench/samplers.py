"""Blank samples of the default experiment with each latent sampler, from the same
checkpoint. Run it alone on the machine.

    .venv/bin/python bench/samplers.py [--n 10000] [--run <a default-experiment run folder>]

Without `--run` it trains the default experiment (`python src/train.py`, CSV logging
only) into outputs/bench/samplers/default, unless that folder holds a finished run.
Then, on its best checkpoint, each sampler of conf/sampler/ (its shipped settings) is
fitted to the training latents (or restored from its saved fit) and draws `n` latents
with a fixed seed; the decoded images are thresholded as bench/default_experiment.py
does, and the share with fewer than 20 lit pixels is the blank share. Writes
bench/results/samplers.json and docs/images/samplers.png (the first 32 samples of each).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "src"))

from record import stamp  # noqa: E402

RESULTS = REPO / "bench" / "results" / "samplers.json"
PICTURE = REPO / "docs" / "images" / "samplers.png"
RUN = REPO / "outputs" / "bench" / "samplers" / "default"


def trained_run(folder: Path) -> Path:
    """The best checkpoint of a finished default-experiment run in `folder` (trained now
    if there is none)."""
    summary = folder / "metrics.json"
    if not summary.is_file() or json.loads(summary.read_text()).get("status") != "finished":
        subprocess.run(
            [sys.executable, "src/train.py", "logger=csv", f"hydra.run.dir={folder}"],
            cwd=REPO,
            check=True,
        )
    return folder / "checkpoints" / "best.ckpt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", type=Path, default=RUN)
    args = parser.parse_args()
    checkpoint = trained_run(args.run)

    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from vaelab.config.resolvers import register_resolvers
    from vaelab.metrics.sample_quality import blank_fraction
    from vaelab.runs.images import make_grid, save_png
    from vaelab.runs.trained import load_trained_run
    from vaelab.samplers.use import ready_sampler, sampled_images

    register_resolvers()
    names = sorted(p.stem for p in (REPO / "conf" / "sampler").glob("*.yaml"))
    rows, pictures = {}, []
    with initialize_config_dir(str(REPO / "conf"), version_base=None):
        run = load_trained_run(compose("generate", overrides=[f"ckpt_path={checkpoint}"]), [])
        model, data = run.model.eval(), run.datamodule
        for name in names:
            config = compose("generate", overrides=[f"sampler={name}", "ckpt_path=x"]).sampler
            started = time.perf_counter()
            sampler, how = ready_sampler(OmegaConf.to_container(config), model, data, checkpoint)
            fit_s = time.perf_counter() - started
            images = torch.cat(
                [
                    sampled_images(sampler, model, min(1000, args.n - i), 1.0, args.seed + i)
                    for i in range(0, args.n, 1000)
                ]
            )
            rows[name] = {
                "blank_fraction": blank_fraction(images),
                "n_samples": args.n,
                "fit": how,
                "fit_s": round(fit_s, 2) if how == "fitted" else None,
                "settings": OmegaConf.to_container(config),
            }
            pictures.append(images[:32])
            print(name, rows[name]["blank_fraction"], how, flush=True)
    record = {
        **stamp(),
        "command": " ".join(["python bench/samplers.py", *sys.argv[1:]]),
        "checkpoint": str(checkpoint.relative_to(REPO))
        if checkpoint.is_relative_to(REPO)
        else str(checkpoint),
        "threshold": {"pixel": 0.5, "min_pixels": 20},
        "samplers": rows,
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    save_png(make_grid(torch.cat(pictures), 32), PICTURE, upscale=2)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
