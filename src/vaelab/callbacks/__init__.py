"""Lightning callbacks: image grids and the run summary (metrics.json)."""

from vaelab.callbacks.image_grids import ImageGrids
from vaelab.callbacks.run_summary import RunSummary

__all__ = ["ImageGrids", "RunSummary"]
