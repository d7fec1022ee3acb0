"""Every table of measurements on the pages is what bench/report.py writes from its
results file: a number edited by hand, or a results file re-measured without rewriting
the page, fails here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import REPO
from in_process import fresh_hydra

sys.path.insert(0, str(REPO / "bench"))
import report


def test_every_generated_table_matches_its_results_file() -> None:
    with fresh_hydra():  # bench/reproduce.py composes the recipes with a Hydra of its own
        stale = {str(page.relative_to(REPO)): report.stale(page) for page in report.pages()}
    assert {page: names for page, names in stale.items() if names} == {}, (
        "run `python bench/report.py` to rewrite them"
    )


def test_every_table_is_on_a_page_and_every_page_asks_for_a_known_table() -> None:
    used = [m["name"] for page in report.pages() for m in report.blocks(page.read_text())]
    assert sorted(set(used) - set(report.TABLES)) == []
    assert sorted(set(report.TABLES) - set(used)) == [], "tables no page shows"


def _block(page: Path, name: str) -> str:
    for match in report.blocks(page.read_text()):
        if match["name"] == name:
            return match["body"]
    raise AssertionError(f"{page} has no {name} table")


def test_the_speed_table_shows_the_recorded_ratio_and_says_which_way_it_goes() -> None:
    """Checked against the file directly: the ratio of the recorded epoch times."""
    mlp = json.loads((REPO / "bench/results/speed.json").read_text())["mlp_fashion_mnist"]
    body = _block(REPO / "docs/performance.md", "speed_mlp")
    ratio = mlp["vaelab_epoch_s"] / mlp["hand_epoch_s"]
    assert f"takes {ratio:.2f}× the plain-`Adam` hand loop's" in body
    assert ("slower than it" in body) == (ratio > 1) and ("faster than it" in body) == (ratio < 1)
    assert f"{mlp['vaelab_epoch_s']:.2f} s" in body
    assert mlp["measured_at"] in body, "the page says when it was measured"


def test_the_default_experiment_table_says_whether_each_target_is_met() -> None:
    data = json.loads((REPO / "bench/results/default_experiment.json").read_text())
    body = _block(REPO / "docs/default-experiment.md", "default_experiment")
    blank = next(line for line in body.splitlines() if line.startswith("| blank prior samples"))
    assert f"{100 * data['prior_blank_fraction']:.1f} %" in blank
    assert blank.rstrip(" |").endswith(
        "met" if data["prior_blank_fraction"] <= 0.05 else "**not met**"
    )
    mig = next(line for line in body.splitlines() if line.startswith("| MIG"))
    assert f"{data['scores']['test/mig']:.3f}" in mig
    assert mig.rstrip(" |").endswith("**not met**" if data["scores"]["test/mig"] < 0.1 else "met")


def test_a_stale_table_is_found_and_rewritten(tmp_path: Path, monkeypatch) -> None:
    page = tmp_path / "page.md"
    fresh = report.rewrite("a\n<!-- report: sweep_parallel -->\n<!-- end report -->\nb\n")
    page.write_text(fresh.replace("1 |", "0.5 |"))  # a number typed over by hand
    assert report.stale(page) == ["sweep_parallel"]
    page.write_text(report.rewrite(page.read_text()))
    assert report.stale(page) == [] and page.read_text() == fresh
    with pytest.raises(KeyError, match="no table named 'nope'"):
        report.rewrite("<!-- report: nope -->\n<!-- end report -->\n")


def test_a_table_whose_file_is_missing_says_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    assert report.render("sweep_parallel") == (
        "Not measured yet: there is no `bench/results/sweep_parallel.json`."
    )
    assert report.render("speed_gpu").startswith("Not measured on a GPU")
    (tmp_path / "speed.json").write_text(json.dumps({"protocol": {}}))
    assert "holds no `options`" in report.render("options/objective")
    gpu = {
        "measured_at": "2026-12-07T10:00:00+00:00",
        "machine": {"gpu": "NVIDIA H100 80GB HBM3", "cpus": 16, "torch": "2.13.0"},
        "runs": [{"name": "mlp fp32", "epoch_s": 0.5, "samples_per_s": 110000.0}],
    }
    (tmp_path / "gpu_h100.json").write_text(json.dumps(gpu))
    body = report.render("speed_gpu")
    assert "| mlp fp32 | 0.50 s | 110,000 |" in body and "NVIDIA H100 80GB HBM3" in body
