"""Lightning callbacks: image grids, the run summary (metrics.json), RNG state in
checkpoints, the non-finite loss guard, and reconstruction quality for evaluation."""

from vaelab.callbacks.image_grids import ImageGrids
from vaelab.callbacks.nonfinite_guard import NonFiniteGuard, NonFiniteLossError
from vaelab.callbacks.reconstruction_quality import ReconstructionQuality
from vaelab.callbacks.rng_state import RNGState
from vaelab.callbacks.run_summary import RunSummary
from vaelab.callbacks.timing import Timing

__all__ = [
    "ImageGrids",
    "NonFiniteGuard",
    "NonFiniteLossError",
    "RNGState",
    "ReconstructionQuality",
    "RunSummary",
    "Timing",
]
