"""`python -m vaelab.compare <folder>...`: the table, comparison.csv, the plots, skipped folders.

Most tests read hand-written run folders (metrics.json in the format RunSummary
writes); one real sweep, trained once for the module, checks the same on folders the
training app leaves.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO
from in_process import call_module, call_train
from PIL import Image, ImageStat

from vaelab.compare import (
    CompareError,
    NoRunsError,
    collect_runs,
    compare,
    parse_overrides,
)

SMOKE_SWEEP = [
    "-m",
    "beta=0.5,2",
    "latent_dim=2,4",
    "debug=smoke",
    "data.resolution=32",
    "model/encoder=mlp",
    "model/decoder=mlp",
]


def write_run(
    folder: Path,
    *,
    beta: float | None = 1.0,
    latent_dim: int | None = 8,
    seed: int = 0,
    status: str = "finished",
    metrics: dict[str, float | None] | None = None,
    extra_overrides: tuple[str, ...] = ("data.resolution=32",),
    **fields: Any,
) -> Path:
    """A run folder with a metrics.json shaped like RunSummary's (and a .hydra/)."""
    params = {"seed": seed}
    overrides = [*extra_overrides]
    if beta is not None:
        params["beta"] = beta
        overrides.insert(0, f"beta={beta}")
    if latent_dim is not None:
        params["latent_dim"] = latent_dim
        overrides.insert(1 if beta is not None else 0, f"latent_dim={latent_dim}")
    if metrics is None:
        # Rate falls and distortion rises with β; bigger latents reconstruct better.
        kl = 40.0 / (beta or 1.0) + (latent_dim or 8) / 3
        recon = 200.0 - 4 * (latent_dim or 8) + 6 * math.log2(1 + (beta or 1.0))
        metrics = {
            "val/nelbo": recon + kl + 1.5,
            "val/recon": recon + 1.0,
            "val/kl": kl + 0.5,
            "test/recon": recon,
            "test/kl": kl,
            "test/nelbo": recon + kl,
            "test/bpd": (recon + kl) / (32 * 32 * math.log(2)),
        }
    folder.mkdir(parents=True)
    (folder / ".hydra").mkdir()
    summary = {
        "status": status,
        "metrics": metrics,
        "params": params,
        "overrides": overrides,
        "choices": {"model": "conv", "data": "shapes", "hydra/launcher": "basic"},
        "best_checkpoint": None,
        "epochs": 3,
        "global_step": 36,
        "wall_time_s": 12.25,
        **fields,
    }
    (folder / "metrics.json").write_text(json.dumps(summary, indent=2))
    return folder


@pytest.fixture
def hand_sweep(tmp_path: Path) -> Path:
    """β ∈ {0.5, 2, 16} × latent ∈ {2, 10}, plus four folders that must be skipped.

    2 vs 10 and 2 vs 16 sort differently as text and as numbers.
    """
    sweep = tmp_path / "multirun" / "2025-01-31" / "12-00-00_ab12"
    job = 0
    for beta in (0.5, 2, 16):
        for latent in (2, 10):
            name = f"{job}_beta={beta},latent_dim={latent}"
            write_run(sweep / name, beta=beta, latent_dim=latent)
            job += 1
    write_run(
        sweep / "6_beta=64,latent_dim=2",
        beta=64,
        latent_dim=2,
        status="failed",
        error="FloatingPointError: non-finite loss at step 7\nsecond line",
    )
    (sweep / "7_beta=128,latent_dim=2" / ".hydra").mkdir(parents=True)  # died before metrics
    broken = sweep / "8_beta=256,latent_dim=2"
    broken.mkdir()
    (broken / "metrics.json").write_text('{"status": "finished", "metr')
    write_run(sweep / "9_beta=512,latent_dim=2", beta=512, latent_dim=2, status="running")
    return sweep


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 2 × 2 sweep of smoke runs (β 0.5, 2 × latent 2, 4), trained once."""
    sweep = tmp_path_factory.mktemp("compare") / "sweep"
    result = call_train(*SMOKE_SWEEP, f"hydra.sweep.dir={sweep}", env={"WANDB_MODE": "disabled"})
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep


def run_compare(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m vaelab.compare <args>` as a user runs it (this checkout's package), in a
    child process: for the exit code and stderr of a failure."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(
        [sys.executable, "-m", "vaelab.compare", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )


def call_compare(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m vaelab.compare <args>` run in this process."""
    return call_module("vaelab.compare", *args, env={"WANDB_MODE": "disabled"})


