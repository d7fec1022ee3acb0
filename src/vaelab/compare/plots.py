"""Output as figures: which stage and runs the plots show, each run as a
`figures.PlotPoint`, the figures (`vaelab.compare.figures` draws them) and their PNG
files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vaelab.compare import figures
from vaelab.compare.reading import Run
from vaelab.compare.table import format_param
from vaelab.metrics.names import SUPERVISED_SCORES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RATE_DISTORTION_PNG = "rate_distortion.png"


METRICS_VS_BETA_PNG = "metrics_vs_beta.png"


DISENTANGLEMENT_VS_BETA_PNG = "disentanglement_vs_beta.png"


TRADEOFF_PNG = "reconstruction_vs_disentanglement.png"


#: The file of each figure, by the name `Comparison.plots` gives it.
PNG_NAMES = {
    "rate_distortion": RATE_DISTORTION_PNG,
    "metrics_vs_beta": METRICS_VS_BETA_PNG,
    "disentanglement_vs_beta": DISENTANGLEMENT_VS_BETA_PNG,
    "reconstruction_vs_disentanglement": TRADEOFF_PNG,
}


def _plot_stage(runs: Sequence[Run]) -> str:
    """test if every run has test reconstruction and KL, else val: never mix the two."""
    if all(
        run.metrics.get("test/recon") is not None and run.metrics.get("test/kl") is not None
        for run in runs
    ):
        return "test"
    return "val"


def _beta(run: Run) -> float | None:
    value = run.value("beta")
    if value is None:
        value = run.metrics.get("val/beta")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def plot_points(
    runs: Sequence[Run], swept: Sequence[str], stage: str, notes: list[str]
) -> tuple[list[figures.PlotPoint], str]:
    """Each run with `stage` reconstruction and KL as a `PlotPoint`, and the title of
    the legend naming the settings its group label gives (a note for each run left out)."""
    others = [k for k in swept if k not in ("beta", "latent_dim", "seed")]
    points = []
    for run in runs:
        recon, kl = run.metrics.get(f"{stage}/recon"), run.metrics.get(f"{stage}/kl")
        if recon is None or kl is None:
            notes.append(
                f"{run.name}: no finite {stage}/recon and {stage}/kl; left out of the plots"
            )
            continue
        nelbo = run.metrics.get(f"{stage}/nelbo")
        latent = run.value("latent_dim")
        # Legend entries give values only; the legend's title names the keys.
        values = [latent, *(run.value(k) for k in others)]
        label = ", ".join("n/a" if v is None else format_param(v) for v in values)
        scores = {
            k: v for k in SUPERVISED_SCORES if (v := run.metrics.get(f"test/{k}")) is not None
        }
        points.append(
            figures.PlotPoint(
                beta=_beta(run),
                latent=latent,
                group=label,
                recon=recon,
                kl=kl,
                nelbo=recon + kl if nelbo is None else nelbo,
                scores=scores,
            )
        )
    return points, "latent size" + "".join(f", {k}" for k in others)


def build_figures(
    runs: Sequence[Run], swept: Sequence[str], title: str, notes: list[str]
) -> tuple[str, dict[str, Figure]]:
    """The stage the plots use and each figure by name (`PNG_NAMES`' keys), not yet
    saved: what `draw_plots` writes, for a caller that reads the axes back."""
    stage = _plot_stage(runs)
    if stage == "val":
        notes.append("plots use val metrics: not every run has test metrics")
    points, group_title = plot_points(runs, swept, stage, notes)
    drawn: dict[str, Figure] = {}
    if not points:
        return stage, drawn
    drawn["rate_distortion"] = figures.rate_distortion(points, title, stage, group_title)
    curves = figures.metrics_vs_beta(points, title, stage, group_title)
    if curves is None:
        notes.append("no run records β: metric-vs-β plot not drawn")
    else:
        drawn["metrics_vs_beta"] = curves
    scored = [k for k in SUPERVISED_SCORES if any(k in p.scores for p in points)]
    if scored:
        protocols = ", ".join(sorted({r.protocol for r in runs if r.protocol})) or "unknown"
        scores = figures.disentanglement_vs_beta(points, scored, title, group_title, protocols)
        if scores is not None:
            drawn["disentanglement_vs_beta"] = scores
        # The trade-off: test reconstruction, whatever stage the other plots use.
        tradeoff = figures.tradeoff(points, scored, title, stage, group_title, protocols)
        if tradeoff is not None:
            drawn["reconstruction_vs_disentanglement"] = tradeoff
    return stage, drawn


def draw_plots(
    runs: Sequence[Run], swept: Sequence[str], out: Path, title: str, notes: list[str]
) -> tuple[str, dict[str, Path]]:
    """`build_figures`, each saved as its PNG in `out`: the stage and the files by name."""
    stage, drawn = build_figures(runs, swept, title, notes)
    return stage, {name: figures.save(fig, out / PNG_NAMES[name]) for name, fig in drawn.items()}
