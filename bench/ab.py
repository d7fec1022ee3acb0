"""Before/after: `bench/speed.py` on a baseline commit and on this tree, interleaved.

    python bench/ab.py --before 9c59216 --label issue33 --parts mlp,startup --rounds 2

Checks the baseline out into a temporary git worktree, then runs each tree's own
`bench/speed.py --parts ...` in turn (before, after, before, after, ...), each in a
fresh process on its own code, and writes every run and their comparison to
`bench/results/speed_ab_<label>.json`. Both trees use this checkout's virtual
environment. Within a run, vaelab's epoch time is a ratio to the hand-written loop
measured beside it, which cancels most of a noisy machine's drift; start-up times are
compared as measured (low of each run's repeats). Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def run_speed(tree: Path, parts: str, repeats: int, epochs: int, out: Path) -> dict[str, Any]:
    subprocess.run(
        [
            sys.executable,
            "bench/speed.py",
            "--parts",
            parts,
            "--repeats",
            str(repeats),
            "--epochs",
            str(epochs),
            "--out",
            str(out),
        ],
        cwd=tree,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def headline(run: dict[str, Any]) -> dict[str, float]:
    """The numbers compared: vaelab/hand epoch-time ratios and the start-up times."""
    found: dict[str, float] = {}
    mlp = run.get("mlp_fashion_mnist") or {}
    for key in ("ratio_vaelab_to_hand", "median_paired_ratio", "vaelab_epoch_s", "hand_epoch_s"):
        if key in mlp:
            found[f"mlp.{key}"] = float(mlp[key])
    for key, value in (run.get("startup") or {}).items():
        found[f"startup.{key}"] = float(value)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="the baseline commit")
    parser.add_argument("--label", required=True, help="results: speed_ab_<label>.json")
    parser.add_argument("--parts", default="mlp,startup")
    parser.add_argument("--rounds", type=int, default=2, help="before/after pairs")
    parser.add_argument("--repeats", type=int, default=2, help="bench/speed.py --repeats")
    parser.add_argument("--epochs", type=int, default=3, help="bench/speed.py --epochs")
    args = parser.parse_args()
    after_commit = git("rev-parse", "--short", "HEAD")
    before_commit = git("rev-parse", "--short", args.before)
    scratch = Path(tempfile.mkdtemp(prefix="vaelab-ab-"))
    before_tree = scratch / "before"
    git("worktree", "add", "--detach", str(before_tree), args.before)
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    try:
        for round_ in range(args.rounds):
            for label, tree in (("before", before_tree), ("after", REPO)):
                out = scratch / f"{label}_{round_}.json"
                run = run_speed(tree, args.parts, args.repeats, args.epochs, out)
                runs[label].append(headline(run))
                print(label, round_, json.dumps(runs[label][-1]), flush=True)
    finally:
        git("worktree", "remove", "--force", str(before_tree))
    keys = sorted(set(runs["before"][0]) & set(runs["after"][0]))
    comparison = {}
    for key in keys:
        before = statistics.median(r[key] for r in runs["before"])
        after = statistics.median(r[key] for r in runs["after"])
        comparison[key] = {"before": before, "after": after, "after_over_before": after / before}
    result = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "before": before_commit,
        "after": after_commit,
        "protocol": {
            "parts": args.parts,
            "rounds": args.rounds,
            "order": "before, after, alternating; each tree's own bench/speed.py",
            "speed_py": {"repeats": args.repeats, "epochs": args.epochs},
            "statistic": "median over rounds of each run's headline number",
        },
        "runs": runs,
        "comparison": comparison,
    }
    path = RESULTS / f"speed_ab_{args.label}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(comparison, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
