"""What the disentanglement protocol costs: every metric of `fast` and `dlib` for one
10-latent conv model on 64x64 shapes, the time of each metric and of its encoder passes.

    .venv/bin/python bench/disentanglement.py            # train briefly, then both protocols
    .venv/bin/python bench/disentanglement.py --quick    # tiny counts (the test suite runs it)

The model is the conv preset (latent 10) trained for `--steps` Adam steps on rendered
shapes, so that its codes carry information as a trained model's do (the metrics'
classifiers take longer on informative codes than on noise). Each protocol then runs
as `src/eval.py` and the end of training run it (`vaelab.metrics.protocol`), with the
encoder wrapped to count observations and time the passes. Run it alone on the
machine: two CPU-heavy processes slow each other several-fold.

Writes bench/results/disentanglement.json (disentanglement_quick.json for --quick).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from record import stamp  # noqa: E402  (bench/record.py)

from vaelab.data.shapes import ShapesDataModule  # noqa: E402
from vaelab.metrics import protocol as protocol_module  # noqa: E402
from vaelab.metrics.protocol import StageTimes, disentanglement_scores  # noqa: E402
from vaelab.models import VAE  # noqa: E402

TINY = {
    "mig": {"n_samples": 300, "n_bins": 20},
    "factor_vae": {
        "batch_size": 16,
        "n_train": 20,
        "n_eval": 10,
        "n_variance": 300,
        "prune_threshold": 0.05,
    },
    "dci": {"n_train": 200, "n_test": 100, "n_estimators": 5},
    "sap": {"n_train": 200, "n_test": 100},
    "beta_vae": {"batch_size": 16, "n_train": 20, "n_eval": 10},
    "modularity": {"n_train": 200, "n_test": 100},
    "irs": {"n_samples": 300, "quantile": 0.99},
    "unsupervised": {"n_samples": 300},
}


def conv_preset(data: ShapesDataModule) -> VAE:
    """`model=conv latent_dim=10` with conf/'s defaults, built for `data`."""
    from hydra import compose, initialize_config_dir

    from vaelab.config.build import build_model

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["model=conv", "latent_dim=10"])
    return build_model(cfg, data)


def trained_model(steps: int, batch_size: int = 64) -> VAE:
    """The conv preset with 10 latents after `steps` Adam steps on 64x64 shapes."""
    torch.manual_seed(0)
    data = ShapesDataModule(resolution=64, batch_size=batch_size, n_val=64, n_test=64)
    data.setup()
    model = conv_preset(data)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = iter(data.train_dataloader())
    for step in range(steps):
        batch = next(loader)
        out, _ = model.compute_objective(batch, step)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
    return model.eval()


class TimedEncoder:
    """`encode` counting observations and summing the seconds spent in it."""

    def __init__(self, encode: Any) -> None:
        self.encode, self.observations, self.seconds = encode, 0, 0.0

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        codes = self.encode(factors)
        self.seconds += time.perf_counter() - started
        self.observations += len(factors)
        return codes


class EncoderStages(StageTimes):
    """Stage times that also record, per stage, the observations encoded in it and the
    seconds the encoder took."""

    def __init__(self, encoder: TimedEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.details: dict[str, dict[str, float]] = {}

    @contextlib.contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        observations, seconds = self.encoder.observations, self.encoder.seconds
        with super().stage(name, detail):
            yield
        self.details[name] = {
            "seconds": self[name],
            "encoded": self.encoder.observations - observations,
            "encoder_seconds": round(self.encoder.seconds - seconds, 3),
        }


def run_protocol(model: VAE, settings: dict[str, Any], batch_size: int) -> dict[str, Any]:
    """One protocol's wall time, per-stage seconds, encoder observations and seconds."""
    space = ShapesDataModule(resolution=64).factor_space()
    started = time.perf_counter()
    with protocol_module.channels_last_weights(model):
        encoder = TimedEncoder(
            protocol_module.factor_encoder(model, space, batch_size, torch.device("cpu"))
        )
        stages = EncoderStages(encoder)
        scores = disentanglement_scores(encoder, space.sizes, settings, stages)
    return {
        "wall_s": round(time.perf_counter() - started, 2),
        "stages": stages.details,
        "encoded": encoder.observations,
        "encoder_s": round(encoder.seconds, 2),
        "encodes_per_s": round(encoder.observations / max(encoder.seconds, 1e-9)),
        "scores": {k: v for k, v in scores.items() if "/" not in k},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks it runs")
    parser.add_argument("--steps", type=int, default=1500, help="training steps of the model")
    parser.add_argument("--batch-size", type=int, default=256, help="observations per encode")
    parser.add_argument("--protocols", default="fast,dlib")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    started = time.perf_counter()
    model = trained_model(20 if args.quick else args.steps)
    train_s = time.perf_counter() - started
    results: dict[str, Any] = {
        **stamp(),
        "threads": torch.get_num_threads(),
        "model": {
            "preset": "conv",
            "latent_dim": 10,
            "data": "shapes 1x64x64",
            "train_steps": 20 if args.quick else args.steps,
            "train_s": round(train_s, 1),
        },
        "encode_batch_size": args.batch_size,
    }
    for name in args.protocols.split(","):
        counts = TINY if args.quick else {}  # {}: the protocol's own presets
        settings = {**counts, "seed": 0, "protocol": name}
        results[name] = run_protocol(model, settings, args.batch_size)
        print(json.dumps({name: results[name]}, indent=1), flush=True)
    out = args.out or REPO / "bench" / "results" / (
        "disentanglement_quick.json" if args.quick else "disentanglement.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
