"""Evaluate a trained checkpoint on its run's test set. See conf/eval.yaml.

python src/eval.py ckpt_path=outputs/train/<date>/<time>/checkpoints/best.ckpt
python src/eval.py ckpt_path=... eval.iwae_k=1000 trainer=gpu
"""

import hydra
from omegaconf import DictConfig

from vaelab.config.preflight import preflight
from vaelab.launch.job import reports_errors


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
@reports_errors
def main(cfg: DictConfig) -> dict:
    from vaelab.eval import evaluate

    return evaluate(cfg)


if __name__ == "__main__":
    preflight("eval")
    main()
