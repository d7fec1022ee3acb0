"""What the number of boosting rounds does to DCI, on the codes the fast protocol
scores: whether its classifiers could fit fewer than disentanglement_lib's 100 rounds
to save time. Run it alone on the machine.

    .venv/bin/python bench/dci_rounds.py <checkpoint of a shapes run> ...

For each checkpoint: the first 1,000 + 500 shapes of the fast protocol's i.i.d. pools
(its seed: the codes the end-of-training DCI reads), encoded once; DCI
(disentanglement, completeness, test informativeness) and its time with 10, 20, 50
and 100 rounds on those same codes. Also a known case that is not entangled: codes
that are the factors themselves (scaled to unit range) plus noise of standard
deviation 0.1, ten codes for the five shapes factors (five pure noise).
Writes bench/results/dci_rounds.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from vaelab.data.factors import factor_space_of  # noqa: E402
from vaelab.data.shapes import ShapesDataModule  # noqa: E402
from vaelab.metrics.disentanglement import dci, sample_factors  # noqa: E402
from vaelab.metrics.protocol import factor_encoder, pool_sizes  # noqa: E402
from vaelab.metrics.registry import SHIPPED  # noqa: E402
from vaelab.runs.trained import load_vae  # noqa: E402

RESULTS = REPO / "bench" / "results" / "dci_rounds.json"
ROUNDS = (10, 20, 50, 100)
SEED = 0


def by_rounds(
    z_train: np.ndarray, f_train: np.ndarray, z_test: np.ndarray, f_test: np.ndarray
) -> dict[str, dict[str, float]]:
    rows = {}
    for rounds in ROUNDS:
        start = time.perf_counter()
        scores = dci(z_train, f_train, z_test, f_test, n_estimators=rounds, seed=SEED)
        rows[str(rounds)] = {
            "dci": scores["dci"],
            "completeness": scores["dci/completeness"],
            "informativeness_test": scores["dci/informativeness_test"],
            "seconds": time.perf_counter() - start,
        }
    return rows


def main() -> None:
    metrics = list(SHIPPED.values())
    fast = {m.name: m.preset("fast") for m in metrics}
    counts = fast["dci"]
    n_train, n_test = int(counts["n_train"]), int(counts["n_test"])
    space = factor_space_of(ShapesDataModule())
    assert space is not None
    # The pools the end-of-training metrics draw, of which DCI reads the first rows.
    pool_train, pool_test = pool_sizes(metrics, fast)
    rng = np.random.RandomState(SEED)
    f_train = sample_factors(space.sizes, pool_train, rng)[:n_train]
    f_test = sample_factors(space.sizes, pool_test, rng)[:n_test]
    cases: dict[str, object] = {}

    for path in sys.argv[1:]:
        model, _ = load_vae(path)
        encode = factor_encoder(model, space, 500, "cpu")
        cases[path] = by_rounds(encode(f_train), f_train, encode(f_test), f_test)
        print(path, json.dumps(cases[path]))

    sizes = np.asarray(space.sizes, dtype=float)

    def factor_codes(f: np.ndarray) -> np.ndarray:
        scaled = f / np.maximum(sizes - 1, 1)
        padded = np.concatenate([scaled, np.zeros((len(f), 10 - f.shape[1]))], axis=1)
        return padded + 0.1 * rng.randn(*padded.shape)

    cases["factors plus noise"] = by_rounds(
        factor_codes(f_train), f_train, factor_codes(f_test), f_test
    )
    print("factors plus noise", json.dumps(cases["factors plus noise"]))
    result = {"fast_counts": counts, "rounds": list(ROUNDS), "cases": cases}
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
