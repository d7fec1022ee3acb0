"""Which tier a test belongs to, read off the code it runs (conftest applies the markers).

`make test-fast` runs the tests that start no child process and no service; `make test`
runs them all. Nobody marks a test by hand: a test is put in a tier by what its own
function, the fixtures it asks for and the test-suite helpers they call refer to.

- `slurm`: asks for the `slurm_cluster` fixture (a SLURM cluster, jobs on it).
- `postgres`: asks for the `postgres_url` fixture (a PostgreSQL server).
- `integration`: starts a child process: refers to `subprocess` (`Popen`,
  `multiprocessing`) or to a helper that runs an app as a process
  (`helpers.run_app`, `run_train`, `run_sweep`, `kill_train_when`); or runs the
  generated bad-value sweep (`bad_values.cases_of`: hundreds of command lines through
  the pre-flight checks) or the docs' commands (`test_docs.run_documented_command`),
  minutes in all.
- `ddp`: an integration test whose strings name a DDP trainer (`trainer=ddp_cpu`): a
  DDP process group in its child processes.
- `bench`: an integration test that runs a script under `bench/`.

The in-process runner (tests/in_process.py) refuses a DDP trainer or a launcher that
starts processes, so that nothing the fast tier runs starts a DDP group or a job.

A test's tiers are a superset of what it does, never less: a helper that refers to
`subprocess` in a branch the test never takes still puts the test in `integration`.
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent

#: Helpers of tests/helpers.py that start `python src/<app>.py` as a child process.
CHILD_PROCESS_HELPERS = frozenset({"run_app", "run_train", "run_sweep", "kill_train_when"})
#: Helpers of tests/ that run many command lines in this process: the generated
#: bad-value sweep, and every command the docs give (smoke runs, minutes in all).
SWEEP_HELPERS = frozenset({"cases_of", "run_documented_command"})
#: Names through which test code starts a process of its own.
PROCESS_NAMES = frozenset({"subprocess", "Popen", "multiprocessing"})
#: A DDP trainer or strategy in an override or argument (`trainer=ddp_cpu`, `ddp`).
DDP = re.compile(r"\bddp(?:_cpu|_spawn)?\b")
#: Fixtures that start or need a service, and the marker each gives.
SERVICE_FIXTURES = {"slurm_cluster": "slurm", "postgres_url": "postgres"}
TIERS = ("integration", "slurm", "postgres", "ddp", "bench")
#: The pytest -m expression of `make test-fast`.
FAST = " and ".join(f"not {tier}" for tier in TIERS)


def tiers(
    test: Callable[..., object],
    fixtures: Iterable[Callable[..., object]],
    uses: Iterable[str],
    parameters: Iterable[object] = (),
) -> set[str]:
    """The markers of a test function, given the functions of the fixtures it uses, the
    names of all its fixtures (`uses`) and the values it is parametrised with."""
    names: set[str] = set()
    strings: set[str] = set()
    seen: set[int] = set()
    _strings_in(list(parameters), strings)
    for function in (test, *fixtures):
        _collect(function, names, strings, seen)
    found = {SERVICE_FIXTURES[f] for f in uses if f in SERVICE_FIXTURES}
    if names & SWEEP_HELPERS:
        found.add("integration")
    if names & PROCESS_NAMES or names & CHILD_PROCESS_HELPERS:
        found.add("integration")
        if any(DDP.search(s) for s in strings):
            found.add("ddp")
        if any(s.startswith("bench/") for s in strings):
            found.add("bench")
    return found


def _collect(function: object, names: set[str], strings: set[str], seen: set[int]) -> None:
    """Names and string constants in `function`'s code, and in the code of the functions
    of tests/ that it names (the test suite's own helpers), transitively."""
    function = inspect.unwrap(function)  # type: ignore[arg-type]
    code = getattr(function, "__code__", None)
    if code is None or id(code) in seen:
        return
    seen.add(id(code))
    own_globals = getattr(function, "__globals__", {})
    for name in _code_names(code, strings):
        names.add(name)
        target = own_globals.get(name)
        if isinstance(target, types.FunctionType) and _defined_in_tests(target):
            _collect(target, names, strings, seen)
        else:
            _strings_in(target, strings)  # module constants: override lists, paths


def _code_names(code: types.CodeType, strings: set[str]) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):  # nested functions, lambdas, comprehensions
            names |= _code_names(const, strings)
        else:
            _strings_in(const, strings)
    return names


def _strings_in(value: object, strings: set[str]) -> None:
    """The strings in a constant: itself, or those of a list, tuple or set, nested."""
    if isinstance(value, str):
        strings.add(value)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _strings_in(item, strings)


def _defined_in_tests(function: types.FunctionType) -> bool:
    source = inspect.getsourcefile(function)
    return source is not None and Path(source).resolve().is_relative_to(TESTS)


#: The order tests start in: the tiers that wait on a service or on child processes first,
#: so that with two workers (make test) their waiting overlaps the in-process tests.
START_ORDER = ("slurm", "postgres", "ddp", "bench", "integration")


def start_order(items: list[Any]) -> list[Any]:
    """Marked items in the order they start: each module at the place of its earliest
    tier in START_ORDER (in-process modules last), its own tests together and in file
    order, so that a module-scoped fixture is made once also when run serially."""

    def place(item: Any) -> int:
        names = {mark.name for mark in item.iter_markers()}
        return next((i for i, tier in enumerate(START_ORDER) if tier in names), len(START_ORDER))

    module_place: dict[str, int] = {}
    for item in items:
        module = item.module.__name__
        module_place[module] = min(module_place.get(module, len(START_ORDER)), place(item))
    return sorted(items, key=lambda item: module_place[item.module.__name__])


def worker_group(item: object) -> str | None:
    """The group of tests that must run on one test worker (pytest-xdist's loadgroup), or
    None for a test that may run on any: a module's tests share a worker when they use a
    module-scoped fixture (a trained run made once for the module), and the tests of a
    service share one (one SLURM cluster, its jobs queued behind each other)."""
    service = sorted(SERVICE_FIXTURES[f] for f in item.fixturenames if f in SERVICE_FIXTURES)  # type: ignore[attr-defined]
    if service:
        return service[0]
    definitions = _fixture_definitions(item)
    if any(defs and defs[-1].scope == "module" for defs in definitions.values()):
        return item.module.__name__  # type: ignore[attr-defined]
    return None


def fixture_functions(item: object) -> list[Callable[..., object]]:
    """The functions of the fixtures a collected test item uses.

    pytest has no public API for this: it reads `item._fixtureinfo.name2fixturedefs`
    (`_pytest.fixtures.FuncFixtureInfo`, the fixture definitions pytest resolved for
    the item at collection; the last of each name is the one that applies).
    tests/test_tiers.py fails if an upgrade of pytest removes it.
    """
    return [defs[-1].func for defs in _fixture_definitions(item).values() if defs]


def _fixture_definitions(item: object) -> dict[str, Any]:
    """pytest's resolved fixture definitions of an item, by name: the one place this
    module reads `item._fixtureinfo.name2fixturedefs` (see fixture_functions)."""
    return item._fixtureinfo.name2fixturedefs  # type: ignore[attr-defined, no-any-return]


def item_tiers(item: object) -> set[str]:
    """The tiers of a collected pytest test function."""
    callspec = getattr(item, "callspec", None)
    parameters = list(callspec.params.values()) if callspec is not None else []
    return tiers(
        item.function,  # type: ignore[attr-defined]
        fixture_functions(item),
        item.fixturenames,  # type: ignore[attr-defined]
        parameters,
    )
