"""The test tiers: each test is marked by what it runs (tests/tiers.py), and `make
test-fast` leaves out exactly the tiers that start a process or a service."""

from __future__ import annotations

import re
import subprocess
import types

import pytest
import test_bad_input
import test_objectives
import test_optuna_sweeper
import test_reliability
import test_resume
import tiers
from helpers import REPO, run_sweep
from test_compare import run_compare

# Sample tests, compiled from text: the tests below hand them to tiers.tiers, and do not
# refer to what they start by name (which would put these tests in those tiers).
SAMPLES = """
def starts_an_app():
    run_sweep("debug=smoke")

def starts_a_process():
    subprocess.run(["true"], check=True)

def calls_a_helper_that_does():
    run_compare("--help")

def computes():
    assert sum([1, 2]) == 3

def trains_with_ddp():
    run_sweep("trainer=ddp_cpu")

def composes_ddp():
    assert "trainer=ddp_cpu"

def runs_a_benchmark():
    subprocess.run(["python", "bench/speed.py", "--quick"], check=True)

def sweeps(overrides):
    run_sweep(*overrides)

def names_a_strategy_that_is_not_ddp():
    run_sweep("trainer.strategy=ddp_wrong")

def reads_a_bench_script():
    return open("bench/test_suite.py").read()

def starts_a_popen():
    Popen(["true"]).wait()
"""
SAMPLE = {
    "subprocess": subprocess,
    "Popen": subprocess.Popen,
    "run_sweep": run_sweep,
    "run_compare": run_compare,
}
exec(compile(SAMPLES, "<sample tests>", "exec"), SAMPLE)


def test_a_test_that_starts_an_app_or_a_process_is_integration() -> None:
    assert tiers.tiers(SAMPLE["starts_an_app"], [], []) == {"integration"}
    assert tiers.tiers(SAMPLE["starts_a_process"], [], []) == {"integration"}
    assert tiers.tiers(SAMPLE["calls_a_helper_that_does"], [], []) == {"integration"}
    assert tiers.tiers(SAMPLE["computes"], [], []) == set()
    through_a_fixture = tiers.tiers(SAMPLE["computes"], [SAMPLE["starts_an_app"]], [])
    assert through_a_fixture == {"integration"}


def test_services_ddp_and_benchmarks_get_their_own_tiers() -> None:
    assert tiers.tiers(SAMPLE["trains_with_ddp"], [], []) == {"integration", "ddp"}
    assert tiers.tiers(SAMPLE["composes_ddp"], [], []) == set()  # a config, no process
    assert tiers.tiers(SAMPLE["runs_a_benchmark"], [], []) == {"integration", "bench"}
    assert tiers.tiers(SAMPLE["computes"], [], ["slurm_cluster"]) == {"slurm"}
    assert tiers.tiers(SAMPLE["computes"], [], ["postgres_url"]) == {"postgres"}
    # A parametrised case is marked by its own values: the DDP case only.
    sweeps = SAMPLE["sweeps"]
    assert tiers.tiers(sweeps, [], [], [["trainer=ddp_cpu"]]) == {"integration", "ddp"}
    assert tiers.tiers(sweeps, [], [], [["trainer=cpu"]]) == {"integration"}
    # Only what runs counts: a bad strategy name is no DDP group, reading a script no run.
    assert tiers.tiers(SAMPLE["names_a_strategy_that_is_not_ddp"], [], []) == {"integration"}
    assert tiers.tiers(SAMPLE["reads_a_bench_script"], [], []) == set()
    assert tiers.tiers(SAMPLE["starts_a_popen"], [], []) == {"integration"}


def test_the_suites_own_tests_fall_in_the_tiers_they_should() -> None:
    bad_input = test_bad_input.test_bad_value_stops_with_one_line_and_creates_nothing
    assert "integration" in tiers.tiers(bad_input, [], [])
    ddp = test_reliability.test_multirun_ddp_runs_one_ddp_group_per_job
    assert tiers.tiers(ddp, [], []) == {"integration", "ddp"}
    shared_study = test_optuna_sweeper.test_two_workers_share_one_study_on_postgresql
    assert tiers.tiers(shared_study, [], ["postgres_url", "tmp_path"]) == {
        "integration",
        "postgres",
    }
    # In process: the app runs, no child does.
    resumed = test_resume.test_an_optimiser_setting_given_on_resume_is_applied_and_said
    assert tiers.tiers(resumed, [], ["tmp_path", "trained_run"]) == set()
    assert (
        tiers.tiers(test_objectives.test_permute_dims_shuffles_each_dimension_on_its_own, [], [])
        == set()
    )


def test_a_module_starts_at_its_earliest_tier_with_its_tests_together() -> None:
    class Item:
        def __init__(self, module: str, tier: str | None) -> None:
            self.module = types.SimpleNamespace(__name__=module)
            self.marks = [pytest.mark.integration.mark] if tier else []
            self.name = f"{module}:{tier}"

        def iter_markers(self):
            return iter(self.marks)

    items = [Item("a", None), Item("b", None), Item("b", "integration"), Item("a", None)]
    # b has a test that starts a process: all of b first, in file order; then a.
    assert [i.name for i in tiers.start_order(items)] == [
        "b:None",
        "b:integration",
        "a:None",
        "a:None",
    ]


def test_the_fixtures_of_a_collected_test_are_found(
    request: pytest.FixtureRequest, tmp_path
) -> None:
    """Guards tiers.fixture_functions, which reads pytest's FuncFixtureInfo."""
    found = {f.__name__ for f in tiers.fixture_functions(request.node)}
    assert "tmp_path" in found
    assert tiers.item_tiers(request.node) == set()
    assert request.node.get_closest_marker("integration") is None


def test_make_test_fast_leaves_out_every_tier() -> None:
    makefile = (REPO / "Makefile").read_text()
    (expression,) = re.findall(r'^FAST_TIERS := "(.*)"$', makefile, re.M)
    assert expression == tiers.FAST
    pyproject = (REPO / "pyproject.toml").read_text()
    for tier in tiers.TIERS:
        assert f'"{tier}: ' in pyproject, tier  # registered (--strict-markers)


def test_every_recorded_suite_run_passed_and_none_ran_less() -> None:
    """bench/results/test_suite.json, whose table bench/report.py puts in
    docs/developing.md (tests/test_report.py keeps the two in sync)."""
    import json

    results = json.loads((REPO / "bench" / "results" / "test_suite.json").read_text())
    before = results["before"]["full"]
    for label, records in results.items():  # every run recorded passed, and none ran less
        for tier, record in records.items():
            assert record["failed"] == 0, (label, tier)
            if tier != "fast":
                assert record["tests"] >= before["tests"], (label, tier)
                assert record["asserts_in_tests"] >= before["asserts_in_tests"], (label, tier)
