"""How long the test suite takes, tier by tier, and which tests cost the time. Run it
alone on the machine: two CPU-heavy processes at once slow each other several-fold.

    python bench/test_suite.py --label after fast full        # make test-fast, make test
    python bench/test_suite.py --label after ci               # bash .ci/run on a fresh clone
    python bench/test_suite.py --label before ci --junit FILE --wall-s S --commit SHA
    python bench/test_suite.py --label before full --junit FILE --commit SHA
                                                              # a run timed elsewhere
    python bench/test_suite.py --table                        # the README's table

Each measured tier is one command, timed from its start to its end:

- `fast`: `make test-fast` in this checkout (the tests that start no child process and
  no service);
- `full`: `make test` in this checkout (every test; the services the environment
  provides: SLURM when `SLURM_CONF` names a cluster, PostgreSQL when `initdb` exists);
- `ci`: `bash .ci/run` on a fresh clone of this checkout's HEAD, placed beside
  `../shared` as CI places it: installing the virtual environment (torch first),
  starting the SLURM cluster, the whole suite, lint and type checks. The `make test`
  inside it is recorded as `full` too (pytest's session time), unless `full` is
  measured on its own in the same call.

pytest writes a JUnit XML file for each; from it the record keeps the counts (tests,
passed, failed, skipped), the 10 slowest tests and the time per test file. The number
of `assert` statements under tests/ at the measured commit is counted too, so that a
faster suite can be checked to assert no less. Results go to
bench/results/test_suite.json under `--label`, a record per tier.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "test_suite.json"
SLOWEST = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tiers", nargs="*", help="fast, full, ci")
    parser.add_argument("--label", help="e.g. before, after")
    parser.add_argument("--table", action="store_true", help="print the README's table")
    parser.add_argument("--junit", type=Path, help="record this JUnit file instead of running")
    parser.add_argument("--wall-s", type=float, help="with --junit: the run's wall time")
    parser.add_argument("--commit", help="with --junit: the commit it ran (default HEAD)")
    parser.add_argument("--note", default="", help="how the run was made, for the record")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.out.read_text())))
        return
    if not args.tiers or not args.label or set(args.tiers) - {"fast", "full", "ci"}:
        parser.error("name the tiers to measure (fast, full, ci) and a --label")
    if args.junit is not None and len(args.tiers) != 1:
        parser.error("--junit records one tier")

    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for tier in args.tiers:
        if args.junit is not None:
            commit = args.commit or _head()
            # Without --wall-s: pytest's own session time, as the JUnit file records it.
            wall = args.wall_s if args.wall_s is not None else _session_s(args.junit)
            record = _record(tier, args.junit, wall, commit, args.note)
            records = {tier: record}
        else:
            records = measure(tier, args.note)
            if "full" in args.tiers:
                records = {tier: records[tier]}  # `full` is measured on its own
        for name, record in records.items():
            results.setdefault(args.label, {})[name] = record
            print(f"{args.label} {name}: {_summary_line(record)}", file=sys.stderr)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


TABLE_COLUMNS = (
    ("fast", "`make test-fast`"),
    ("full", "`make test`"),
    ("ci", "`bash .ci/run`, fresh clone"),
)


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The README's table: each label's wall time per tier, and its counts."""
    header = ["", *(name for _, name in TABLE_COLUMNS), "tests", "`assert`s in tests/"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, records in results.items():
        first = next(iter(records.values()))
        cells = [f"{label} ({first['commit']}, {first['measured_at'][:10]})"]
        for tier, _ in TABLE_COLUMNS:
            cells.append(_minutes(records[tier]["wall_s"]) if tier in records else "no such tier")
        full = records.get("full", first)
        cells += [str(full["tests"]), str(full["asserts_in_tests"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60:02d} s"


def measure(tier: str, note: str) -> dict[str, dict[str, Any]]:
    """Run one tier, timed; its record by tier. `ci` also gives `full`: the `make test`
    inside it, timed by pytest (its session time)."""
    with tempfile.TemporaryDirectory(prefix="vaelab-test-suite-") as scratch:
        junit = Path(scratch) / "junit.xml"
        env = {**os.environ, "ARGS": f"--junitxml={junit}"}
        if tier == "ci":
            folder = _fresh_clone(Path(scratch))
            command, cwd = ["bash", ".ci/run"], folder
        else:
            command = ["make", "test-fast" if tier == "fast" else "test"]
            cwd = REPO
        started = time.perf_counter()
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            sys.stderr.write(result.stdout[-5000:] + result.stderr[-5000:])
        record = _record(tier, junit, wall, _head(), note or " ".join(command))
        record["exit_code"] = result.returncode
        records = {tier: record}
        if tier == "ci":
            inside = "make test inside that .ci/run: pytest's session time from its JUnit file"
            records["full"] = _record("full", junit, _session_s(junit), _head(), inside)
        return records


def _fresh_clone(scratch: Path) -> Path:
    """HEAD cloned to <scratch>/main, with <scratch>/shared a link to ../shared: the
    layout CI runs `.ci/run` in."""
    folder = scratch / "main"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(folder)], check=True)
    shared = REPO.parent / "shared"
    if shared.is_dir():
        (scratch / "shared").symlink_to(shared)
    return folder


def _record(tier: str, junit: Path, wall_s: float, commit: str, note: str) -> dict[str, Any]:
    cases = _junit_cases(junit)
    per_file: dict[str, float] = defaultdict(float)
    for case in cases:
        per_file[case["file"]] += case["time_s"]
    counts = defaultdict(int)
    for case in cases:
        counts[case["outcome"]] += 1
    slowest = sorted(cases, key=lambda c: c["time_s"], reverse=True)[:SLOWEST]
    return {
        "wall_s": round(wall_s, 1),
        "tests": len(cases),
        "passed": counts["passed"],
        "failed": counts["failed"],
        "skipped": counts["skipped"],
        "test_time_s": round(sum(c["time_s"] for c in cases), 1),
        "slowest": [{"test": c["id"], "time_s": c["time_s"]} for c in slowest],
        "per_file_s": {k: round(v, 1) for k, v in sorted(per_file.items(), key=lambda kv: -kv[1])},
        "asserts_in_tests": _count_asserts(commit),
        "commit": commit,
        "measured_at": _started_at(junit),
        "machine": _machine(),
        "note": note,
    }


def _junit_cases(junit: Path) -> list[dict[str, Any]]:
    """Every test case of a pytest JUnit XML file: its id, file, time and outcome."""
    cases = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "")
        file = "tests/" + module.split(".")[-1] + ".py" if module else "?"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "skipped"
        cases.append(
            {
                "id": f"{file}::{case.get('name')}",
                "file": file,
                "time_s": round(float(case.get("time", 0.0)), 2),
                "outcome": outcome,
            }
        )
    return cases


