"""vaelab's Optuna sweeper: a Hydra sweeper on Optuna's ask-and-tell API (Optuna 4).

hydra-optuna-sweeper, the plugin users know, pins Optuna below 3 (2.10, from 2021),
whose database storage breaks on SQLAlchemy 2. This sweeper keeps its interface:
`hparams_search=optuna`, the same keys under `hydra.sweeper` (sampler, direction,
study_name, storage, n_trials, n_jobs, params) and its search-space syntax
(`choice(4, 8, 16)`, `interval(0.1, 1.0)`, `int(interval(1, 8))`, `range(1, 9, 2)`,
`tag(log, interval(1e-4, 1e-2))`), and writes `optimization_results.yaml`.

- **Storage:** SQLite in the sweep folder by default (`<sweep>/optuna.db`), so a killed
  search continues where it stopped when the same command runs again with
  `hydra.sweep.dir=<that folder>`; any SQLAlchemy URL shares one study between workers
  (`hydra.sweeper.storage=postgresql://...`, e.g. two SLURM array tasks).
- **Exactly `n_trials`:** trials that ran to their end (complete, or failed; marked
  with the user attribute `vaelab_ended`) count; a worker asks for a trial only while
  fewer than `n_trials` have ended or are running, and a trial asked beyond the limit
  by a racing worker is given back unrun (told failed, unmarked), so the study ends
  with `n_trials` counted trials and none run twice.
- **A failed trial** (the job raised: a NaN stop, a bad value) is told failed and the
  search goes on. Trials left running by a killed search on the default SQLite storage
  are told failed when it continues, unmarked: not counted, their place taken by new
  trials.
- Pruning is off: every trial trains to its end.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
)
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from typing_extensions import override

from vaelab.config.constraints import PositiveInt

log = logging.getLogger(__name__)

#: User attribute set on each trial this sweeper ran to its end (complete or failed):
#: the trials that count towards n_trials.
ENDED = "vaelab_ended"


def distribution_of(override: Override) -> Any:
    """The Optuna distribution of one search-space override (`beta=interval(0.1, 4)`)."""
    import optuna.distributions as d

    value = override.value()
    log_scale = "log" in getattr(value, "tags", set())
    if isinstance(value, ChoiceSweep):
        # parsed elements, lists and dicts included: Optuna checks the choices itself
        choices: list[Any] = list(value.list)
        return d.CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        # set by the parser (`range(stop)` starts at 0), though annotated Optional
        start, stop = cast("int | float", value.start), cast("int | float", value.stop)
        step = value.step
        if all(isinstance(x, int) for x in (start, stop, step)):
            high = start + (stop - start - 1) // step * step  # range's last value
            return d.IntDistribution(int(start), int(high), step=int(step), log=log_scale)
        return d.FloatDistribution(start, stop, step=step, log=log_scale)
    if isinstance(value, IntervalSweep):
        # set by the parser; ints after `int(interval(...))`, though annotated float
        begin, end = cast("int | float", value.start), cast("int | float", value.end)
        if "int" in value.tags or (isinstance(begin, int) and isinstance(end, int)):
            return d.IntDistribution(int(begin), int(end), log=log_scale)
        return d.FloatDistribution(float(begin), float(end), log=log_scale)
    return None  # a fixed value: passed to every trial as it is


def search_space(
    params: dict[str, Any] | None, arguments: Sequence[str]
) -> tuple[dict[str, Any], list[str]]:
    """(key -> distribution, fixed overrides) from `hydra.sweeper.params` and the
    command line's sweep arguments (which win for a key both name)."""
    lines = [f"{k}={v}" for k, v in _flat(params or {}).items()]
    parsed = OverridesParser.create().parse_overrides([*lines, *arguments])
    space: dict[str, Any] = {}
    fixed: list[str] = []
    for item in parsed:  # (not `override`: the decorator's name)
        distribution = distribution_of(item) if item.is_sweep_override() else None
        key = item.get_key_element()
        if distribution is None:
            fixed.append(cast(str, item.input_line))  # set for a parsed override
            space.pop(key, None)
        else:
            space[key] = distribution
    return space, fixed


