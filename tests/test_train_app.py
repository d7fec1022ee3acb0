"""`python src/train.py` as a user runs it: the run folder it leaves and what is in it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from helpers import run_train
from in_process import call_train
from PIL import Image

SHORT_RUN = [
    "debug=smoke",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=12",
    "data.resolution=32",
    "model/encoder=mlp",
    "model/decoder=mlp",
    "latent_dim=4",
    "data.batch_size=32",
    "model.optimizer.lr=3e-3",
]
ELBO_KEYS = {"loss", "recon", "kl", "nelbo", "beta"}


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("short") / "run"
    result = call_train(*SHORT_RUN, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_run_folder_layout(short_run: Path) -> None:
    for path in [
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "metrics.json",
        "csv/metrics.csv",
        "images/recon.png",
        "images/samples.png",
        "images/epoch_002_recon.png",
        "train.log",
    ]:
        assert (short_run / path).is_file(), path


def test_metrics_json_has_final_val_and_test_metrics(short_run: Path) -> None:
    summary = json.loads((short_run / "metrics.json").read_text())
    assert summary["status"] == "finished"
    metrics = summary["metrics"]
    for stage in ("val", "test"):
        assert {f"{stage}/{k}" for k in ELBO_KEYS} <= set(metrics)
        recon, kl, nelbo = (metrics[f"{stage}/{k}"] for k in ("recon", "kl", "nelbo"))
        assert nelbo == pytest.approx(recon + kl, rel=1e-5)
        assert metrics[f"{stage}/loss"] == pytest.approx(nelbo, rel=1e-5)  # beta = 1
    assert metrics["test/bpd"] == pytest.approx(
        metrics["test/nelbo"] / (32 * 32 * 0.6931471805599453), rel=1e-5
    )
    assert summary["params"] == {"beta": 1.0, "latent_dim": 4, "seed": 0}
    assert "latent_dim=4" in summary["overrides"]
    assert summary["choices"]["data"] == "shapes" and summary["choices"]["model/encoder"] == "mlp"
    assert summary["epochs"] == 3 and summary["global_step"] == 36
    assert summary["wall_time_s"] > 0
    assert summary["versions"]["torch"].startswith("2.")
    assert Path(summary["best_checkpoint"]["path"]).name == "best.ckpt"


def test_short_run_lowers_val_nelbo(short_run: Path) -> None:
    with open(short_run / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/nelbo")]
    per_epoch = [float(r["val/nelbo"]) for r in rows]
    assert len(per_epoch) == 3
    assert per_epoch[-1] < per_epoch[0] - 5.0, per_epoch


def test_images_are_grids_of_the_data(short_run: Path) -> None:
    recon = Image.open(short_run / "images" / "recon.png")
    samples = Image.open(short_run / "images" / "samples.png")
    # 16 images, 8 per row: 2 rows of originals + 2 of reconstructions, 34 px cells
    # (32 + 2 padding) + 2, upscaled x2.
    assert recon.size == (2 * (8 * 34 + 2), 2 * (4 * 34 + 2))
    assert samples.size == (2 * (8 * 34 + 2), 2 * (2 * 34 + 2))
    assert len(set(recon.convert("L").tobytes())) > 1


def test_checkpoint_reloads_with_no_arguments(short_run: Path) -> None:
    from vaelab.data.shapes import ShapesDataModule
    from vaelab.models import VAE

    model = VAE.load_from_checkpoint(short_run / "checkpoints" / "last.ckpt")
    assert model.device.type == "cpu"
    assert model.latent_dim == 4 and model.data_shape == (1, 32, 32)
    batch = ShapesDataModule(resolution=32).example_batch(8)
    model.eval()
    torch.manual_seed(0)
    first = model.elbo(batch)
    again = VAE.load_from_checkpoint(short_run / "checkpoints" / "last.ckpt").eval()
    torch.manual_seed(0)
    second = again.elbo(batch)
    for key in ("recon", "kl", "nelbo"):
        torch.testing.assert_close(first[key], second[key])
    # The reloaded weights are the trained ones, not a fresh initialisation.
    summary = json.loads((short_run / "metrics.json").read_text())
    assert first["nelbo"].mean().item() < summary["metrics"]["val/nelbo"] * 1.5


def test_incompatible_likelihood_is_one_line(tmp_path: Path) -> None:
    result = run_train(
        "debug=smoke", "likelihood=discretized_logistic", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("vaelab: error:")]
    assert lines == [
        "vaelab: error: likelihood=discretized_logistic models 256-level images but the data "
        "has 2 levels per pixel; use likelihood=bernoulli or likelihood=gaussian"
    ]
    assert "Traceback" not in result.stderr


def test_trainer_switches_drop_their_callbacks() -> None:
    # `trainer.enable_progress_bar=false` with the default callbacks would be a
    # Lightning error; the app drops the callbacks the switch turns off instead.
    from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
    from omegaconf import OmegaConf

    from vaelab.callbacks import Timing
    from vaelab.lightning.trainer import without_disabled

    callbacks = [TQDMProgressBar(), ModelCheckpoint(), Timing()]
    both_off = OmegaConf.create({"enable_progress_bar": False, "enable_checkpointing": False})
    assert [type(c) for c in without_disabled(callbacks, both_off)] == [Timing]
    bar_off = OmegaConf.create({"enable_progress_bar": False})
    assert [type(c) for c in without_disabled(callbacks, bar_off)] == [ModelCheckpoint, Timing]
    assert without_disabled(callbacks, OmegaConf.create({})) == callbacks


def test_the_job_starts_from_what_the_checks_built_and_trains_the_same_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single run is checked and its data module and model built once, by the
    pre-flight checks (vaelab.config.handover): the job does not check again. A job
    that checks and builds them itself (a multirun's, a cluster node's) trains the
    same numbers."""
    import json

    import vaelab.train
    from vaelab.config import handover

    checks_in_job = []
    check_config = vaelab.train.check_config

    def counted(*args: object, **kwargs: object) -> object:
        checks_in_job.append(args)
        return check_config(*args, **kwargs)

    monkeypatch.setattr(vaelab.train, "check_config", counted)
    runs = {"handed": tmp_path / "handed", "built_in_job": tmp_path / "built_in_job"}
    first = call_train("debug=smoke", "logger=csv", f"hydra.run.dir={runs['handed']}")
    assert first.returncode == 0, first.stderr[-3000:]
    assert checks_in_job == []
    monkeypatch.setattr(handover, "hand_over", lambda *args: None)
    second = call_train("debug=smoke", "logger=csv", f"hydra.run.dir={runs['built_in_job']}")
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(checks_in_job) == 1
    metrics = {
        k: json.loads((run / "metrics.json").read_text())["metrics"] for k, run in runs.items()
    }
    for key in ("val/nelbo", "test/nelbo", "test/nll_iwae"):
        assert metrics["handed"][key] == metrics["built_in_job"][key], key


def test_continuing_from_a_checkpoint_at_its_end_tests_that_checkpoint(
    trained_run, tmp_path: Path
) -> None:
    """`ckpt_path=<run>/checkpoints/last.ckpt` whose run already reached max_epochs trains
    nothing in the new folder; the test stage scores the checkpoint itself (its callback
    state's best path names a file the new folder never got)."""
    smoke = ("debug=smoke", "data.resolution=32", "logger=csv")
    run = trained_run(*smoke, to=tmp_path / "run")
    again = tmp_path / "again"
    result = call_train(*smoke, f"ckpt_path={run}/checkpoints/last.ckpt", f"hydra.run.dir={again}")
    assert result.returncode == 0, result.stderr[-3000:]
    first = json.loads((run / "metrics.json").read_text())
    second = json.loads((again / "metrics.json").read_text())
    assert second["status"] == "finished"
    assert second["global_step"] == first["global_step"]  # no step trained
    # One epoch: best and last hold the same weights, and the test split's posterior
    # draws come from each example's index, so the numbers are the same to the bit.
    assert second["metrics"]["test/nelbo"] == first["metrics"]["test/nelbo"]
