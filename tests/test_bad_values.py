"""The generated bad-value sweep: every leaf key of every option in conf/ (walked from
the files by `tests/bad_values.py`, not a hand list) given a value of the wrong type
and, for a number, one out of range. Each command line must stop in the pre-flight
checks with exit code 2 and one line on stderr, `vaelab: error: <key>...`, no
traceback, nothing created in its working folder.

The checks are the first thing `src/train.py` does; a command line they let through
would go on to run, so a case whose checks pass fails here. They run in this process
(`in_process.call_preflight`): a few hundred command lines in seconds each group.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_values import Case, all_cases, all_leaves, bad_values, cases_of, option_files
from in_process import call_preflight

#: The train config's own keys, then every option file: the cases are made per option
#: when its test runs (composing them all takes seconds, too long for collection).
OPTIONS = ["train.yaml", *(f"{group}={option}" for group, option, _ in option_files())]


def files_below(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def broken_promise(case: Case, folder: Path) -> str | None:
    """What the command line did instead of the one-line contract, or None."""
    before = files_below(folder)
    try:
        result = call_preflight("train", *case.overrides, cwd=folder)
    except Exception as exc:  # would be a traceback from the real command
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    lines = result.stderr.strip().splitlines()
    if result.returncode != 2:
        return f"exit {result.returncode}: {' | '.join(lines)[:200] or 'nothing said'}"
    if len(lines) != 1 or not lines[0].startswith("vaelab: error: "):
        return f"{len(lines)} lines on stderr: {' | '.join(lines)[:200]}"
    if "Traceback" in result.stderr or result.stdout.strip():
        return f"more than one line: {result.stdout[:200]}"
    created = sorted(set(files_below(folder)) - set(before))
    if created:
        return f"created {created[:5]}"
    return None


@pytest.mark.parametrize("option", OPTIONS)
def test_every_wrong_value_of_an_option_is_one_line(option: str, tmp_path: Path) -> None:
    broken = {}
    for case in cases_of(option):
        problem = broken_promise(case, tmp_path)
        if problem is not None:
            broken[case.id] = problem
    assert broken == {}, "\n".join(f"{k}\n    -> {v}" for k, v in broken.items())


def test_the_sweep_covers_every_option_of_every_group() -> None:
    """Every option file under conf/ gives the sweep at least one case, and the train
    config's own keys are cases: a new option or key is checked without a new test."""
    found = all_cases()
    walked = all_leaves()
    options = {f"{group}={option}" for group, option, _ in option_files()}
    assert {o.lstrip("+") for o in walked if o} == options
    rules = {(c.receiver, c.key, c.kind) for c in found}
    for option, option_keys in walked.items():
        for leaf in option_keys:  # a case of its own, or one of an earlier option
            for _, kind in bad_values(leaf.value):
                assert (leaf.receiver, leaf.key, kind) in rules, (option, leaf.key)
    assert {"seed", "beta", "latent_dim", "optimized_metric"} <= {c.key for c in found}
    assert "model.encoder.channels" in {c.key for c in found}  # a nested group's key
    assert len(found) >= 400
    assert {c.kind for c in found} == {"wrong type", "out of range"}
    assert set(OPTIONS) == {"train.yaml", *options}
