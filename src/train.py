"""Train one VAE experiment (or, with -m, one per sweep point). See conf/train.yaml.

python src/train.py                                   # default experiment
python src/train.py model=conv data=cifar10
python src/train.py -m beta=0.5,1,4 latent_dim=8,16
"""

import hydra
from omegaconf import DictConfig

from vaelab.config.preflight import preflight
from vaelab.launch.job import reports_errors


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@reports_errors
def main(cfg: DictConfig) -> float | None:
    from vaelab.train import train

    return train(cfg)


if __name__ == "__main__":
    preflight("train")
    main()
