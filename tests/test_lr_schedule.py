"""`model/scheduler=cosine|onecycle`: a learning-rate schedule stepped once per optimiser
step, sized by the run's length, logged as `train/lr`, saved and continued on resume,
and refused in one line where it cannot work."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import default_parts, run_train
from in_process import call_train

from vaelab.models.lr_schedule import WarmupCosine

SMOKE = ["debug=smoke", "logger=csv", "data.resolution=32", "model/encoder=mlp"]
STEPS_PER_EPOCH = 4  # debug=smoke: limit_train_batches=4


def _preset_lr() -> float:
    """The default preset's learning rate (conf/model/mlp.yaml), the schedules' peak."""
    return float(default_parts()["optimizer"]["lr"])


def _logged_lr(run: Path) -> dict[int, float]:
    with open(run / "csv" / "metrics.csv", newline="") as f:
        return {int(r["step"]): float(r["train/lr"]) for r in csv.DictReader(f) if r["train/lr"]}


def _ok(result) -> None:
    assert result.returncode == 0, result.stderr[-2000:]


def _cosine(steps: np.ndarray, total: int, warmup: int = 0, final: float = 0.0) -> np.ndarray:
    decay = final + (1 - final) * 0.5 * (1 + np.cos(np.pi * (steps - warmup) / (total - warmup)))
    return np.where(steps < warmup, (steps + 1) / max(warmup, 1), decay)


def test_warmup_cosine_follows_its_closed_form() -> None:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = WarmupCosine(optimizer, total_steps=20, warmup_steps=4, final_lr_fraction=0.1)
    used = []
    for _ in range(24):  # past the end: it stays at the final fraction
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    steps = np.arange(24)
    expected = 0.1 * _cosine(np.minimum(steps, 20), total=20, warmup=4, final=0.1)
    np.testing.assert_allclose(used, expected, rtol=1e-12)
    assert used[0] == pytest.approx(0.1 / 4) and used[4] == pytest.approx(0.1)
    assert used[-1] == pytest.approx(0.01)


def test_a_run_logs_the_rate_of_each_step_sized_by_its_epochs(tmp_path: Path) -> None:
    _ok(
        call_train(
            *SMOKE, "trainer.max_epochs=2", "model/scheduler=cosine", f"hydra.run.dir={tmp_path}"
        )
    )
    logged = _logged_lr(tmp_path)
    total = 2 * STEPS_PER_EPOCH
    assert sorted(logged) == list(range(total))
    expected = _preset_lr() * _cosine(np.arange(total), total)
    np.testing.assert_allclose([logged[s] for s in range(total)], expected, rtol=1e-6)


def test_onecycle_gets_the_optimiser_steps_of_an_accumulating_run(tmp_path: Path) -> None:
    """OneCycleLR refuses a step beyond its `total_steps` and reaches its lowest rate
    only at the last one: both hold only if the run's count (2 epochs x 4 batches / 2
    accumulated) is exactly what it was given."""
    _ok(
        call_train(
            *SMOKE,
            "trainer.max_epochs=2",
            "trainer.accumulate_grad_batches=2",
            "model/scheduler=onecycle",
            f"hydra.run.dir={tmp_path}",
        )
    )
    logged = _logged_lr(tmp_path)
    assert sorted(logged) == [0, 1, 2, 3]
    assert logged[0] == pytest.approx(_preset_lr() / 25)  # max_lr / div_factor
    assert logged[3] == pytest.approx(_preset_lr() / 25 / 1e4)  # ... / final_div_factor


def test_resume_continues_the_schedule_from_the_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    common = [*SMOKE, "model/scheduler=cosine", "model.scheduler.final_lr_fraction=0.5"]
    _ok(call_train(*common, "trainer.max_epochs=1", f"hydra.run.dir={run}"))
    _ok(call_train(*common, "trainer.max_epochs=2", "resume=auto", f"hydra.run.dir={run}"))

    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    (state,) = last["lr_schedulers"]
    assert state["last_epoch"] == 2 * STEPS_PER_EPOCH  # stepped once per optimiser step
    logged = _logged_lr(run)
    # The second part follows the schedule of the 2-epoch run from step 4 on.
    resumed = np.arange(STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH)
    expected = _preset_lr() * _cosine(resumed, 2 * STEPS_PER_EPOCH, final=0.5)
    np.testing.assert_allclose([logged[s] for s in resumed], expected, rtol=1e-6)


def test_resuming_with_another_schedule_is_refused_in_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _ok(call_train(*SMOKE, "~model/scheduler", f"hydra.run.dir={run}"))  # a constant rate
    before = (run / "checkpoints" / "last.ckpt").read_bytes()

    result = run_train(
        *SMOKE,
        "trainer.max_epochs=2",
        "model/scheduler=cosine",
        "resume=auto",
        f"hydra.run.dir={run}",
    )

    assert result.returncode == 2
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("vaelab: error:")]
    assert (
        "model.scheduler=null, and the config sets vaelab.models.lr_schedule.WarmupCosine" in line
    )
    assert "Traceback" not in result.stderr
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == before


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (
            ["model/scheduler=cosine", "trainer.max_epochs=-1", "trainer.max_steps=-1"],
            "set trainer.max_steps=<steps> or trainer.max_epochs=<epochs>",
        ),
        (["model/scheduler=cosine", "model.scheduler.final_lr_fraction=2"], "final_lr_fraction"),
        (["model/scheduler=cosine", "model.scheduler.warmup_step=5"], "did you mean"),
        (
            ["model/scheduler=onecycle", "model.scheduler.pct_start=2"],
            "model.scheduler.pct_start=2 must be a number > 0 and < 1",
        ),
        (  # what only torch's constructor knows
            ["model/scheduler=onecycle", "model.scheduler.max_lr=[0.1,0.2]"],
            "model.scheduler: max_lr must have the same length as optimizer.param_groups",
        ),
    ],
)
def test_a_schedule_that_cannot_work_is_refused_before_anything_is_made(
    tmp_path: Path, overrides: list[str], says: str
) -> None:
    run = tmp_path / "run"
    result = run_train(*SMOKE, *overrides, f"hydra.run.dir={run}")
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("vaelab: error:")]
    assert says in line
    assert "Traceback" not in result.stderr
    assert not (run / "checkpoints").exists()