def _flat(params: Any, prefix: str = "") -> dict[str, Any]:
    """`{"model": {"optimizer": {"lr": ...}}}` (a command line's nested key) and
    `{"model.optimizer.lr": ...}` (the YAML's dotted key) alike as dotted keys."""
    flat: dict[str, Any] = {}
    for key, value in dict(params).items():
        if isinstance(value, dict | DictConfig):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class OptunaSweeper(Sweeper):
    """See the module docstring; the arguments are `hydra.sweeper`'s keys."""

    def __init__(
        self,
        sampler: Any = None,
        direction: Literal["minimize", "maximize"] = "minimize",
        study_name: str = "vaelab",
        storage: str | None = None,
        n_trials: PositiveInt = 20,
        n_jobs: PositiveInt = 1,
        params: dict[str, Any] | None = None,
    ) -> None:
        # Ranges checked before the sweep starts (vaelab.config.schema, from these annotations).
        self.sampler_config = sampler
        self.direction = direction
        self.study_name = study_name
        self.storage = storage
        self.n_trials = int(n_trials)
        self.n_jobs = int(n_jobs)
        self.params = dict(params) if params else {}
        self.config: DictConfig | None = None
        self.launcher: Any = None

    @override
    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ----------------------------------------------------------------- the study
    def _storage_url(self, sweep_dir: Path) -> str:
        return self.storage or f"sqlite:///{sweep_dir / 'optuna.db'}"

    def _study(self, sweep_dir: Path) -> Any:
        import optuna
        from hydra.utils import instantiate

        # Hydra builds the sweeper's nested configs itself: the sampler may come built.
        sampler = self.sampler_config
        if isinstance(sampler, DictConfig | dict):
            sampler = instantiate(sampler)
        study = _create_study(
            study_name=self.study_name,
            storage=self._storage_url(sweep_dir),
            sampler=sampler,
            direction=self.direction,
            load_if_exists=True,
        )
        if self.storage is None:
            # One process owns the default SQLite study: what it finds running was left
            # by a killed search.
            for trial in study.get_trials(deepcopy=False):
                if trial.state == optuna.trial.TrialState.RUNNING:
                    log.info("trial %d was left running by a killed search", trial.number)
                    study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        return study

    @staticmethod
    def _counted(study: Any) -> tuple[int, list[int]]:
        """(trials that ended and count, numbers of the trials running now)."""
        from optuna.trial import TrialState

        ended, running = 0, []
        for trial in study.get_trials(deepcopy=False):
            if trial.state == TrialState.RUNNING:
                running.append(trial.number)
            elif trial.user_attrs.get(ENDED):
                ended += 1
        return ended, running

    def _ask_batch(self, study: Any, space: dict[str, Any]) -> list[Any]:
        """Up to n_jobs trials, none beyond n_trials (see the module docstring)."""
        from optuna.trial import TrialState

        ended, running = self._counted(study)
        room = self.n_trials - ended - len(running)
        trials = []
        for _ in range(min(self.n_jobs, room)):
            trial = study.ask(fixed_distributions=space)
            ended, running = self._counted(study)
            allowed = self.n_trials - ended
            if sorted(running).index(trial.number) >= allowed:
                study.tell(trial, state=TrialState.FAIL)  # unmarked: given back unrun
                break
            trials.append(trial)
        return trials

    # ------------------------------------------------------------------- the sweep
    @override
    def sweep(self, arguments: list[str]) -> Any:
        from optuna.trial import TrialState

        assert self.config is not None and self.launcher is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        space, fixed = search_space(self.params, arguments)
        study = self._study(sweep_dir)
        url = self._storage_url(sweep_dir)
        log.info("Optuna study %r (%s): %d trials", self.study_name, url, self.n_trials)
        while trials := self._ask_batch(study, space):
            overrides = [
                tuple([*fixed, *(f"{k}={v}" for k, v in trial.params.items())]) for trial in trials
            ]
            results = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
            for trial, result in zip(trials, results, strict=True):
                value = _trial_value(result)
                trial.set_user_attr(ENDED, True)
                if value is None:
                    study.tell(trial, state=TrialState.FAIL)
                    log.warning("trial %d failed; the search goes on", trial.number)
                else:
                    study.tell(trial, value)
        self._write_results(study, sweep_dir)
        return None

    def _write_results(self, study: Any, sweep_dir: Path) -> None:
        from optuna.trial import TrialState

        complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        results: dict[str, Any] = {"name": "optuna", "n_complete": len(complete)}
        if complete:
            results["best_params"] = dict(study.best_params)
            results["best_value"] = float(study.best_value)
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
        log.info("best: %s", results.get("best_params"))


def _create_study(**kwargs: Any) -> Any:
    """`optuna.create_study`, tried again when two workers starting together on a fresh
    database race to create its tables or the study (one of them then sees the other's
    half-made schema and fails; a second try finds it whole)."""
    import time

    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(5):
        try:
            return optuna.create_study(**kwargs)
        except (SQLAlchemyError, optuna.exceptions.DuplicatedStudyError):
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _trial_value(result: Any) -> float | None:
    """The job's returned metric, or None for a failed job or a non-finite value."""
    from hydra.core.utils import JobStatus

    if result.status != JobStatus.COMPLETED:
        return None
    value = result.return_value
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
