"""`python src/eval.py ckpt_path=<sweep folder>` evaluates every run of a finished sweep
in one command, and `vaelab.compare` then shows their eval.json numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_fixtures import damage_tensor_bytes
from helpers import run_app
from in_process import call_app, call_train

from vaelab.compare import compare

SWEEP = [
    "-m",
    "beta=1,4",
    "debug=smoke",
    "data.resolution=32",
    "model/encoder=mlp",
    "model/decoder=mlp",
    "latent_dim=3",
]
EVAL = [
    "data.n_test=64",
    "eval.iwae_k=2",
    "eval.disentanglement.metrics=[mig,dci,sap]",
    "eval.disentanglement.mig.n_samples=500",
    "eval.disentanglement.dci.n_train=200",
    "eval.disentanglement.dci.n_test=100",
    "eval.disentanglement.dci.n_estimators=5",
    "eval.disentanglement.sap.n_train=200",
    "eval.disentanglement.sap.n_test=100",
]
ENV = {"WANDB_MODE": "disabled"}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("eval_sweep") / "sweep"
    result = call_train(*SWEEP, f"hydra.sweep.dir={folder}", env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def reports(sweep: Path) -> dict[str, dict]:
    return {
        path.parent.parent.name: json.loads(path.read_text())
        for path in sorted(sweep.glob("*/checkpoints/eval.json"))
    }


def test_one_command_evaluates_every_run_of_a_sweep(sweep: Path, tmp_path: Path) -> None:
    result = call_app("eval", f"ckpt_path={sweep}", *EVAL, f"hydra.run.dir={tmp_path}", env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    found = reports(sweep)
    assert len(found) == 2
    for name, report in found.items():
        assert report["checkpoint"].endswith(f"{name}/checkpoints/best.ckpt")
        assert report["disentanglement"]["protocol"] == "dlib"
        assert set(report["disentanglement"]["settings"]["metrics"]) == {"mig", "dci", "sap"}
        assert 0 <= report["metrics"]["mig"] <= 1
    # compare now shows the eval.json numbers, and says they are the dlib protocol's.
    comparison = compare([sweep], plots=False, save_csv=False)
    assert len(comparison.runs) == 2 and "test/mig" in comparison.metrics
    for run in comparison.runs:
        assert run.sources["test/mig"] == "eval.json" and run.protocol == "dlib"
        report = found[run.path.name]
        assert run.metrics["test/mig"] == pytest.approx(report["metrics"]["mig"])


def test_a_damaged_run_is_reported_and_the_others_are_still_evaluated(
    sweep: Path, tmp_path: Path
) -> None:
    for path in sweep.glob("*/checkpoints/eval.json"):
        path.unlink()
    first, second = sorted(sweep.glob("*/checkpoints/best.ckpt"))
    damage_tensor_bytes(first)
    result = run_app("eval", f"ckpt_path={sweep}", *EVAL, f"hydra.run.dir={tmp_path}", env=ENV)
    assert result.returncode != 0
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert "1 of 2 checkpoints could not be evaluated" in last and str(first) in last
    assert list(reports(sweep)) == [second.parent.parent.name]


def test_a_folder_without_run_checkpoints_is_one_line(tmp_path: Path) -> None:
    result = run_app("eval", f"ckpt_path={tmp_path}", env=ENV, timeout=60)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert f"no run checkpoints below {tmp_path}" in lines[0]
