"""The metric names a run logs are the ones the model declares (`VAE.metric_keys`),
which the pre-flight checks read to refuse a monitor or an optimised metric that no
run would log. For every objective in conf/objective/ (read from the folder, not a
hand list) a smoke run logs every step; the CSV history's columns are compared with
what the trained model declares."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from helpers import REPO, objective_choice
from in_process import call_train

OBJECTIVES = sorted(p.stem for p in (REPO / "conf" / "objective").glob("*.yaml"))


def logged_keys(run: Path) -> set[str]:
    with (run / "csv" / "metrics.csv").open() as handle:
        header = next(csv.reader(handle))
    return set(header) - {"epoch", "step"}


def smoke_run(choice: str | list[str], tmp_path: Path):
    """A smoke run with `choice` (one override or several), logging every step: its
    model and what it logged."""
    from vaelab.runs.trained import load_vae

    run = tmp_path / "run"
    result = call_train(
        *([choice] if isinstance(choice, str) else choice),
        "debug=smoke",
        "logger=csv",
        "trainer.log_every_n_steps=1",
        "eval.disentanglement.enabled=false",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    model, _ = load_vae(run / "checkpoints" / "last.ckpt")
    return model, logged_keys(run)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_a_run_logs_exactly_the_keys_its_model_declares(objective: str, tmp_path: Path) -> None:
    model, logged = smoke_run(objective_choice(objective), tmp_path)
    declared = set(model.metric_keys())
    assert logged == declared, (sorted(logged - declared), sorted(declared - logged))
    assert {"train/loss", "val/nelbo", "test/nll_iwae"} <= declared
    # the KL per dimension where it is analytic (a VQ-VAE's is a constant: none)
    assert ("val/kl_dim/0" in declared) == model.analytic_kl
    assert {f"train/{term}" for term in model.objective.terms} <= declared


@pytest.mark.parametrize("latent", ["prior=mog", "posterior=iaf"])
def test_a_model_without_a_closed_form_kl_logs_no_kl_per_dimension(
    latent: str, tmp_path: Path
) -> None:
    """A learned prior or a flow posterior: the KL is single-sample, so there is no
    `kl_dim/<d>`; what the run logs is still exactly what the model declares."""
    model, logged = smoke_run(latent, tmp_path)
    declared = set(model.metric_keys())
    assert logged == declared
    assert {"val/kl", "test/nll_iwae", "test/active_units"} <= declared
    assert not any("kl_dim" in key for key in declared)
