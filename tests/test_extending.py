"""docs/extending.md, run: its five parts (a backbone, a likelihood, an objective, a
dataset with known factors, a metric) written into a copy of src/ and conf/, with no
other file touched, then composed, trained, evaluated and compared together.

Each part is taken from the page itself (every fenced block under a "File `<path>`:"
line), so the page cannot drift from what works.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

PAGE = REPO / "docs" / "extending.md"
FILE_BLOCK = re.compile(r"^File `(?P<path>[^`]+)`:\n\n```[a-z]*\n(?P<body>.*?)^```$", re.M | re.S)
EXPECTED = {
    "src/vaelab/models/backbones/linear.py",
    "conf/model/encoder/linear.yaml",
    "conf/model/decoder/linear.yaml",
    "src/vaelab/likelihoods/laplace.py",
    "conf/likelihood/laplace.yaml",
    "src/vaelab/objectives/free_bits.py",
    "conf/objective/free_bits.yaml",
    "src/vaelab/data/squares.py",
    "conf/data/squares.yaml",
    "src/vaelab/metrics/max_corr.py",
}


def page_files() -> dict[str, str]:
    return {m["path"]: m["body"] for m in FILE_BLOCK.finditer(PAGE.read_text())}


def digests(root: Path) -> dict[str, str]:
    """Every file below root/src and root/conf (caches left out) by its content hash."""
    found = {}
    for top in ("src", "conf"):
        for path in (root / top).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and ".egg-info" not in str(path):
                found[path.relative_to(root).as_posix()] = hashlib.sha256(
                    path.read_bytes()
                ).hexdigest()
    return found


def test_the_page_gives_one_file_per_part_and_none_exists_yet() -> None:
    files = page_files()
    assert set(files) == EXPECTED
    assert not [p for p in files if (REPO / p).exists()]  # new files, not edits


@pytest.fixture(scope="module")
def extended(tmp_path_factory) -> Path:
    """A copy of src/ and conf/ with the page's files added, and nothing else changed."""
    root = tmp_path_factory.mktemp("extended")
    for top in ("src", "conf"):
        shutil.copytree(
            REPO / top, root / top, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    before = digests(root)
    for path, body in page_files().items():
        (root / path).write_text(body)
    after = digests(root)
    assert {k for k in after if before.get(k) != after[k]} == EXPECTED  # only new files
    return root


def run(root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    # The copy's own package first, ahead of this checkout's editable install.
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_the_five_parts_train_together_and_are_compared(extended: Path) -> None:
    run_dir = extended / "outputs" / "run"
    result = run(
        extended,
        "src/train.py",
        "data=squares",
        "model/encoder=linear",
        "model/decoder=linear",
        "likelihood=laplace",
        "objective=free_bits",
        "objective.free_nats=0.1",
        "debug=smoke",
        "logger=csv",
        "eval.disentanglement.enabled=true",
        "eval.disentanglement.protocol=fast",
        "eval.disentanglement.metrics=[mig,max_corr]",
        "+eval.disentanglement.max_corr.n_samples=800",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["status"] == "finished"
    assert summary["choices"]["model/encoder"] == "linear"
    assert summary["choices"]["likelihood"] == "laplace"
    assert summary["choices"]["objective"] == "free_bits"
    assert summary["data"]["class"] == "SquaresDataModule"
    metrics = summary["metrics"]
    assert 0.0 <= metrics["test/max_corr"] <= 1.0 and 0.0 <= metrics["test/mig"] <= 1.0
    assert "test/bpd" not in metrics  # Laplace is a density: no code length
    with open(run_dir / "csv" / "metrics.csv") as f:
        header = f.readline().strip().split(",")
    assert {"train/kl_free", "train/beta", "train/nelbo"} <= set(header)  # FreeBits.terms

    compared = run(extended, "-m", "vaelab.compare", str(run_dir), "--metrics", "all")
    assert compared.returncode == 0, compared.stderr[-2000:]
    assert "test/max_corr" in compared.stdout and "model/encoder=linear" in compared.stdout
    with open(run_dir / "comparison.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["test/max_corr"]) == pytest.approx(metrics["test/max_corr"])
    assert row["objective"] == "free_bits"


def test_the_new_parts_keep_the_one_line_checks(extended: Path) -> None:
    """The checks every shipped part has hold for the new ones: a range in an
    annotation, and a metric's count against its own model."""
    bad_scale = run(
        extended,
        "src/train.py",
        "data=squares",
        "likelihood=laplace",
        "likelihood.min_scale=0",
        "debug=smoke",
        timeout=120,
    )
    assert bad_scale.returncode != 0
    assert "likelihood.min_scale=0 must be a number > 0" in bad_scale.stderr
    bad_count = run(
        extended,
        "src/train.py",
        "data=squares",
        "eval.disentanglement.metrics=[max_corr]",
        "+eval.disentanglement.max_corr.n_samples=1",
        "debug=smoke",
        timeout=120,
    )
    assert bad_count.returncode != 0
    assert "max_corr.n_samples=1 must be an integer >= 2" in bad_count.stderr
    assert "Traceback" not in bad_count.stderr
