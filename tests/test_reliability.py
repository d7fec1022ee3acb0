"""Scale and faults: exact DDP evaluation, one DDP group per sweep job, SLURM's code
path through submitit, exact resume after SIGKILL, and faults that lose nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import kill_train_when, read_wandb_run, run_train
from in_process import call_train

SMOKE = ["debug=smoke", "data.resolution=32", "model/encoder=mlp", "model/decoder=mlp"]


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    result = call_train(*SMOKE, "logger=csv", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


def test_ddp_on_two_processes_gives_the_one_process_test_nelbo(
    trained: Path, tmp_path: Path
) -> None:
    # The whole test split (301 examples: uneven across ranks, no padding), same checkpoint.
    common = [
        *SMOKE,
        "logger=csv",
        "train=false",
        "trainer.limit_test_batches=1.0",
        "data.n_test=301",
        "data.eval_batch_size=64",
        f"ckpt_path={trained / 'checkpoints' / 'best.ckpt'}",
    ]
    results = {}
    for trainer in ("cpu", "ddp_cpu"):
        run_dir = tmp_path / trainer
        # One process in this one; DDP re-launches its script, so it runs as a child.
        run = call_train if trainer == "cpu" else run_train
        result = run(*common, f"trainer={trainer}", f"hydra.run.dir={run_dir}")
        assert result.returncode == 0, result.stderr[-2000:]
        results[trainer] = metrics(run_dir)
    assert results["cpu"]["world_size"] == 1 and results["ddp_cpu"]["world_size"] == 2
    for key in ("test/nelbo", "test/recon", "test/kl"):
        assert results["ddp_cpu"]["metrics"][key] == pytest.approx(
            results["cpu"]["metrics"][key], abs=1e-4
        )


def test_multirun_ddp_runs_one_ddp_group_per_job(tmp_path: Path) -> None:
    result = run_train(
        "-m",
        "beta=0.5,2",
        "trainer=ddp_cpu",
        "trainer.devices=2",
        *SMOKE,
        f"paths.log_dir={tmp_path}",
        env={"WANDB_MODE": "offline"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "multirun").glob("*/*")
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [p.name for p in jobs] == ["0_beta=0.5", "1_beta=2"]
    for job, beta in zip(jobs, (0.5, 2), strict=True):
        summary = metrics(job)
        assert summary["params"]["beta"] == beta and summary["metrics"]["test/beta"] == beta
        assert summary["world_size"] == 2
        (wandb_run,) = (job / "wandb").glob("offline-run-*")  # rank 0 only: one W&B run
        run = read_wandb_run(wandb_run)
        assert run["name"] == f"beta={beta:g}"
        assert run["group"] == f"sweep-{sweep_dir.parent.name}_{sweep_dir.name}"


def test_submitit_local_sweep(tmp_path: Path) -> None:
    result = run_train(
        "-m",
        "hydra/launcher=local",
        "beta=0.5,2",
        *SMOKE,
        "logger=csv",
        f"paths.log_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "multirun").glob("*/*")
    found = sorted(p.parent.name for p in sweep_dir.glob("*/metrics.json"))
    assert found == ["0_beta=0.5", "1_beta=2"]
    assert all(metrics(sweep_dir / name)["status"] == "finished" for name in found)
    assert any((sweep_dir / ".submitit").iterdir())  # jobs went through submitit


def test_ddp_jobs_of_a_submitit_local_sweep_run_as_their_own_ddp_groups(tmp_path: Path) -> None:
    """Under submitit `sys.argv[0]` is submitit's own script: a DDP job must re-run the
    app's entry point (src/train.py) as its single run, not argv[0]."""
    result = run_train(
        "-m",
        "hydra/launcher=local",
        "trainer=ddp_cpu",
        "trainer.devices=2",
        "beta=1,2",
        *SMOKE,
        "logger=csv",
        f"paths.log_dir={tmp_path}",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "multirun").glob("*/*")
    found = sorted(p.parent.name for p in sweep_dir.glob("*/metrics.json"))
    assert found == ["0_beta=1", "1_beta=2"]
    for name in found:
        summary = metrics(sweep_dir / name)
        assert summary["status"] == "finished" and summary["world_size"] == 2


RESUMABLE = [
    *SMOKE,
    "logger=csv",
    "trainer.max_epochs=4",
    "trainer.limit_train_batches=60",
    "trainer.deterministic=true",
    "data.batch_size=32",
    "seed=3",
]


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    assert call_train(*RESUMABLE, f"hydra.run.dir={reference}").returncode == 0

    killed = tmp_path / "killed"
    last = killed / "checkpoints" / "last.ckpt"
    # 0.3 s after the first last.ckpt: into the next epoch
    kill_train_when(last.exists, *RESUMABLE, f"hydra.run.dir={killed}", settle=0.3)
    assert not (killed / "metrics.json").exists() or metrics(killed)["status"] != "finished"
    epoch_at_kill = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    assert epoch_at_kill < 3

    resumed = call_train(*RESUMABLE, f"hydra.run.dir={killed}", "resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got, want = metrics(killed), metrics(reference)
    assert got["global_step"] == want["global_step"] == 240
    # Tolerance: none needed. On a CPU with deterministic kernels, the same weights,
    # optimiser state, RNG state and data order give bit-identical numbers.
    for key in ("val/nelbo", "test/nelbo", "test/recon", "test/kl"):
        assert got["metrics"][key] == want["metrics"][key], key


def test_same_seed_deterministic_runs_are_bit_identical(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        result = call_train(
            *SMOKE,
            "logger=csv",
            "trainer.deterministic=true",
            "seed=11",
            f"hydra.run.dir={tmp_path / name}",
        )
        assert result.returncode == 0
        runs.append(metrics(tmp_path / name)["metrics"])
    assert runs[0] == runs[1]


def test_broken_checkpoints_are_one_line(trained: Path, tmp_path: Path) -> None:
    good = trained / "checkpoints" / "last.ckpt"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    cases = {
        truncated: "is truncated or not a PyTorch checkpoint",
        foreign: "is not a vaelab checkpoint",
        tmp_path / "missing.ckpt": "no checkpoint at",
    }
    for path, message in cases.items():
        result = run_train(
            *SMOKE, "logger=csv", f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'r'}"
        )
        assert result.returncode == 2
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert errors[-1].startswith("vaelab: error:") and message in errors[-1], result.stderr[
            -1500:
        ]
        assert "Traceback" not in result.stderr
    # A checkpoint of another architecture is refused before training starts.
    other = run_train(
        *SMOKE, "logger=csv", "latent_dim=3", f"ckpt_path={good}", f"hydra.run.dir={tmp_path / 'o'}"
    )
    assert (
        other.returncode == 2 and "latent_dim=10 but the config builds latent_dim=3" in other.stderr
    )
