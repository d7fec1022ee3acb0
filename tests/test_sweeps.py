"""Hydra sweeps beyond the basic grid: Optuna's search returns the best parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import SMOKE_MLP as SMOKE
from in_process import call_train


def test_optuna_search_reports_the_best_trial(tmp_path: Path) -> None:
    result = call_train(
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.n_startup_trials=2",
        *SMOKE,
        f"paths.log_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "multirun").glob("*/*")
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    trials = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/metrics.json"))]
    assert len(trials) == 3
    scores = [t["best_checkpoint"]["score"] for t in trials]
    winner = trials[scores.index(min(scores))]
    # train() returned each trial's best val/nelbo; Optuna kept the smallest.
    assert best["best_value"] == pytest.approx(min(scores))
    assert best["best_params"]["beta"] == pytest.approx(winner["params"]["beta"])
    assert best["best_params"]["latent_dim"] == winner["params"]["latent_dim"]
    assert set(best["best_params"]) == {"beta", "latent_dim", "model.optimizer.lr"}
    # Job folders are named by the searched values only.
    for job in sweep_dir.glob("[0-9]*_*"):
        label = job.name.split("_", 1)[1]
        assert sorted(item.split("=")[0] for item in label.split(",")) == [
            "beta",
            "latent_dim",
            "model.optimizer.lr",
        ]


def test_the_slurm_preset_asks_for_gpus_only_for_a_gpu_trainer(hydra_conf) -> None:
    from hydra import compose

    from vaelab.config.resolvers import register_resolvers

    register_resolvers()

    def gpus(*overrides: str) -> int:
        overrides = ("hydra/launcher=slurm", *overrides)
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
        return cfg.hydra.launcher.gpus_per_node  # resolved against the whole config, as Hydra does

    assert gpus("trainer=cpu") == 0  # a CPU partition refuses a request for GPUs
    assert gpus("trainer=ddp_cpu", "trainer.devices=2") == 0
    assert gpus("trainer=gpu") == 1
    assert gpus("trainer=ddp", "trainer.devices=4") == 4
    assert gpus("trainer=default") == 0  # accelerator auto: name the GPU trainer
