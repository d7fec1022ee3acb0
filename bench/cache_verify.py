"""What checking a decoded data cache costs, against an epoch of training on it.

The first open of each cached array in a process reads the file once more to compare
its blake2b with the manifest (vaelab.data.array_cache). This script measures that on the
real Fashion-MNIST cache (55,000 training images after the validation carve) and, in the
same process and interleaved, the epoch time of the hand-written loop of
bench/speed.py on the same data, so the ratio does not depend on the machine's speed.
The target (issue 13): under 5 % of an epoch.

    VAELAB_OFFLINE=1 .venv/bin/python bench/cache_verify.py [--repeats 5]

Writes bench/results/cache_verify.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from record import stamp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "cache_verify.json"
    )
    args = parser.parse_args()

    import torch
    from speed import hand_loop

    from vaelab.data import array_cache as cache_module
    from vaelab.data.mnist import FashionMNISTDataModule

    torch.set_flush_denormal(True)
    data = FashionMNISTDataModule(binarize="none", seed=0)
    data.prepare_data()
    data.setup()
    train_u8, test_u8 = data.splits["train"].data, data.splits["test"].data
    cache = data.cache()
    sizes = {part: cache.path(part).stat().st_size for part in data.parts}

    verify_s, epoch_s = [], []
    for repeat in range(args.repeats):
        cache_module._verified.clear()  # as in a new process
        start = time.perf_counter()
        data.load_arrays(mmap=False)  # what setup reads: every part, each checksummed
        verify_and_load = time.perf_counter() - start
        start = time.perf_counter()
        data.load_arrays(mmap=False)  # the same reads, already verified
        verify_s.append(verify_and_load - (time.perf_counter() - start))
        epoch_s += hand_loop(train_u8, test_u8, epochs=1, max_steps=None, seed=repeat)["epoch_s"]

    result = {
        **stamp(),
        "what": "checksum of every cached Fashion-MNIST array on first open vs one epoch "
        "of the hand-written MLP loop (bench/speed.py), same process, interleaved",
        "cache_bytes": sum(sizes.values()),
        "verify_s": verify_s,
        "epoch_s": epoch_s,
        "verify_median_s": statistics.median(verify_s),
        "epoch_median_s": statistics.median(epoch_s),
        "ratio": statistics.median(verify_s) / statistics.median(epoch_s),
        "target_ratio": 0.05,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, indent=1))


if __name__ == "__main__":
    main()
