"""Where one training step of the default experiment spends its time, and what a
sparse first layer would save. Run it alone on the machine.

    .venv/bin/python bench/step_profile.py [overrides ...]

- the default config's model and 40 batches of its training data; optimiser steps
  (the model's objective, backward, fused Adam) timed over 3 passes, and the operators
  of 20 steps under torch.profiler, grouped into matrix products, Adam and the rest;
- the encoder's first layer alone (forward and weight gradient), as the dense
  `nn.Linear` computes it and as a sum of the weight rows of the lit pixels
  (`F.embedding_bag` with the pixel values as weights): shapes images are a few per
  cent ink, so the dense product multiplies mostly by zeros. Both give the same output
  (the largest difference is recorded).
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
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from vaelab.app import build_model, use_flush_denormal  # noqa: E402

RESULTS = REPO / "bench" / "results" / "step_profile.json"


def ms_per_call(fn: Callable[[], object], calls: int = 30) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e3


def first_layer_timings(x: torch.Tensor, layer: torch.nn.Linear) -> dict[str, float]:
    """Dense against gathered first layer, interleaved, 3 repeats each."""
    flat_x = x.flatten(1)
    n_in = flat_x.shape[1]
    weight_rows = torch.nn.Parameter(layer.weight.detach().t().contiguous())

    def dense() -> None:
        layer(flat_x).sum().backward()

    def gathered_forward() -> torch.Tensor:
        flat = flat_x.reshape(-1)
        lit = flat.nonzero().squeeze(1)
        rows = torch.div(lit, n_in, rounding_mode="floor")
        counts = torch.bincount(rows, minlength=flat_x.shape[0])
        offsets = torch.cumsum(counts, 0) - counts
        summed = F.embedding_bag(
            lit % n_in, weight_rows, offsets, mode="sum", per_sample_weights=flat[lit]
        )
        return summed + layer.bias

    def gathered() -> None:
        gathered_forward().sum().backward()

    difference = (gathered_forward() - layer(flat_x)).abs().max().item()
    dense_ms, gathered_ms = [], []
    for _ in range(3):
        dense_ms.append(ms_per_call(dense))
        gathered_ms.append(ms_per_call(gathered))
    return {
        "ink_fraction": float((flat_x != 0).float().mean()),
        "dense_ms": statistics.median(dense_ms),
        "gathered_ms": statistics.median(gathered_ms),
        "max_abs_difference": difference,
    }


def main() -> None:
    use_flush_denormal(True)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=sys.argv[1:])
    torch.manual_seed(0)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = build_model(cfg, datamodule)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg.model.optimizer.lr), fused=True)
    loader = iter(datamodule.train_dataloader())
    batches = [next(loader) for _ in range(40)]
    batches = [b[0] if isinstance(b, list | tuple) else b for b in batches]

    def step(x: torch.Tensor) -> None:
        out, _ = model.compute_objective(x, 0)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()

    for x in batches[:10]:
        step(x)
    passes = []
    for _ in range(3):
        start = time.perf_counter()
        for x in batches:
            step(x)
        passes.append((time.perf_counter() - start) / len(batches) * 1e3)

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for x in batches[:20]:
            step(x)
    self_us = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(self_us.values())
    matmul = sum(v for k, v in self_us.items() if k in ("aten::mm", "aten::addmm"))
    adam = sum(v for k, v in self_us.items() if "adam" in k.lower())

    first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    result = {
        "overrides": sys.argv[1:],
        "batch_size": int(batches[0].shape[0]),
        "step_ms_per_pass": passes,
        "step_ms": statistics.median(passes),
        "share_matmul": matmul / total,
        "share_adam": adam / total,
        "share_other": 1 - (matmul + adam) / total,
        "first_layer": first_layer_timings(batches[0], first),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