def table_rows(table: str) -> list[dict[str, str]]:
    """The printed table as dicts keyed by header; columns are split on 2+ spaces."""
    header, _rule, *rows = table.splitlines()
    names = re.split(r"\s{2,}", header.strip())
    return [dict(zip(names, re.split(r"\s{2,}", row.strip()), strict=True)) for row in rows]


def assert_close_to_shown(cell: str, value: float) -> None:
    """A table cell shows `value` rounded to the cell's own decimals."""
    decimals = len(cell.partition(".")[2])
    assert float(cell) == pytest.approx(value, abs=0.51 * 10**-decimals), (cell, value)


def assert_real_image(path: Path, min_size: tuple[int, int] = (800, 600)) -> None:
    """A PNG a person can read: large enough, many colours, mostly background, not blank."""
    assert path.is_file(), path
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_size[0] and image.height >= min_size[1], image.size
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 50, "too few distinct colours"
        assert max(colours)[1] == (255, 255, 255), "the background is not white"
        ink = sum(n for n, c in colours if sum(c) < 600)
        assert ink > 0.01 * rgb.width * rgb.height, "almost nothing drawn"
        assert max(ImageStat.Stat(rgb).stddev) > 20


# ------------------------------------------------------------------ hand-written runs


def test_collect_runs_reads_runs_and_says_why_it_skipped_the_rest(hand_sweep: Path) -> None:
    runs, skipped = collect_runs([hand_sweep])
    assert [run.name for run in runs] == [
        f"{i}_beta={b},latent_dim={d}"
        for i, (b, d) in enumerate([(0.5, 2), (0.5, 10), (2, 2), (2, 10), (16, 2), (16, 10)])
    ]
    assert runs[1].params == {
        "beta": 0.5,
        "latent_dim": 10,
        "data.resolution": 32,
        "seed": 0,
    }
    reasons = {item.path.name: item.reason for item in skipped}
    assert reasons == {
        "6_beta=64,latent_dim=2": "failed run (FloatingPointError: non-finite loss at step 7)",
        "7_beta=128,latent_dim=2": "no metrics.json",
        "8_beta=256,latent_dim=2": reasons["8_beta=256,latent_dim=2"],
        "9_beta=512,latent_dim=2": "still running",
    }
    assert reasons["8_beta=256,latent_dim=2"].startswith("unreadable metrics.json (invalid JSON")


