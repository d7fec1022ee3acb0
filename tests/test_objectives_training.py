"""Every objective trains through the real apps: with every backbone, in a sweep of
comparable run folders, resumed after kill -9 (FactorVAE's discriminator and its
optimiser included), and evaluated alike on one or two DDP ranks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from helpers import REPO, config_options, run_app
from in_process import call_app, call_sweep, call_train, killed_and_resumed

OBJECTIVES = config_options("objective")
BACKBONES = ("mlp", "conv", "resnet")
SMOKE = [
    "debug=smoke",
    "logger=csv",
    "data.resolution=32",
    "model/encoder=mlp",
    "model/decoder=mlp",
]


def own_terms(objective: str) -> set[str]:
    """What an objective logs beside recon, kl and nelbo: its class's `terms`."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    target = OmegaConf.load(REPO / "conf" / "objective" / f"{objective}.yaml")._target_
    return {f"train/{name}" for name in get_class(target).terms}


def test_a_sweep_over_objectives_gives_comparable_run_folders(tmp_path: Path) -> None:
    swept = ["beta_vae", "beta_tcvae", "factor_vae", "dip_vae_ii"]
    sweep = call_sweep(tmp_path, f"objective={','.join(swept)}", *SMOKE)
    folders = sorted(p for p in sweep.iterdir() if (p / "metrics.json").exists())
    assert [p.name for p in folders] == [f"{i}_objective={o}" for i, o in enumerate(swept)]
    for folder, objective in zip(folders, swept, strict=True):
        summary = json.loads((folder / "metrics.json").read_text())
        assert summary["status"] == "finished"
        for key in ("val/nelbo", "val/recon", "val/kl", "test/nelbo", "test/nll_iwae"):
            assert isinstance(summary["metrics"][key], float), (objective, key)
        with open(folder / "csv" / "metrics.csv", newline="") as f:
            header = set(next(csv.reader(f)))
        assert {"train/loss", "train/recon", "train/kl", "train/nelbo"} <= header
        assert own_terms(objective) <= header, objective


RESUMABLE = [
    *SMOKE,
    "objective=factor_vae",
    "objective.hidden=[64,64]",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=40",
    "trainer.deterministic=true",
    "seed=5",
]


def test_factor_vae_resumes_after_kill_9_bit_identically(tmp_path: Path) -> None:
    want, got = killed_and_resumed(tmp_path, *RESUMABLE)
    assert got["global_step"] == want["global_step"] == 120
    discriminator = [k for k in want["state_dict"] if k.startswith("objective.discriminator.")]
    assert discriminator  # saved with the model
    for key, value in want["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), key
    assert len(want["optimizer_states"]) == 2  # the VAE's Adam and the discriminator's
    for a, b in zip(want["optimizer_states"], got["optimizer_states"], strict=True):
        for key, state in a["state"].items():
            for name, tensor in state.items():
                assert torch.equal(torch.as_tensor(b["state"][key][name]), torch.as_tensor(tensor))
    metrics = [
        json.loads((run / "metrics.json").read_text())["metrics"]
        for run in (tmp_path / "reference", tmp_path / "killed")
    ]
    assert metrics[1]["test/nelbo"] == metrics[0]["test/nelbo"]


def test_a_factor_vae_checkpoint_evaluates_alike_on_one_and_two_ddp_ranks(tmp_path: Path) -> None:
    run = tmp_path / "run"
    ok = call_train(*SMOKE, "objective=factor_vae", "objective.hidden=[32]", f"hydra.run.dir={run}")
    assert ok.returncode == 0, ok.stderr[-2000:]
    results = {}
    for trainer in ("cpu", "ddp_cpu"):
        output = tmp_path / f"{trainer}.json"
        # The one-process evaluation in this process; DDP re-launches its script: a child.
        run_eval = call_app if trainer == "cpu" else run_app
        result = run_eval(
            "eval",
            f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
            f"trainer={trainer}",
            "eval.iwae_k=4",
            "eval.disentanglement.enabled=false",
            "data.n_test=130",
            f"eval.output={output}",
            f"hydra.run.dir={tmp_path / trainer}",
        )
        assert result.returncode == 0, result.stderr[-2000:]
        results[trainer] = json.loads(output.read_text())["metrics"]
    for key in ("nelbo", "recon", "kl", "nll_iwae"):
        assert results["ddp_cpu"][key] == pytest.approx(results["cpu"][key], rel=1e-6), key
