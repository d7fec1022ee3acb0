"""The speed benchmark's quick mode: a few steps of every part, so that it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _run_bench(tmp_path: Path, script: str, *args: str, env: dict | None = None) -> dict:
    """Run `bench/<script> <args> --out <tmp>` offline, on a data root of its own; its
    report."""
    out = tmp_path / f"{Path(script).stem}.json"
    full_env = {
        **os.environ,
        "VAELAB_OFFLINE": "1",
        "VAELAB_DATA": str(tmp_path / "data"),
        **(env or {}),
    }
    result = subprocess.run(
        [sys.executable, f"bench/{script}", *args, "--out", str(out)],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_speed_benchmark_quick_mode(tmp_path: Path) -> None:
    report = _run_bench(tmp_path, "speed.py", "--quick", env={"WANDB_MODE": "disabled"})
    mlp = report["mlp_fashion_mnist"]
    assert mlp["hand_epoch_s"] > 0 and mlp["vaelab_epoch_s"] > 0
    assert mlp["ratio_vaelab_to_hand"] == pytest.approx(mlp["vaelab_epoch_s"] / mlp["hand_epoch_s"])
    assert mlp["ratio_vaelab_to_hand_fused"] == pytest.approx(
        mlp["vaelab_epoch_s"] / mlp["hand_fused_epoch_s"]
    )
    assert len(mlp["hand_fused_epochs_s"]) == len(mlp["vaelab_epochs_s"]) == 1  # one repeat
    assert set(report["images_3x32x32"]) >= {"conv", "resnet", "conv_bf16", "bf16_speedup_conv"}
    options = report["options"]
    groups = {
        key for key, value in options.items() if isinstance(value, dict) and "options" in value
    }
    assert groups == {
        "objective",
        "model",
        "likelihood",
        "prior",
        "posterior",
        "latent",
        "conditional",
    }
    for group in groups:  # every option of every measured group, every value of a key
        measured = options[group]
        names = sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml")) or [
            "false",
            "true",
        ]
        assert set(measured["options"]) == set(names), group
        baseline = measured["options"][measured["protocol"]["baseline"]]
        assert baseline["relative"] == 1.0
        for name in names:  # the median of epoch ratios paired within each repeat
            row = measured["options"][name]
            paired = [
                b / a
                for base_run, run in zip(baseline["epochs_s"], row["epochs_s"], strict=True)
                for a, b in zip(base_run[1:], run[1:], strict=True)
            ]
            assert row["relative"] == pytest.approx(float(np.median(paired)))
    for part in ("mlp_fashion_mnist", "options", "startup"):  # each part says when and where
        assert report[part]["measured_at"].startswith("20")
        assert report[part]["machine"]["cpus"] == os.cpu_count()
    quality = report["quality"]
    assert min(quality[f"{k}_test_nelbo"] for k in ("hand", "hand_fused", "vaelab")) > 0
    assert 0 < report["startup"]["help_s"] < report["startup"]["command_to_first_step_s"]


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_cache_verification_benchmark_runs(tmp_path: Path) -> None:
    report = _run_bench(tmp_path, "cache_verify.py", "--repeats", "1")
    assert report["cache_bytes"] > 50_000_000  # the real 70,000 images and labels
    assert report["ratio"] == pytest.approx(report["verify_median_s"] / report["epoch_median_s"])


def test_disentanglement_benchmark_quick_mode(tmp_path: Path) -> None:
    report = _run_bench(tmp_path, "disentanglement.py", "--quick")
    for protocol in ("fast", "dlib"):
        run = report[protocol]
        stages = run["stages"]
        assert set(stages) == {
            "encode_pool",
            "mig",
            "factor_vae",
            "dci",
            "sap",
            "beta_vae",
            "modularity",
            "irs",
            "unsupervised",
        }
        # The encoder's work, stage by stage, adds up to the total it counted: the pool
        # (300 + 100), β-VAE's pairs (2 x 30 x 16), FactorVAE's votes (30 x 16; none
        # when every dimension of the briefly trained model is pruned as collapsed).
        assert sum(s["encoded"] for s in stages.values()) == run["encoded"]
        assert stages["encode_pool"]["encoded"] == 400
        assert stages["beta_vae"]["encoded"] == 2 * 30 * 16
        assert stages["factor_vae"]["encoded"] in (0, 30 * 16)
        assert stages["mig"]["encoded"] == 0 and stages["dci"]["encoded"] == 0
        assert 0 <= run["scores"]["mig"] <= 1


def test_the_reproductions_table_lists_every_recipe_with_its_published_number() -> None:
    result = subprocess.run(
        [sys.executable, "bench/reproduce.py", "--table"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [r for r in result.stdout.splitlines() if r.startswith("| ") and "---" not in r]
    recipes = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))
    assert [r.split(" | ")[0].removeprefix("| ") for r in rows[1:]] == recipes
    by_recipe = {r.split(" | ")[0].removeprefix("| "): r for r in rows[1:]}
    # Burda et al. 2016, Table 1, as the recipes' cards give them.
    assert "test/nll_iwae 86.76" in by_recipe["vae_mnist_burda"]
    assert "test/nll_iwae 84.78" in by_recipe["iwae_mnist_burda"]
    recorded = json.loads((REPO / "bench" / "results" / "reproductions.json").read_text())
    for name in recipes:
        if name in recorded:
            entry = recorded[name]
            assert f"{entry['metric']} {entry['value']:.4g}" in by_recipe[name]
            assert ("shortened" in by_recipe[name]) == entry["shortened"]
        else:
            assert "not run yet" in by_recipe[name]


def test_re_measuring_some_option_groups_keeps_the_others_with_their_own_dates() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    from speed import merge_option_groups

    earlier = {
        "measured_at": "2026-12-07T09:37:00+00:00",
        "commit": "229396c",
        "machine": {"cpu": "old"},
        "objective": {"options": {"beta_vae": {}}, "protocol": {}},
        "model": {"options": {}, "measured_at": "2026-12-01T00:00:00+00:00"},
    }
    measured = {"prior": {"options": {"mog": {}}, "measured_at": "2026-12-07T13:00:00+00:00"}}
    merged = merge_option_groups(earlier, measured)
    assert set(merged) == {"objective", "model", "prior"}
    assert merged["objective"]["measured_at"] == "2026-12-07T09:37:00+00:00"
    assert merged["objective"]["commit"] == "229396c"
    assert merged["model"]["measured_at"] == "2026-12-01T00:00:00+00:00"  # its own date kept
    assert merged["prior"] == measured["prior"]
    assert "measured_at" not in earlier["objective"]  # the earlier record is not changed