def _suite(junit: Path) -> ET.Element:
    root = ET.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None, f"{junit} holds no testsuite"
    return suite


def _session_s(junit: Path) -> float:
    """pytest's session time, as its JUnit file records it."""
    return float(_suite(junit).get("time", 0.0))


def _started_at(junit: Path) -> str:
    """When pytest's session started (UTC), as its JUnit file records it."""
    stamp = _suite(junit).get("timestamp")
    if stamp is None:
        return datetime.now(timezone.utc).isoformat(timespec="seconds")
    return datetime.fromisoformat(stamp).astimezone(timezone.utc).isoformat(timespec="seconds")


def _count_asserts(commit: str) -> int:
    """The `assert` statements in tests/*.py at `commit` (a check written once counts
    once, however many parametrised cases run it)."""
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", commit, "tests/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    total = 0
    for name in names:
        if not name.endswith(".py"):
            continue
        source = subprocess.run(
            ["git", "show", f"{commit}:{name}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        total += sum(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(source)))
    return total


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def _head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()


def _summary_line(record: dict[str, Any]) -> str:
    return (
        f"{record['wall_s']:.0f} s, {record['tests']} tests ({record['passed']} passed, "
        f"{record['failed']} failed, {record['skipped']} skipped), "
        f"{record['asserts_in_tests']} asserts"
    )


if __name__ == "__main__":
    main()
