"""Cost of one training epoch of the data path, against plain tensor slicing of the same data.

Data: a Fashion-MNIST-sized uint8 tensor (60,000 x 1 x 28 x 28), batch 128, every
batch converted to float in [0, 1], as the model receives it. Timed, one epoch each:

- ``batch_loader``: vaelab's `BatchLoader` over a `TensorSource` (shuffled).
- ``plain_slicing``: the loop one writes by hand: ``data[perm[i:i+128]].float() / 255``.
- ``plain_index_select``: the same loop with ``index_select``, the gather the loader
  uses; the ratio to it is the loader's own overhead.
- ``contiguous_slicing``: ``data[i:i+128]`` without shuffling: a floor no shuffled
  epoch reaches, since gathering random rows misses the cache.
- ``dataloader_tensordataset``: ``DataLoader(TensorDataset(data), shuffle=True)``,
  for contrast (per-item ``__getitem__`` and collate).

Methods run interleaved, in a rotating order, for `--repeats` rounds after a warm-up
round, so that drifting machine load hits every method alike; ratios are taken on a
low percentile (the 10th) of the per-epoch times, the least disturbed runs.

    python bench/data_loading.py [--repeats 30]   # writes bench/results/data_loading.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from record import stamp

from vaelab.data.batching import BatchLoader, TensorSource  # imported after the path fix above

N, SHAPE, BATCH = 60_000, (1, 28, 28), 128
TARGET_RATIO = 1.2
PERCENTILE = 10
RESULTS = Path(__file__).resolve().parent / "results" / "data_loading.json"


def epochs(data: torch.Tensor) -> dict[str, Callable[[], int]]:
    """One function per method; each runs a full epoch and returns the batches seen."""
    n_batches = len(data) // BATCH  # every method drops the ragged last batch
    loader = BatchLoader(TensorSource(data), BATCH, shuffle=True, drop_last=True)
    dataloader = DataLoader(TensorDataset(data), batch_size=BATCH, shuffle=True, drop_last=True)

    def batch_loader() -> int:
        count = 0
        for _ in loader:
            count += 1
        return count

    def plain_slicing() -> int:
        perm = torch.randperm(len(data))
        for b in range(n_batches):
            data[perm[b * BATCH : (b + 1) * BATCH]].float().div_(255)
        return n_batches

    def plain_index_select() -> int:
        perm = torch.randperm(len(data))
        for b in range(n_batches):
            data.index_select(0, perm[b * BATCH : (b + 1) * BATCH]).float().div_(255)
        return n_batches

    def contiguous_slicing() -> int:
        for b in range(n_batches):
            data[b * BATCH : (b + 1) * BATCH].float().div_(255)
        return n_batches

    def dataloader_tensordataset() -> int:
        count = 0
        for (x,) in dataloader:
            x.float().div_(255)
            count += 1
        return count

    return {
        "batch_loader": batch_loader,
        "plain_slicing": plain_slicing,
        "plain_index_select": plain_index_select,
        "contiguous_slicing": contiguous_slicing,
        "dataloader_tensordataset": dataloader_tensordataset,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds (default 30)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    torch.manual_seed(0)
    data = torch.randint(0, 256, (N, *SHAPE), dtype=torch.uint8)
    methods = epochs(data)
    names = list(methods)
    expected = N // BATCH
    for name in names:  # warm-up round; also checks every method sees every batch
        assert methods[name]() == expected, name

    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            methods[name]()
            times[name].append(time.perf_counter() - start)

    low = {name: float(np.percentile(t, PERCENTILE)) for name, t in times.items()}
    ratios = {
        "batch_loader/plain_slicing": low["batch_loader"] / low["plain_slicing"],
        "batch_loader/plain_index_select": low["batch_loader"] / low["plain_index_select"],
        "batch_loader/contiguous_slicing": low["batch_loader"] / low["contiguous_slicing"],
        "dataloader_tensordataset/plain_index_select": low["dataloader_tensordataset"]
        / low["plain_index_select"],
    }
    result = {
        "benchmark": "one training epoch of batches, uint8 -> float in [0, 1]",
        "data": {"shape": [N, *SHAPE], "dtype": "uint8", "batch_size": BATCH},
        "repeats": args.repeats,
        "statistic": f"p{PERCENTILE} of per-epoch seconds",
        "seconds_per_epoch": {
            name: {
                f"p{PERCENTILE}": low[name],
                "min": min(t),
                "median": float(np.median(t)),
            }
            for name, t in times.items()
        },
        "ratios": ratios,
        "target": f"batch_loader <= {TARGET_RATIO}x plain slicing of the same shuffled batches",
        "target_met": ratios["batch_loader/plain_slicing"] <= TARGET_RATIO
        and ratios["batch_loader/plain_index_select"] <= TARGET_RATIO,
        **stamp(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    for name in names:
        print(f"{name:26s} p{PERCENTILE} {low[name] * 1e3:8.2f} ms/epoch")
    for key, value in ratios.items():
        print(f"{key:44s} {value:6.2f}x")
    print(f"target met: {result['target_met']}  -> {args.out}")


if __name__ == "__main__":
    main()
