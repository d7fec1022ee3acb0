"""Lightning callbacks: image grids, the run summary (metrics.json), RNG state in
checkpoints, the non-finite loss guard, gradient clipping for manual optimisation, the
disentanglement metrics after testing, reconstruction quality for evaluation, and two
lighter-per-step versions of Lightning's own (checkpoint, progress bar)."""

from vaelab.callbacks.checkpoint import ModelCheckpoint
from vaelab.callbacks.disentanglement import DisentanglementMetrics
from vaelab.callbacks.epoch_position import EpochPosition
from vaelab.callbacks.gradient_clipping import GradientClipping
from vaelab.callbacks.image_grids import ImageGrids
from vaelab.callbacks.interruption import Interruption, RunInterrupted
from vaelab.callbacks.nonfinite_guard import NonFiniteGuard, NonFiniteLossError
from vaelab.callbacks.progress_bar import ProgressBar
from vaelab.callbacks.reconstruction_quality import ReconstructionQuality
from vaelab.callbacks.rng_state import RNGState
from vaelab.callbacks.run_summary import RunSummary
from vaelab.callbacks.timing import Timing

__all__ = [
    "DisentanglementMetrics",
    "EpochPosition",
    "GradientClipping",
    "ImageGrids",
    "Interruption",
    "ModelCheckpoint",
    "NonFiniteGuard",
    "NonFiniteLossError",
    "ProgressBar",
    "RNGState",
    "ReconstructionQuality",
    "RunInterrupted",
    "RunSummary",
    "Timing",
]