def test_missing_folders_and_empty_folders_are_reported(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    runs, skipped = collect_runs([tmp_path / "nope", tmp_path / "empty", tmp_path / "file.txt"])
    assert runs == []
    assert [str(s) for s in skipped] == [
        f"skipped {tmp_path / 'nope'}: no such folder",
        f"skipped {tmp_path / 'empty'}: no metrics.json (no run folder below it)",
        f"skipped {tmp_path / 'file.txt'}: not a folder",
    ]
    with pytest.raises(NoRunsError, match="no usable runs"):
        compare([tmp_path / "empty"])


def test_overrides_parse_to_numbers_and_text() -> None:
    parsed = parse_overrides(
        ["beta=4", "model.optimizer.lr=3e-3", "+trainer.x=.5", "model/encoder=mlp", "tags='a b'"]
    )
    assert parsed == {
        "beta": 4,
        "model.optimizer.lr": 0.003,
        "trainer.x": 0.5,
        "model/encoder": "mlp",
        "tags": "a b",
    }
    assert parse_overrides(["paths.log_dir=/tmp/x", "~callbacks.timing"]) == {
        "callbacks.timing": "<deleted>"
    }


def test_swept_parameters_are_columns_and_constants_are_summarised(hand_sweep: Path) -> None:
    result = compare([hand_sweep], plots=False, save_csv=False)
    assert result.swept == ["beta", "latent_dim"]
    assert result.constants == {"data.resolution": 32, "seed": 0}
    assert result.metrics == ["val/nelbo", "test/nelbo", "test/recon", "test/kl", "test/bpd"]
    rows = table_rows(result.table)
    assert list(rows[0]) == ["beta", "latent_dim", *result.metrics, "run"]
    # Default order: the swept parameters, numerically (2 before 10, 2 before 16).
    assert [(r["beta"], r["latent_dim"]) for r in rows] == [
        ("0.5", "2"),
        ("0.5", "10"),
        ("2", "2"),
        ("2", "10"),
        ("16", "2"),
        ("16", "10"),
    ]
    for row, run in zip(rows, result.runs, strict=True):
        assert row["run"] == run.name
        for key in result.metrics:
            assert_close_to_shown(row[key], run.metrics[key])


def test_sort_by_a_metric_ascending_and_descending(hand_sweep: Path) -> None:
    up = compare([hand_sweep], sort="test/nelbo", plots=False, save_csv=False)
    values = [run.metrics["test/nelbo"] for run in up.runs]
    assert values == sorted(values) and len(set(values)) == 6
    down = compare([hand_sweep], sort="test/nelbo", descending=True, plots=False, save_csv=False)
    assert [run.name for run in down.runs] == [run.name for run in reversed(up.runs)]
    by_latent = compare(
        [hand_sweep], sort="latent_dim", descending=True, plots=False, save_csv=False
    )
    assert [run.value("latent_dim") for run in by_latent.runs] == [10, 10, 10, 2, 2, 2]
    # Ties keep the swept parameters' order.
    assert [run.value("beta") for run in by_latent.runs] == [0.5, 2, 16, 0.5, 2, 16]


def test_runs_missing_the_sort_metric_go_last(tmp_path: Path) -> None:
    write_run(tmp_path / "a", beta=1, metrics={"val/nelbo": 5.0, "test/nelbo": 3.0})
    write_run(tmp_path / "b", beta=2, metrics={"val/nelbo": 4.0})
    write_run(tmp_path / "c", beta=4, metrics={"val/nelbo": 6.0, "test/nelbo": None})
    write_run(tmp_path / "d", beta=8, metrics={"val/nelbo": 7.0, "test/nelbo": 1.0})
    for descending in (False, True):
        result = compare([tmp_path], sort="test/nelbo", descending=descending, plots=False)
        names = [run.name for run in result.runs]
        assert names[:2] == (["d", "a"] if not descending else ["a", "d"])
        assert set(names[2:]) == {"b", "c"}
    rows = {r["run"]: r for r in table_rows(result.table)}
    assert rows["b"]["test/nelbo"] == "-" and rows["c"]["test/nelbo"] == "nan"


def test_metrics_option_and_bad_names(hand_sweep: Path) -> None:
    result = compare([hand_sweep], metrics=["test/kl,val/kl"], plots=False, save_csv=False)
    assert result.metrics == ["test/kl", "val/kl"]
    everything = compare([hand_sweep], metrics=["all"], plots=False, save_csv=False)
    assert everything.metrics[:3] == ["val/nelbo", "val/recon", "val/kl"]
    with pytest.raises(CompareError, match="no run recorded the metric 'test/nll'"):
        compare([hand_sweep], metrics=["test/nll"], plots=False, save_csv=False)
    with pytest.raises(CompareError, match="--sort test/elbo: no such column"):
        compare([hand_sweep], sort="test/elbo", plots=False, save_csv=False)


def test_cli_prints_table_reports_skips_and_writes_files(hand_sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = call_compare(str(hand_sweep), "--sort", "test/kl", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "6 runs below" in result.stdout and "sorted by test/kl" in result.stdout
    assert "same in all runs: data.resolution=32  seed=0" in result.stdout
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 4
    assert any(line.endswith(": no metrics.json") for line in skipped)
    assert any("failed run (FloatingPointError: non-finite loss at step 7)" in s for s in skipped)
    assert any(line.endswith(": still running") for line in skipped)
    assert any(": unreadable metrics.json (" in line for line in skipped)
    table = result.stdout.split("\n\n", 1)[1]
    kls = [float(row["test/kl"]) for row in table_rows(table)]
    assert kls == sorted(kls)
    for name in ("comparison.csv", "rate_distortion.png", "metrics_vs_beta.png"):
        assert (out / name).is_file(), name


def test_cli_no_plots_writes_the_csv_into_the_first_folder(hand_sweep: Path) -> None:
    result = call_compare(str(hand_sweep), "--no-plots")
    assert result.returncode == 0, result.stderr
    assert (hand_sweep / "comparison.csv").is_file()
    assert not list(hand_sweep.glob("*.png"))


def test_cli_without_usable_runs_fails_with_one_line(tmp_path: Path) -> None:
    write_run(tmp_path / "run", status="failed", error="RuntimeError: boom")
    result = run_compare(str(tmp_path))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"skipped {tmp_path / 'run'}: failed run (RuntimeError: boom)"
    assert lines[-1].startswith("vaelab: error: no usable runs below")
    assert result.stdout == ""


def test_help_is_fast_and_does_not_import_matplotlib() -> None:
    code = (
        "import sys, vaelab.compare as c; c.build_parser().format_help(); "
        "assert 'matplotlib' not in sys.modules"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_plots_for_log_spread_beta_seeds_and_a_second_swept_setting(tmp_path: Path) -> None:
    for beta in (0.25, 1, 4, 16):
        for encoder in ("mlp", "conv"):
            for seed in (0, 1):
                name = f"b{beta}_{encoder}_s{seed}"
                write_run(
                    tmp_path / name,
                    beta=beta,
                    seed=seed,
                    extra_overrides=(f"model/encoder={encoder}",),
                )
    result = compare([tmp_path])
    assert result.swept == ["beta", "model/encoder", "seed"]
    assert result.stage == "test"
    assert_real_image(result.plots["rate_distortion"])
    assert_real_image(result.plots["metrics_vs_beta"], min_size=(1500, 600))


def test_runs_without_beta_get_a_rate_distortion_plot_only(tmp_path: Path) -> None:
    for latent in (4, 16):
        write_run(tmp_path / f"d{latent}", beta=None, latent_dim=latent)
    result = compare([tmp_path])
    assert set(result.plots) == {"rate_distortion"}
    assert "no run records β: metric-vs-β plot not drawn" in result.notes
    assert_real_image(result.plots["rate_distortion"])


def test_fitted_runs_without_test_metrics_plot_val(tmp_path: Path) -> None:
    for beta in (1, 4):
        metrics = {"val/nelbo": 150.0 + beta, "val/recon": 100.0 + beta * 10, "val/kl": 50.0 / beta}
        write_run(tmp_path / f"b{beta}", beta=beta, status="fitted", metrics=metrics)
    result = compare([tmp_path])
    assert result.metrics == ["val/nelbo", "val/recon", "val/kl"]
    assert result.stage == "val"
    assert set(result.plots) == {"rate_distortion", "metrics_vs_beta"}


# ------------------------------------------------------------------------ a real sweep


def test_real_sweep_table_equals_the_runs_metrics(real_sweep: Path, tmp_path: Path) -> None:
    result = compare([real_sweep], out=tmp_path)
    assert not result.skipped
    assert result.swept == ["beta", "latent_dim"]
    assert result.constants["model/encoder"] == "mlp" and result.constants["seed"] == 0
    rows = table_rows(result.table)
    assert len(rows) == 4
    for row in rows:
        summary = json.loads((real_sweep / row["run"] / "metrics.json").read_text())
        assert summary["status"] == "finished"
        assert float(row["beta"]) == summary["params"]["beta"]
        assert int(row["latent_dim"]) == summary["params"]["latent_dim"]
        for key in ("val/nelbo", "test/nelbo", "test/recon", "test/kl", "test/bpd"):
            assert_close_to_shown(row[key], summary["metrics"][key])


def test_real_sweep_csv_round_trips(real_sweep: Path, tmp_path: Path) -> None:
    result = compare([real_sweep], out=tmp_path, plots=False)
    with open(result.csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["run"] for row in rows] == [run.name for run in result.runs]
    for row, run in zip(rows, result.runs, strict=True):
        assert row["status"] == "finished"
        assert Path(row["path"]) == run.path.resolve()
        assert float(row["beta"]) == run.params["beta"]
        assert int(row["latent_dim"]) == run.params["latent_dim"]
        assert row["model/encoder"] == "mlp"
        assert float(row["wall_time_s"]) == run.summary["wall_time_s"]
        assert run.metrics  # every recorded metric is a column, exactly as recorded
        for key, value in run.metrics.items():
            assert float(row[key]) == value, key


def test_real_sweep_plots_are_readable_images(real_sweep: Path, tmp_path: Path) -> None:
    result = call_compare(str(real_sweep), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "skipped" not in result.stderr
    assert_real_image(tmp_path / "rate_distortion.png")
    assert_real_image(tmp_path / "metrics_vs_beta.png", min_size=(1500, 600))


def test_real_single_run_folder(real_sweep: Path, tmp_path: Path) -> None:
    run = next(p.parent for p in sorted(real_sweep.glob("*/metrics.json")))
    result = compare([run / "metrics.json"], out=tmp_path)
    assert [r.name for r in result.runs] == [run.name]
    assert result.swept == [] and result.constants["beta"] == 0.5
    assert_real_image(result.plots["rate_distortion"])
    assert_real_image(result.plots["metrics_vs_beta"], min_size=(1500, 600))


# ------------------------------------------------- eval.json and disentanglement


def write_eval(run: Path, metrics: dict[str, float], protocol: str, age_s: float = 0.0) -> Path:
    """An eval.json beside the run's checkpoints, as `src/eval.py` writes it; `age_s`
    back-dates it against metrics.json (positive: older)."""
    path = run / "checkpoints" / "eval.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "status": "finished",
        "metrics": metrics,
        "disentanglement": {"protocol": protocol, "scores": dict(metrics)},
    }
    path.write_text(json.dumps(report))
    summary_time = (run / "metrics.json").stat().st_mtime
    os.utime(path, (summary_time - age_s, summary_time - age_s))
    return path


def write_training_protocol(run: Path, protocol: str) -> None:
    (run / ".hydra" / "config.yaml").write_text(
        f"eval:\n  disentanglement:\n    protocol: {protocol}\n"
    )


def test_eval_json_joins_the_run_and_the_newer_file_wins_each_key(tmp_path: Path) -> None:
    fast = {"test/mig": 0.10, "test/dci": 0.20, "test/recon": 90.0, "test/kl": 9.0}
    newer = write_run(tmp_path / "newer", beta=1, metrics=dict(fast))
    write_training_protocol(newer, "fast")
    write_eval(newer, {"mig": 0.31, "nll_iwae": 97.5}, "dlib", age_s=-5)
    older = write_run(tmp_path / "older", beta=4, metrics=dict(fast))
    write_training_protocol(older, "fast")
    write_eval(older, {"mig": 0.99, "sap": 0.05}, "dlib", age_s=5)

    runs = {run.name: run for run in collect_runs([tmp_path])[0]}
    a, b = runs["newer"], runs["older"]
    assert a.metrics["test/mig"] == 0.31 and a.metrics["test/nll_iwae"] == 97.5
    assert a.metrics["test/dci"] == 0.20  # only metrics.json has it
    assert a.sources["test/mig"] == "eval.json" and a.sources["test/dci"] == "metrics.json"
    assert a.protocol == "dlib+fast"  # mig from the dlib eval, dci from training's fast
    assert b.metrics["test/mig"] == 0.10  # eval.json is older: metrics.json's stays
    assert b.metrics["test/sap"] == 0.05 and b.sources["test/sap"] == "eval.json"

    result = compare([tmp_path], out=tmp_path / "out")
    rows = {row["run"]: row for row in table_rows(result.table)}
    assert_close_to_shown(rows["newer"]["test/mig"], 0.31)
    assert rows["newer"]["protocol"] == "dlib+fast"
    assert "test/dci" in result.metrics and "test/sap" in result.metrics
    with open(result.csv_path) as f:
        csv_rows = {row["run"]: row for row in csv.DictReader(f)}
    assert csv_rows["newer"]["disentanglement_protocol"] == "dlib+fast"
    assert set(csv_rows["newer"]["from_eval_json"].split()) == {"test/mig", "test/nll_iwae"}


def test_a_damaged_eval_json_is_left_out_with_a_note(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", metrics={"test/recon": 1.0, "test/kl": 2.0})
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "eval.json").write_text('{"metrics": {"mig": 0.')
    result = compare([tmp_path], plots=False, save_csv=False)
    assert result.runs[0].metrics == {"test/recon": 1.0, "test/kl": 2.0}
    assert any("eval.json is unreadable" in note for note in result.notes)


def test_disentanglement_against_beta_and_the_trade_off_are_plotted(tmp_path: Path) -> None:
    """A β × objective sweep with scores: one line per objective in the score-vs-β
    plot, reconstruction against each score coloured by β."""
    for beta in (1, 4, 16):
        for objective in ("beta_vae", "beta_tcvae"):
            bonus = 0.1 if objective == "beta_tcvae" else 0.0
            metrics = {
                "test/recon": 80.0 + 5 * beta,
                "test/kl": 30.0 / beta,
                "test/nelbo": 80.0 + 5 * beta + 30.0 / beta,
                "test/mig": min(1.0, 0.05 * beta + bonus),
                "test/dci": min(1.0, 0.04 * beta + bonus),
                "test/factor_vae": 0.5 + 0.02 * beta,
            }
            run = write_run(
                tmp_path / f"{objective}_b{beta}",
                beta=beta,
                metrics=metrics,
                extra_overrides=(f"objective={objective}",),
            )
            write_training_protocol(run, "fast")
    result = compare([tmp_path])
    assert result.swept == ["beta", "objective"]
    for key in ("test/mig", "test/dci", "test/factor_vae"):
        assert key in result.metrics
    assert_real_image(result.plots["disentanglement_vs_beta"], min_size=(1500, 600))
    assert_real_image(result.plots["reconstruction_vs_disentanglement"], min_size=(1500, 600))


# ------------------------------------------------------------------ seeds folded


def seed_sweep(folder: Path) -> dict[tuple[float, int], float]:
    """β ∈ {1, 4} × seed ∈ {0, 1, 2}; returns each run's test/nelbo."""
    nelbo = {}
    for beta in (1, 4):
        for seed in (0, 1, 2):
            value = 100.0 + 10 * beta + 1.5 * seed**2
            metrics = {"test/nelbo": value, "test/recon": value - 20, "test/kl": 20.0}
            write_run(
                folder / f"b{beta}_s{seed}",
                beta=beta,
                seed=seed,
                metrics=metrics,
                extra_overrides=(f"seed={seed}",),
            )
            nelbo[beta, seed] = value
    return nelbo


def test_runs_that_differ_only_in_seed_become_mean_and_std_rows(tmp_path: Path) -> None:
    import statistics

    nelbo = seed_sweep(tmp_path / "sweep")
    result = compare([tmp_path / "sweep"], out=tmp_path / "out")
    assert result.swept == ["beta", "seed"]
    rows = table_rows(result.table)
    assert [row["beta"] for row in rows] == ["1", "4"] and all(row["n"] == "3" for row in rows)
    for row, beta in zip(rows, (1, 4), strict=True):
        values = [nelbo[beta, s] for s in (0, 1, 2)]
        mean, _, std = row["test/nelbo"].partition(" ± ")
        assert_close_to_shown(mean, statistics.fmean(values))
        assert_close_to_shown(std, statistics.stdev(values))
        assert "seeds 0,1,2" in row["run"]
    with open(result.seeds_csv_path) as f:
        by_beta = {row["beta"]: row for row in csv.DictReader(f)}
    exact = [nelbo[4, s] for s in (0, 1, 2)]
    assert float(by_beta["4"]["test/nelbo_mean"]) == statistics.fmean(exact)
    assert float(by_beta["4"]["test/nelbo_std"]) == statistics.stdev(exact)
    assert by_beta["4"]["n"] == "3" and by_beta["4"]["seeds"] == "0 1 2"
    assert_real_image(result.plots["metrics_vs_beta"], min_size=(1500, 600))

    per_run = compare([tmp_path / "sweep"], plots=False, save_csv=False, aggregate=False)
    assert len(table_rows(per_run.table)) == 6 and per_run.groups is None


def test_cli_no_aggregate_keeps_one_row_per_run(tmp_path: Path) -> None:
    seed_sweep(tmp_path / "sweep")
    folded = call_compare(str(tmp_path / "sweep"), "--no-plots")
    per_run = call_compare(str(tmp_path / "sweep"), "--no-plots", "--no-aggregate")
    assert folded.returncode == 0 and per_run.returncode == 0, folded.stderr + per_run.stderr
    assert " ± " in folded.stdout and " ± " not in per_run.stdout
    assert "comparison_seeds.csv" in folded.stderr


# ------------------------------------------------- plots read at a glance (issue 34)

SCORE_BETAS = (1.0, 4.0, 16.0)
SCORE_SEEDS = (0, 1, 2)


def score_sweep(folder: Path) -> dict[str, dict[float, list[float]]]:
    """β ∈ {1, 4, 16} × seed ∈ {0, 1, 2}, every supervised score recorded; returns
    each metric's values by β, in seed order. MIG moves by 0.0003 in all: an axis
    scaled to the data would fill its panel with it."""
    from vaelab.metrics.names import SUPERVISED_SCORES

    values: dict[str, dict[float, list[float]]] = {}
    for beta in SCORE_BETAS:
        for seed in SCORE_SEEDS:
            recon = 80.0 + 5 * beta + 2.0 * seed
            kl = 30.0 / beta + 0.5 * seed**2
            metrics = {"test/recon": recon, "test/kl": kl, "test/nelbo": recon + kl}
            for i, key in enumerate(SUPERVISED_SCORES):
                spread = 0.03 * (i % 3 + 1) * seed
                metrics[f"test/{key}"] = 0.1 + 0.05 * i + 0.02 * math.log2(beta) + spread
            metrics["test/mig"] = 0.4 + 0.0001 * seed + 0.00001 * beta
            write_run(
                folder / f"b{beta:g}_s{seed}",
                beta=beta,
                seed=seed,
                metrics=dict(metrics),
                extra_overrides=(f"seed={seed}",),
            )
            for key, value in metrics.items():
                values.setdefault(key, {}).setdefault(beta, []).append(value)
    return values


def panel_axes(fig: Any) -> list[Any]:
    """The panels of a figure: its axes but a colour bar's."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def grid_of(axes: list[Any]) -> list[int]:
    """Panels per row, top row first, read off where the laid-out axes are."""
    rows: dict[float, int] = {}
    for ax in axes:
        box = ax.get_position()
        rows[round(box.y0, 3)] = rows.get(round(box.y0, 3), 0) + 1
    return [rows[y] for y in sorted(rows, reverse=True)]


def error_bars(ax: Any) -> list[list[tuple[float, float, float]]]:
    """Each error-bar line of a panel as (β, mean, half the bar's height) per point."""
    from matplotlib.container import ErrorbarContainer

    lines = []
    for container in ax.containers:
        if not isinstance(container, ErrorbarContainer):
            continue
        line, _caps, bars = container.lines
        if not container.has_yerr:
            lines.append([(x, y, 0.0) for x, y in line.get_xydata()])
            continue
        segments = bars[0].get_segments()
        assert [s[0][0] for s in segments] == list(line.get_xdata())
        lines.append(
            [(s[0][0], (s[0][1] + s[1][1]) / 2, (s[1][1] - s[0][1]) / 2) for s in segments]
        )
    return lines


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def assert_bars_are_mean_and_std(ax: Any, by_beta: dict[float, list[float]]) -> None:
    import numpy as np

    (line,) = error_bars(ax)
    assert [x for x, _, _ in line] == list(SCORE_BETAS)
    for x, mean, half in line:
        seeds = np.array(by_beta[x])
        assert len(seeds) == len(SCORE_SEEDS)
        assert mean == pytest.approx(seeds.mean(), rel=1e-9)
        assert half == pytest.approx(seeds.std(ddof=1), rel=1e-9)
        assert half > 0


@pytest.mark.parametrize(
    ("n_panels", "shape"),
    [(1, (1, 1)), (3, (1, 3)), (4, (1, 4)), (5, (2, 4)), (7, (2, 4)), (8, (2, 4)), (9, (3, 4))],
)
def test_panels_are_laid_out_in_rows_of_at_most_four(n_panels: int, shape: tuple[int, int]) -> None:
    from vaelab.compare import figures

    assert figures.grid_shape(n_panels) == shape
    fig, axes = figures.panel_grid(n_panels)
    assert len(axes) == len(fig.axes) == n_panels  # the spare cells are gone
    fig.draw_without_rendering()
    rows, columns = shape
    assert grid_of(axes) == [columns] * (rows - 1) + [n_panels - columns * (rows - 1)]
    width, height = fig.get_size_inches()
    assert width == pytest.approx(columns * figures.PANEL_WIDTH)
    assert height == pytest.approx(rows * figures.PANEL_HEIGHT + figures.TITLE_HEIGHT)


def test_seven_scores_over_seeds_are_a_grid_on_fixed_axes_with_std_bars(tmp_path: Path) -> None:
    """compare on a β × seed sweep with all seven supervised scores: the PNGs are the
    size the grid says; the figures, drawn again from the same runs, have 2 rows of at
    most 4 panels, a [0, 1] axis for every score (MIG's 0.0003 included) and the seeds'
    mean ± sample std as error bars."""
    from vaelab.compare import figures
    from vaelab.compare.plots import build_figures
    from vaelab.metrics.names import SUPERVISED_SCORES

    values = score_sweep(tmp_path / "sweep")
    result = compare([tmp_path / "sweep"], out=tmp_path / "out")
    assert result.swept == ["beta", "seed"] and result.groups is not None
    assert set(result.plots) == {
        "rate_distortion",
        "metrics_vs_beta",
        "disentanglement_vs_beta",
        "reconstruction_vs_disentanglement",
    }
    stage, drawn = build_figures(result.runs, result.swept, str(tmp_path / "sweep"), [])
    assert stage == "test"

    scores = drawn["disentanglement_vs_beta"]
    axes = panel_axes(scores)
    assert len(axes) == len(scores.axes) == 7 and all(ax.get_visible() for ax in axes)
    assert [ax.get_title() for ax in axes] == [f"test {k}" for k in SUPERVISED_SCORES]
    scores.draw_without_rendering()
    assert grid_of(axes) == [4, 3]
    for ax, key in zip(axes, SUPERVISED_SCORES, strict=True):
        assert ax.get_ylim() == (0.0, 1.0), key
        assert_bars_are_mean_and_std(ax, values[f"test/{key}"])
    expected = (
        round((4 * figures.PANEL_WIDTH + figures.LEGEND_WIDTH) * figures.DPI),
        round((2 * figures.PANEL_HEIGHT + figures.TITLE_HEIGHT) * figures.DPI),
    )
    assert png_size(result.plots["disentanglement_vs_beta"]) == expected
    assert tuple(round(v * figures.DPI) for v in scores.get_size_inches()) == expected
    assert_real_image(result.plots["disentanglement_vs_beta"], min_size=(2000, 1000))

    curves = drawn["metrics_vs_beta"]
    axes = panel_axes(curves)
    curves.draw_without_rendering()
    assert grid_of(axes) == [3]
    for ax, key in zip(axes, ("nelbo", "recon", "kl"), strict=True):
        assert_bars_are_mean_and_std(ax, values[f"test/{key}"])
        low, high = ax.get_ylim()  # nats: scaled to the data, not to [0, 1]
        data = [v for seeds in values[f"test/{key}"].values() for v in seeds]
        assert low <= min(data) and max(data) <= high and high > 1.0
    assert png_size(result.plots["metrics_vs_beta"]) == (
        round((3 * figures.PANEL_WIDTH + figures.LEGEND_WIDTH) * figures.DPI),
        round((figures.PANEL_HEIGHT + figures.TITLE_HEIGHT) * figures.DPI),
    )

    trade = drawn["reconstruction_vs_disentanglement"]
    axes = panel_axes(trade)
    assert len(axes) == 7 and len(trade.axes) == 8  # and the β colour bar
    trade.draw_without_rendering()
    assert grid_of(axes) == [4, 3]
    assert all(ax.get_xlim() == (0.0, 1.0) for ax in axes)
    assert png_size(result.plots["reconstruction_vs_disentanglement"]) == (
        round((4 * figures.PANEL_WIDTH + figures.COLOUR_BAR_WIDTH) * figures.DPI),
        round((2 * figures.PANEL_HEIGHT + figures.TITLE_HEIGHT) * figures.DPI),
    )


def test_only_scores_bounded_to_the_unit_interval_get_the_fixed_axis() -> None:
    """[0, 1] for a bounded score however little it moves, widened only to show a value
    outside it; an unbounded score scales to its data; one run a β: no error bars."""
    from vaelab.compare import figures
    from vaelab.metrics.names import SCORE_KEYS, SUPERVISED_SCORES, in_unit_interval

    assert all(in_unit_interval(k) and in_unit_interval(f"test/{k}") for k in SUPERVISED_SCORES)
    assert in_unit_interval("explicitness")
    assert not in_unit_interval("gaussian_total_correlation")
    assert not in_unit_interval("mutual_info_score") and "mutual_info_score" in SCORE_KEYS

    points = [
        figures.PlotPoint(
            beta=beta,
            latent=4,
            group="4",
            recon=90.0,
            kl=10.0,
            nelbo=100.0,
            scores={
                "mig": 0.2 + 0.0001 * beta,
                "irs": 0.6 * beta,
                "gaussian_total_correlation": 3 + beta,
            },
        )
        for beta in (1.0, 2.0)
    ]
    metrics = ["mig", "irs", "gaussian_total_correlation"]
    fig = figures.disentanglement_vs_beta(points, metrics, "t", "latent size", "fast")
    assert fig is not None
    mig, irs, total_correlation = fig.axes
    assert mig.get_ylim() == (0.0, 1.0) and mig.get_ylabel() == "score (axis 0–1)"
    assert irs.get_ylim() == (0.0, 1.2)  # 1.2 cannot be an IRS: the axis shows it
    low, high = total_correlation.get_ylim()
    assert 3.5 < low < 4.0 and 5.0 < high < 5.5 and total_correlation.get_ylabel() == "score"
    (line,) = error_bars(mig)
    assert [(x, half) for x, _, half in line] == [(1.0, 0.0), (2.0, 0.0)]
    assert figures.unit_interval_limits([]) == (0.0, 1.0)


def test_a_sweep_over_priors_and_posteriors_compares_them_as_columns(tmp_path: Path) -> None:
    """`-m prior=normal,mog posterior=gaussian,planar`: four real runs, the two groups
    are the table's swept columns, and each run's metrics.json says how its KL was
    computed."""
    sweep = tmp_path / "sweep"
    result = call_train(
        "-m",
        "prior=normal,mog",
        "posterior=gaussian,planar",
        *SMOKE_SWEEP[3:],
        f"hydra.sweep.dir={sweep}",
        env={"WANDB_MODE": "disabled"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    compared = compare([sweep], plots=False, save_csv=False)
    assert compared.swept == ["prior", "posterior"]  # in the order the command gives them
    rows = table_rows(compared.table)
    assert {(r["prior"], r["posterior"]) for r in rows} == {
        ("normal", "gaussian"),
        ("normal", "planar"),
        ("mog", "gaussian"),
        ("mog", "planar"),
    }
    for run in compared.runs:
        latent = json.loads((run.path / "metrics.json").read_text())["latent"]
        analytic = (run.params["prior"], run.params["posterior"]) == ("normal", "gaussian")
        assert latent["kl"] == ("analytic" if analytic else "single-sample")
