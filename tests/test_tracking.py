"""W&B tracking: one offline run per job, grouped per sweep, never a login prompt."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from helpers import REPO, read_wandb_run
from in_process import call_train

SMOKE = ["debug=smoke", "data.resolution=32", "model/encoder=mlp", "model/decoder=mlp"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A real `-m beta=0.5,2 latent_dim=2,4` sweep with W&B offline; its sweep folder."""
    log_dir = tmp_path_factory.mktemp("sweep")
    result = call_train(
        "-m",
        "beta=0.5,2",
        "latent_dim=2,4",
        *SMOKE,
        "tags=[ci,sweep]",
        f"paths.log_dir={log_dir}",
        env={"WANDB_MODE": "offline"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (log_dir / "multirun").glob("*/*")
    return sweep_dir


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p for p in sweep_dir.iterdir() if (p / "metrics.json").exists())


def test_sweep_gives_one_folder_and_one_wandb_run_per_job(sweep: Path) -> None:
    jobs = job_dirs(sweep)
    assert [p.name for p in jobs] == [
        "0_beta=0.5,latent_dim=2",
        "1_beta=0.5,latent_dim=4",
        "2_beta=2,latent_dim=2",
        "3_beta=2,latent_dim=4",
    ]
    run_ids, groups = set(), set()
    for job in jobs:
        (offline,) = (job / "wandb").glob("offline-run-*")
        run = read_wandb_run(offline)
        run_ids.add(run["id"])
        groups.add(run["group"])
        params = json.loads((job / "metrics.json").read_text())["params"]
        beta = "0.5" if params["beta"] == 0.5 else "2"
        assert run["name"] == f"beta={beta},latent_dim={params['latent_dim']}"
        assert run["job_type"] == "sweep"
        assert run["tags"] == ["ci", "sweep"]
        assert run["exit_code"] == 0  # finished, not merged into the next job
        # The resolved config reached W&B: the job's own values, not the sweep's strings.
        assert run["config"]["beta"] == params["beta"]
        assert run["config"]["latent_dim"] == params["latent_dim"]
        assert run["config"]["data"]["resolution"] == 32
        assert run["config"]["paths"]["output_dir"] == str(job)
        # Logged: the ELBO terms, beta, per-dimension KL, image grids; summaries defined.
        keys = run["history_keys"]
        assert {
            "train/loss",
            "train/beta",
            "train/loss_epoch",
            "val/nelbo",
            "val/beta",
            "test/nelbo",
        } <= keys
        assert {"images/recon/_type", "images/samples/filenames"} <= keys
        assert {f"val/kl_dim/{i}" for i in range(params["latent_dim"])} <= keys
        assert set(run["summary"]["val/nelbo"]) == {"min"}
        assert run["summary"]["best/val_nelbo"] == pytest.approx(run["summary"]["val/nelbo"]["min"])
    assert len(run_ids) == 4
    assert groups == {f"sweep-{sweep.parent.name}_{sweep.name}"}


def test_sweep_folder_names_do_not_collide(sweep: Path) -> None:
    # <time>_<uid>: two sweeps started in the same second get different folders.
    time, uid = sweep.name.split("_")
    assert len(time) == len("05-30-12") and len(uid) == 6


def test_no_credentials_falls_back_to_offline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), NETRC=str(tmp_path / "none"), WANDB_DISABLE_CODE="true")
    run_dir = tmp_path / "run"
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, str(REPO / "src" / "train.py"), *SMOKE, f"hydra.run.dir={run_dir}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    hints = [
        line for line in (result.stdout + result.stderr).splitlines() if "no credentials" in line
    ]
    assert len(hints) == 1 and "wandb sync" in hints[0]
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    assert read_wandb_run(offline)["exit_code"] == 0


def test_wandb_sweep_example_composes(hydra_conf) -> None:
    """The documented W&B Sweeps file runs src/train.py with Hydra overrides that compose."""
    from helpers import compose_train

    spec = yaml.safe_load((REPO / "docs" / "wandb_sweep.yaml").read_text())
    assert (REPO / spec["program"]).is_file()
    assert "${args_no_hyphens}" in spec["command"]
    fixed = [arg for arg in spec["command"] if "=" in arg and not arg.startswith("$")]
    # What the agent appends: key=value per parameter (here the first or lowest value).
    trial = [
        f"{key}={p['values'][0] if 'values' in p else p['min']}"
        for key, p in spec["parameters"].items()
    ]
    cfg = compose_train(*fixed, *trial)
    assert cfg.beta == spec["parameters"]["beta"]["values"][0]
    assert cfg.model.optimizer.lr == spec["parameters"]["model.optimizer.lr"]["min"]
    assert "wandb" in cfg.logger


def test_loggers_combine(tmp_path: Path) -> None:
    result = call_train(*SMOKE, "logger=[csv,tensorboard]", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert sum(e.stat().st_size for e in events) > 1000  # scalars and the image grids
    header = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss", "val/nelbo", "test/nelbo"} <= set(header)
    assert not (tmp_path / "wandb").exists()


def test_the_wandb_summary_names_the_metric_it_holds(tmp_path: Path) -> None:
    """`optimized_metric=val/recon` (which the checkpoint does not monitor) is reported
    as the final value under final/val_recon, never under best/val_nelbo."""
    result = call_train(
        *SMOKE,
        "trainer.max_epochs=2",
        "optimized_metric=val/recon",
        f"hydra.run.dir={tmp_path}",
        env={"WANDB_MODE": "offline"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (offline,) = (tmp_path / "wandb").glob("offline-run-*")
    summary = read_wandb_run(offline)["summary"]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["final/val_recon"] == pytest.approx(saved["metrics"]["val/recon"])
    assert not [k for k in summary if k.startswith("best/")]


LOSE_THE_SERVICE = """
import os, signal, sys, time
from pathlib import Path
from vaelab.tracking.setup import wandb_logger

logger = wandb_logger(save_dir=sys.argv[1], mode="offline")
logger.log_metrics({"train/loss": 1.0}, step=0)
children = [
    int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
    and (p / "stat").read_text().rsplit(")", 1)[1].split()[1] == str(os.getpid())
]
assert children, "no W&B service process"
for pid in children:  # what SLURM's SIGTERM to the whole job does
    os.kill(pid, signal.SIGTERM)
time.sleep(2)
logger.log_metrics({"train/loss": 2.0}, step=1)
logger.log_metrics({"train/loss": 3.0}, step=2)
logger.finish(exit_code=0)
print("service_lost", logger.service_lost)
"""


def test_a_lost_wandb_service_stops_w_and_b_logging_not_the_job(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", LOSE_THE_SERVICE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "WANDB_MODE": "offline"},
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert "service_lost True" in result.stdout
    warnings = [x for x in result.stderr.splitlines() if "W&B's service process stopped" in x]
    assert len(warnings) == 1, result.stderr[-3000:]  # once, not once per call
