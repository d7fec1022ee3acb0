"""Samples, reconstructions, interpolations and latent traversals of a trained
checkpoint. See conf/generate.yaml.

python src/generate.py ckpt_path=outputs/train/<date>/<time>/checkpoints/best.ckpt
python src/generate.py ckpt_path=... n_samples=64 temperature=0.8
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from vaelab.config.preflight import preflight
from vaelab.launch.job import reports_errors


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
@reports_errors
def main(cfg: DictConfig) -> dict[str, Path]:
    from vaelab.generate import generate

    return generate(cfg)


if __name__ == "__main__":
    preflight("generate")
    main()
