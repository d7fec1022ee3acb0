"""Where the default experiment's training step goes between a bare optimiser step and
the trained run. Run it alone on the machine.

    .venv/bin/python bench/step_overhead.py [overrides ...]

One process, one model, the default config; each repeat runs these passes in turn,
each on `STEPS` steps (the first `WARMUP` of a pass untimed):

- `bare`: the model's objective, backward and fused Adam on batches rendered before
  the pass (bench/step_profile.py's step: no data loading in the time);
- `hand`: the same step on the training loader's own batches, rendered as it goes
  (data loading timed apart from the step);
- `trainer`: `Trainer.fit` as `src/train.py` builds it (the config's callbacks and
  loggers, W&B offline), one epoch of `STEPS` batches without validation; a callback
  times each batch from `on_train_batch_start` to `on_train_batch_end` and the gap to
  the next batch's start (the loop fetching the next batch);
- `trainer_bare`: the same Trainer with no callbacks and no loggers.

Per-step times are medians over a pass; the report gives each pass's median over the
repeats and each variant's ratio to `bare` paired within a repeat.
Writes bench/results/step_overhead.json.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from vaelab.config.build import build_model, instantiate_group  # noqa: E402
from vaelab.config.resolvers import register_resolvers  # noqa: E402
from vaelab.lightning.trainer import (  # noqa: E402
    build_trainer,
    tidy_lightning_output,
    use_flush_denormal,
    without_disabled,
)
from vaelab.tracking.setup import finish_loggers  # noqa: E402

RESULTS = REPO / "bench" / "results" / "step_overhead.json"
REPEATS = 4
STEPS = 80
WARMUP = 10


class StepClock(L.Callback):
    """Times each training batch (hook to hook) and the loop's gap before the next."""

    def __init__(self) -> None:
        self.step_s: list[float] = []
        self.gap_s: list[float] = []
        self._start = self._end = None

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, idx: int) -> None:
        now = time.perf_counter()
        if self._end is not None:
            self.gap_s.append(now - self._end)
        self._start = now

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        self._end = time.perf_counter()
        self.step_s.append(self._end - self._start)


def median_ms(values: list[float]) -> float:
    return statistics.median(values[WARMUP:]) * 1e3


def main() -> None:
    register_resolvers()
    tidy_lightning_output()
    use_flush_denormal(True)
    os.environ.setdefault("WANDB_MODE", "offline")
    # The Trainer passes' checkpoints, CSV and W&B files are not results: removed after.
    with tempfile.TemporaryDirectory(prefix="step_overhead_") as tmp:
        result = measure(Path(tmp))
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))


def measure(out_dir: Path) -> dict[str, Any]:
    """Every pass of every repeat, run with its files under `out_dir`."""
    os.environ["WANDB_DIR"] = str(out_dir)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"paths.output_dir={out_dir}",
                f"trainer.limit_train_batches={STEPS}",
                "trainer.limit_val_batches=0",
                "trainer.max_epochs=1",
                "trainer.enable_progress_bar=true",
                *sys.argv[1:],
            ],
        )
    torch.manual_seed(0)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = build_model(cfg, datamodule)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg.model.optimizer.lr), fused=True)

    def step(x: torch.Tensor) -> None:
        out, _ = model.compute_objective(x, 0)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()

    def first_batches(n: int) -> list[torch.Tensor]:
        return [x for x, _ in zip(datamodule.train_dataloader(), range(n), strict=False)]

    def bare() -> dict[str, float]:
        times = []
        for x in first_batches(STEPS):
            start = time.perf_counter()
            step(x)
            times.append(time.perf_counter() - start)
        return {"step_ms": median_ms(times)}

    def hand() -> dict[str, float]:
        loader: Iterator[torch.Tensor] = iter(datamodule.train_dataloader())
        steps, fetches = [], []
        for _ in range(STEPS):
            start = time.perf_counter()
            x = next(loader)
            fetched = time.perf_counter()
            step(x)
            fetches.append(fetched - start)
            steps.append(time.perf_counter() - fetched)
        return {"step_ms": median_ms(steps), "fetch_ms": median_ms(fetches)}

    def trainer(with_callbacks: bool) -> dict[str, float]:
        clock = StepClock()
        if with_callbacks:
            trainer_cfg = cfg.trainer
            callbacks = without_disabled(instantiate_group(cfg.callbacks), cfg.trainer)
            loggers = instantiate_group(cfg.logger)
        else:
            trainer_cfg = OmegaConf.create(OmegaConf.to_container(cfg.trainer, resolve=True))
            trainer_cfg.enable_progress_bar = False
            trainer_cfg.enable_checkpointing = False
            callbacks, loggers = [], []
        fit = build_trainer(trainer_cfg, [*callbacks, clock], loggers)
        fit.fit(model, datamodule=datamodule)
        finish_loggers(loggers)
        return {"step_ms": median_ms(clock.step_s), "fetch_ms": median_ms(clock.gap_s)}

    variants = {
        "bare": bare,
        "hand": hand,
        "trainer": lambda: trainer(True),
        "trainer_bare": lambda: trainer(False),
    }
    for x in first_batches(20):
        step(x)  # warm the allocator and the kernels before any pass is timed
    passes: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for _ in range(REPEATS):
        for name, run in variants.items():
            passes[name].append(run())

    def summary(name: str) -> dict[str, Any]:
        rows = passes[name]
        keys = rows[0].keys()
        row: dict[str, Any] = {k: statistics.median(r[k] for r in rows) for k in keys}
        row["step_vs_bare_paired_median"] = statistics.median(
            r["step_ms"] / b["step_ms"] for r, b in zip(rows, passes["bare"], strict=True)
        )
        return row

    return {
        "overrides": sys.argv[1:],
        "steps_per_pass": STEPS,
        "warmup_steps": WARMUP,
        "repeats": REPEATS,
        "passes": passes,
        "summary": {name: summary(name) for name in variants},
        "torch": torch.__version__,
        "lightning": L.__version__,
        "threads": torch.get_num_threads(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


if __name__ == "__main__":
    main()
