"""`resume=auto` continues the run it finds, as the config says: the optimiser settings
of the command line are applied (and said), and a run folder that was moved or copied
keeps writing its own last.ckpt."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from helpers import default_parts, run_train
from in_process import call_train

# A constant learning rate: these tests are about the optimiser's own settings on
# resume (tests/test_lr_schedule.py resumes schedules).
SMOKE = ["debug=smoke", "logger=csv", "data.resolution=32", "model/encoder=mlp", "~model/scheduler"]
STEPS_PER_EPOCH = 4  # debug=smoke: limit_train_batches=4


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _ok(result) -> None:
    assert result.returncode == 0, result.stderr[-2000:]


def test_an_optimiser_setting_given_on_resume_is_applied_and_said(
    tmp_path: Path, trained_run
) -> None:
    run = trained_run(*SMOKE, to=tmp_path / "run")

    _ok(
        call_train(
            *SMOKE,
            "trainer.max_epochs=2",
            "model.optimizer.lr=0.01",
            "resume=auto",
            f"hydra.run.dir={run}",
        )
    )

    last = _checkpoint(run / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 2 * STEPS_PER_EPOCH
    (group,) = last["optimizer_states"][0]["param_groups"]
    assert group["lr"] == 0.01  # trained with the lr it records
    assert last["hyper_parameters"]["optimizer"]["lr"] == 0.01
    log = (run / "train.log").read_text()
    had = default_parts()["optimizer"]["lr"]  # the default preset's, which the first run used
    assert f"resume: model.optimizer.lr=0.01 (the checkpoint had {had}): applied" in log


def test_another_optimiser_class_on_resume_is_refused_in_one_line(
    tmp_path: Path, trained_run
) -> None:
    run = trained_run(*SMOKE, to=tmp_path / "run")
    before = (run / "checkpoints" / "last.ckpt").read_bytes()

    result = run_train(
        *SMOKE,
        "trainer.max_epochs=2",
        "model.optimizer._target_=torch.optim.SGD",
        "resume=auto",
        f"hydra.run.dir={run}",
    )

    assert result.returncode == 2
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("vaelab: error:")]
    assert "was trained with model.optimizer._target_=torch.optim.Adam" in line
    assert "Traceback" not in result.stderr
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == before


def test_resume_from_a_damaged_last_checkpoint_is_refused_in_one_line(
    tmp_path: Path, trained_run
) -> None:
    from data_fixtures import damage_tensor_bytes

    run = trained_run(*SMOKE, to=tmp_path / "run")
    damage_tensor_bytes(run / "checkpoints" / "last.ckpt")

    result = run_train(*SMOKE, "trainer.max_epochs=2", "resume=auto", f"hydra.run.dir={run}")

    assert result.returncode == 2
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("vaelab: error:")]
    assert f"checkpoint {run}/checkpoints/last.ckpt is damaged" in line
    assert "resume=intact" in line  # what to type instead
    assert "Traceback" not in result.stderr


def test_resume_intact_passes_over_a_damaged_last_checkpoint_and_says_which_it_used(
    tmp_path: Path, trained_run
) -> None:
    from data_fixtures import damage_tensor_bytes

    run = trained_run(*SMOKE, to=tmp_path / "run")
    checkpoints = run / "checkpoints"
    best_weights = _checkpoint(checkpoints / "best.ckpt")["state_dict"]
    damage_tensor_bytes(checkpoints / "last.ckpt")

    result = call_train(*SMOKE, "trainer.max_epochs=2", "resume=intact", f"hydra.run.dir={run}")

    _ok(result)
    log = (run / "train.log").read_text()
    assert f"resume=intact: passing over {checkpoints}/last.ckpt (checkpoint" in log
    assert f"resume=intact: continuing from {checkpoints}/best.ckpt (step 4)" in log
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
    last = _checkpoint(checkpoints / "last.ckpt")  # written anew over the damaged one
    assert last["global_step"] == 2 * STEPS_PER_EPOCH
    # it trained on from best.ckpt's weights: one more epoch moved them
    assert any(not torch.equal(last["state_dict"][k], v) for k, v in best_weights.items())


def test_resume_intact_with_every_checkpoint_damaged_is_one_line(
    tmp_path: Path, trained_run
) -> None:
    from data_fixtures import damage_tensor_bytes

    run = trained_run(*SMOKE, to=tmp_path / "run")
    for name in ("best.ckpt", "last.ckpt"):
        damage_tensor_bytes(run / "checkpoints" / name)

    result = run_train(*SMOKE, "trainer.max_epochs=2", "resume=intact", f"hydra.run.dir={run}")

    assert result.returncode == 2
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("vaelab: error:")]
    assert f"no intact checkpoint in {run}/checkpoints (" in line
    assert "hydra.run.dir=" in line
    assert "Traceback" not in result.stderr


def test_a_moved_run_folder_resumes_from_and_writes_its_own_last_checkpoint(
    tmp_path: Path, trained_run
) -> None:
    first, moved = tmp_path / "first", tmp_path / "elsewhere" / "run"
    trained_run(*SMOKE, to=first)
    moved.parent.mkdir()
    shutil.move(first, moved)

    for epochs in (2, 3):
        _ok(
            call_train(
                *SMOKE, f"trainer.max_epochs={epochs}", "resume=auto", f"hydra.run.dir={moved}"
            )
        )
        checkpoints = moved / "checkpoints"
        assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
        last = _checkpoint(checkpoints / "last.ckpt")
        assert last["global_step"] == epochs * STEPS_PER_EPOCH  # continued, not restarted
        (state,) = [v for k, v in last["callbacks"].items() if k.startswith("ModelCheckpoint")]
        assert state["dirpath"] == str(checkpoints)
        assert state["last_model_path"] == str(checkpoints / "last.ckpt")
        assert Path(state["best_model_path"]).parent == checkpoints


def test_resuming_a_finished_run_keeps_its_val_metrics_and_each_logged_step_once(
    tmp_path: Path, trained_run
) -> None:
    import csv
    import json

    run = trained_run(*SMOKE, to=tmp_path / "run")
    before = json.loads((run / "metrics.json").read_text())["metrics"]

    _ok(call_train(*SMOKE, "resume=auto", f"hydra.run.dir={run}"))  # nothing left to train

    after = json.loads((run / "metrics.json").read_text())["metrics"]
    val = {k: v for k, v in before.items() if k.startswith("val/")}
    assert val and {k: after[k] for k in val} == val
    assert after["test/nelbo"] == before["test/nelbo"]
    with open(run / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    train_steps = [int(r["step"]) for r in rows if r["train/loss"]]
    assert train_steps == list(range(STEPS_PER_EPOCH))  # the first run's, once each
    assert sum(1 for r in rows if r["test/nelbo"]) == 1  # the test, once


def test_the_csv_logger_internals_vaelab_relies_on_still_exist(tmp_path: Path) -> None:
    """vaelab.tracking.csv_logger reaches into Lightning's CSVLogger: fail if it moves."""
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    from vaelab.tracking.csv_logger import CSVLogger

    logger = CSVLogger(save_dir=tmp_path, name="csv", version="")
    assert hasattr(logger, "_experiment") and hasattr(logger, "_fs")
    assert isinstance(logger.root_dir, str) and isinstance(logger.log_dir, str)
    writer = logger.experiment
    assert isinstance(writer, ExperimentWriter)
    assert writer.metrics_keys == [] and writer.metrics_file_path.endswith("metrics.csv")
    assert callable(getattr(ExperimentWriter.__mro__[1], "_check_log_dir_exists", None))


