"""vaelab's Optuna sweeper (Optuna 4): its search-space syntax, a study in the sweep
folder that a second run continues, failed trials, and one study shared by two workers
on a real PostgreSQL server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
from helpers import REPO, SMOKE_MLP, run_train
from hydra.core.override_parser.overrides_parser import OverridesParser
from in_process import call_train

from vaelab.launch.optuna import ENDED, distribution_of, search_space

TRIAL = list(SMOKE_MLP)
ENV = {"WANDB_MODE": "disabled"}


def test_the_search_space_syntax_of_hydra_optuna_sweeper() -> None:
    def dist(line: str):
        return distribution_of(OverridesParser.create().parse_override(line))

    d = optuna.distributions
    assert dist("x=choice(4, 8, 16)") == d.CategoricalDistribution([4, 8, 16])
    assert dist("x=interval(0.1, 2.0)") == d.FloatDistribution(0.1, 2.0)
    assert dist("x=tag(log, interval(1e-4, 1e-2))") == d.FloatDistribution(1e-4, 1e-2, log=True)
    assert dist("x=int(interval(1, 8))") == d.IntDistribution(1, 8)
    assert dist("x=range(1, 9, 2)") == d.IntDistribution(1, 7, step=2)  # 1, 3, 5, 7
    space, fixed = search_space({"beta": "interval(0.5, 4.0)", "seed": "3"}, ["beta=choice(1,2)"])
    assert space == {"beta": d.CategoricalDistribution([1, 2])}  # the command line wins
    assert fixed == ["seed=3"]


def study(sweep: Path, name: str = "vaelab", storage: str | None = None) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage or f"sqlite:///{sweep}/optuna.db")


def counted(s: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in s.get_trials() if t.user_attrs.get(ENDED)]


def test_a_search_in_its_sweep_folder_continues_to_n_trials(tmp_path: Path) -> None:
    sweep = tmp_path / "search"
    base = ["hparams_search=optuna", *TRIAL, f"hydra.sweep.dir={sweep}"]
    first = call_train(*base, "hydra.sweeper.n_trials=2", env=ENV)
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(counted(study(sweep))) == 2
    results = (sweep / "optimization_results.yaml").read_text()
    assert "best_params:" in results and "n_complete: 2" in results
    again = call_train(*base, "hydra.sweeper.n_trials=3", env=ENV)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = counted(study(sweep))
    assert len(trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len(list(sweep.glob("[0-9]*_*"))) == 3  # the first two were not run again


def test_a_failed_trial_is_recorded_and_the_search_goes_on(tmp_path: Path) -> None:
    sweep = tmp_path / "search"
    result = run_train(
        "hparams_search=optuna",
        *TRIAL,
        "trainer.max_epochs=2",
        "hydra.sweeper.n_trials=3",
        "+hydra.sweeper.params.model.optimizer.lr='choice(1e9)'",  # every trial diverges
        f"hydra.sweep.dir={sweep}",
        env=ENV,
    )
    assert result.returncode == 1, result.stderr[-3000:]  # the summary says they failed
    trials = counted(study(sweep))
    assert len(trials) == 3 and all(t.state == optuna.trial.TrialState.FAIL for t in trials)
    assert "3 of 3 jobs failed" in result.stderr


def test_two_workers_share_one_study_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    n_trials = 4
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(REPO / "src" / "train.py"),
                "hparams_search=optuna",
                *TRIAL,
                f"hydra.sweeper.n_trials={n_trials}",
                f"hydra.sweeper.storage={postgres_url}",
                "hydra.sweeper.study_name=shared",
                f"hydra.sweep.dir={tmp_path / f'worker{w}'}",
            ],
            cwd=REPO,
            env={**os.environ, **ENV},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in (0, 1)
    ]
    for worker in workers:
        assert worker.wait(timeout=600) == 0, worker.stderr.read()[-3000:]
    shared = study(tmp_path, "shared", postgres_url)
    complete = [t for t in shared.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == n_trials == len(counted(shared))
    # No trial ran twice: every job folder of both workers is its own trial number.
    folders = [p.name for w in (0, 1) for p in (tmp_path / f"worker{w}").glob("[0-9]*_*")]
    numbers = sorted(int(name.split("_")[0]) for name in folders)
    assert numbers == sorted(t.number for t in complete)
    assert len(set(numbers)) == len(numbers) == n_trials
