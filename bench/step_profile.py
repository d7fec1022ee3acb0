"""Where one training step of the default experiment spends its time, and what the
MLP encoder's gathered first layer saves. Run it alone on the machine.

    .venv/bin/python bench/step_profile.py [overrides ...]

- the default config's model and 40 batches of its training data; optimiser steps
  (the model's objective, backward, fused Adam with its zero_grad) timed over 5
  interleaved pairs of passes with the encoder's first layer gathering (`SparseInputLinear`,
  its default) and forced dense (the baseline, `nn.Linear`'s product), and the
  operators of 20 default steps under torch.profiler, grouped into matrix products,
  the optimiser and the rest;
- that first layer alone (forward and weight gradient), gathered against dense, on the
  data's own batches and on random binary batches of rising density: where the two
  cross is where `model.encoder.sparse_below` switches to the dense product. Both give
  the same output (the largest difference is recorded).
Writes bench/results/step_profile.json.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from record import stamp  # noqa: E402  (bench/record.py)

from vaelab.config.build import build_model  # noqa: E402
from vaelab.lightning.trainer import use_flush_denormal  # noqa: E402
from vaelab.models.backbones.sparse_input import SparseInputLinear  # noqa: E402

RESULTS = REPO / "bench" / "results" / "step_profile.json"
PASSES = 5  # interleaved pairs of passes, dense then gathered
DENSITIES = (0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.16, 0.25)


def ms_per_call(fn: Callable[[], object], calls: int = 30) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e3


def first_layer_timings(x: torch.Tensor, layer: SparseInputLinear) -> dict[str, float]:
    """Gathered against dense on one batch, interleaved, 3 repeats each."""
    x = x.flatten(1)
    threshold = layer.max_density

    def run(max_density: float) -> torch.Tensor:
        layer.max_density = max_density
        out = layer(x)
        out.sum().backward()
        return out.detach()

    difference = (run(1.0) - run(0.0)).abs().max().item()
    dense_ms, gathered_ms = [], []
    for _ in range(3):
        dense_ms.append(ms_per_call(lambda: run(0.0)))
        gathered_ms.append(ms_per_call(lambda: run(1.0)))
    layer.max_density = threshold
    return {
        "ink_fraction": float((x != 0).float().mean()),
        "dense_ms": statistics.median(dense_ms),
        "gathered_ms": statistics.median(gathered_ms),
        "max_abs_difference": difference,
    }


def density_sweep(layer: SparseInputLinear, batch_size: int) -> list[dict[str, float]]:
    """The first layer on random binary batches of rising density (its own weights)."""
    generator = torch.Generator().manual_seed(0)
    rows = []
    for density in DENSITIES:
        x = (torch.rand(batch_size, layer.in_features, generator=generator) < density).float()
        rows.append({"density": density, **first_layer_timings(x, layer)})
    return rows


def main() -> None:
    use_flush_denormal(True)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=sys.argv[1:])
    torch.manual_seed(0)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = build_model(cfg, datamodule)
    first = next(m for m in model.modules() if isinstance(m, SparseInputLinear))
    threshold = first.max_density
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg.model.optimizer.lr), fused=True)
    loader = iter(datamodule.train_dataloader())
    batches: list[torch.Tensor] = [next(loader) for _ in range(40)]

    def step(x: torch.Tensor) -> None:
        out, _ = model.compute_objective(x, 0)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()

    def timed_pass(max_density: float) -> float:
        first.max_density = max_density
        start = time.perf_counter()
        for x in batches:
            step(x)
        return (time.perf_counter() - start) / len(batches) * 1e3

    for x in batches[:10]:
        step(x)
    passes: dict[str, list[float]] = {"dense": [], "gathered": []}
    for _ in range(PASSES):
        passes["dense"].append(timed_pass(0.0))
        passes["gathered"].append(timed_pass(threshold))

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for x in batches[:20]:
            step(x)
    self_us = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(self_us.values())
    matmul = sum(v for k, v in self_us.items() if k in ("aten::mm", "aten::addmm"))
    gather = sum(v for k, v in self_us.items() if "embedding_bag" in k)
    optimiser = sum(v for k, v in self_us.items() if "adam" in k.lower() or "zero_grad" in k)

    dense_ms, gathered_ms = (statistics.median(passes[k]) for k in ("dense", "gathered"))
    result = {
        "overrides": sys.argv[1:],
        "batch_size": int(batches[0].shape[0]),
        "sparse_below": threshold,
        "step_ms_per_pass": passes,
        "step_ms": {"dense": dense_ms, "gathered": gathered_ms},
        "step_speedup": dense_ms / gathered_ms,
        "step_speedup_paired_median": statistics.median(
            d / g for d, g in zip(passes["dense"], passes["gathered"], strict=True)
        ),
        "share_matmul": matmul / total,
        "share_gather": gather / total,
        "share_optimiser": optimiser / total,
        "share_other": 1 - (matmul + gather + optimiser) / total,
        "first_layer": first_layer_timings(batches[0], first),
        "first_layer_by_density": density_sweep(first, int(batches[0].shape[0])),
        "threads": torch.get_num_threads(),
        **stamp(),
    }
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