def test_a_run_killed_in_its_test_stage_resumes_to_test_and_keeps_its_fit(
    tmp_path: Path,
) -> None:
    import csv
    import json

    from helpers import kill_train_when

    run = tmp_path / "run"
    # The whole test split in small batches: a test stage of seconds, to be killed in.
    slow_test = [*SMOKE, "trainer.limit_test_batches=1.0", "data.eval_batch_size=16"]
    summary = run / "metrics.json"

    def status() -> str | None:
        try:
            return json.loads(summary.read_text())["status"]
        except (OSError, ValueError):
            return None

    kill_train_when(lambda: status() == "fitted", *slow_test, f"hydra.run.dir={run}")
    fitted = json.loads(summary.read_text())
    assert fitted["status"] == "fitted"
    val = {k: v for k, v in fitted["metrics"].items() if k.startswith("val/")}
    assert val and not [k for k in fitted["metrics"] if k.startswith("test/")]

    _ok(call_train(*slow_test, "resume=auto", f"hydra.run.dir={run}"))

    done = json.loads(summary.read_text())
    assert done["status"] == "finished"
    assert {k: done["metrics"][k] for k in val} == val  # the fit's numbers, kept
    assert done["metrics"]["test/nelbo"] is not None
    assert done["global_step"] == STEPS_PER_EPOCH  # nothing trained again
    with open(run / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows if r["train/loss"]] == list(range(STEPS_PER_EPOCH))
    assert sum(1 for r in rows if r["test/nelbo"]) == 1
