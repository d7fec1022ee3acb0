"""Comparison plots for `vaelab.compare`: rate–distortion, metrics against β, and on
data with known factors each disentanglement score against β and the trade-off of
reconstruction against each score.

The functions take plain `PlotPoint`s, one per run, and know nothing of run folders.
Each returns a bare `matplotlib.figure.Figure` (rendered by Agg when saved: `save`)
instead of drawing through `pyplot`, so that calling them from a notebook neither
switches its backend nor leaves figures open, and a caller can read the axes back.
matplotlib is imported inside the functions: `vaelab.compare --help` and `--no-plots`
never pay for it.

Two rules hold for every figure with several panels:

- Layout: `panel_grid` lays the panels out in rows of at most `MAX_COLUMNS` (4), each
  panel `PANEL_WIDTH` × `PANEL_HEIGHT` inches, plus room for the title and a legend or
  colour bar; spare cells of the last row are removed. Seven scores: 2 rows × 4.
- Scale: a score that its metric's definition bounds to [0, 1]
  (`vaelab.metrics.names.UNIT_INTERVAL_KEYS`, the one place that says so) is drawn on
  a fixed [0, 1] axis, never zoomed to the data, so that a change of 0.0003 looks like
  one: the axis is widened only to take in a value outside [0, 1], which the
  definition rules out and the reader should see. Other quantities (nats) scale to
  their data.
"""

from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from vaelab.metrics.names import in_unit_interval

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap, Normalize
    from matplotlib.figure import Figure

# One marker per group (latent size), shared by both plots so a reader matches them up.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "p", "<", ">", "h")
# Above this ratio of largest to smallest β, the β colour scale goes logarithmic.
LOG_SPAN = 10.0
# With at most this many distinct β values every one gets its own tick.
MAX_TICKED = 10
NO_BETA_COLOUR = "0.6"
DPI = 150
# The grid of a multi-panel figure: at most this many panels a row, each this size
# (inches), plus the figure title above and a legend (or colour bar) beside.
MAX_COLUMNS = 4
PANEL_WIDTH = 4.2
PANEL_HEIGHT = 3.6
TITLE_HEIGHT = 1.0
LEGEND_WIDTH = 2.5
COLOUR_BAR_WIDTH = 1.2
BOTTOM_LEGEND_HEIGHT = 0.9
# The axis of a score in [0, 1].
UNIT_INTERVAL = (0.0, 1.0)


@dataclass(frozen=True)
class PlotPoint:
    """One run as the plots see it: its β, latent size, line group and metrics (nats)."""

    beta: float | None
    latent: Any
    group: str
    recon: float
    kl: float
    nelbo: float
    #: disentanglement scores by name (`mig`, `dci`, ...), where the run has them
    scores: Mapping[str, float] = field(default_factory=dict)


def grid_shape(n_panels: int, max_columns: int = MAX_COLUMNS) -> tuple[int, int]:
    """(rows, columns) for `n_panels`: one row up to `max_columns` panels, then as many
    full rows of `max_columns` as it takes (7 panels: 2 × 4)."""
    if n_panels < 1:
        raise ValueError(f"a figure needs at least one panel, got {n_panels}")
    columns = min(n_panels, max_columns)
    return math.ceil(n_panels / columns), columns


def grid_size(
    n_panels: int, extra_width: float = 0.0, extra_height: float = TITLE_HEIGHT
) -> tuple[float, float]:
    """The figure size (inches) of `n_panels` in `grid_shape`'s grid, with `extra_width`
    beside the grid (legend, colour bar) and `extra_height` above and below it."""
    rows, columns = grid_shape(n_panels)
    return columns * PANEL_WIDTH + extra_width, rows * PANEL_HEIGHT + extra_height


def panel_grid(
    n_panels: int,
    *,
    extra_width: float = 0.0,
    extra_height: float = TITLE_HEIGHT,
    sharey: bool = False,
) -> tuple[Figure, list[Axes]]:
    """A figure of `n_panels` panels in rows of at most `MAX_COLUMNS`, sized by
    `grid_size`, and its axes in reading order; the spare cells of the last row are
    removed. The layout of every multi-panel comparison figure."""
    from matplotlib.figure import Figure

    rows, columns = grid_shape(n_panels)
    size = grid_size(n_panels, extra_width, extra_height)
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    grid = fig.subplots(rows, columns, sharey=sharey, squeeze=False)
    axes: list[Axes] = [ax for row in grid for ax in row]
    for spare in axes[n_panels:]:
        spare.remove()
    return fig, axes[:n_panels]


def unit_interval_limits(values: Iterable[float]) -> tuple[float, float]:
    """The axis of a score in [0, 1]: [0, 1] whatever the values' spread, widened only
    to take in a value outside it (which the score's definition rules out)."""
    finite = [v for v in values if math.isfinite(v)]
    return min([UNIT_INTERVAL[0], *finite]), max([UNIT_INTERVAL[1], *finite])


def save(fig: Figure, path: Path) -> Path:
    """Write `fig` as a PNG at its own size and `DPI`: `grid_size` × `DPI` pixels."""
    fig.savefig(path)
    return path


def _title_width(fig: Figure) -> int:
    """Characters a line of the figure title holds at 12 pt across the figure."""
    return max(40, int(fig.get_figwidth() * 9))


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _order(value: Any) -> tuple[int, float, str]:
    """Sort numbers numerically, then text, then missing values."""
    if value is None:
        return (2, 0.0, "")
    if isinstance(value, int | float):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _wrap_title(text: str, width: int = 70) -> str:
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text


def group_runs(points: Sequence[PlotPoint]) -> dict[str, list[PlotPoint]]:
    """Points by group, groups in ascending latent size (then by name)."""
    groups: dict[str, list[PlotPoint]] = defaultdict(list)
    for p in sorted(points, key=lambda p: (_order(p.latent), p.group)):
        groups[p.group].append(p)
    return dict(groups)


def markers_for(groups: Sequence[str]) -> dict[str, str]:
    """A marker per group, in the given order (cycling past the 12th)."""
    return {group: MARKERS[i % len(MARKERS)] for i, group in enumerate(groups)}


def _beta_norm(betas: Sequence[float]) -> Normalize:
    """Colour scale for β: logarithmic when β spans more than LOG_SPAN, else linear.

    β = 0 (a plain autoencoder) has no logarithm; a symmetric-log scale, linear below
    the smallest positive β, keeps it on the bar.
    """
    from matplotlib.colors import LogNorm, Normalize, SymLogNorm

    low, high = min(betas), max(betas)
    positive = [b for b in betas if b > 0]
    if positive and high / min(positive) > LOG_SPAN:
        if low > 0:
            return LogNorm(vmin=low, vmax=high)
        return SymLogNorm(linthresh=min(positive), vmin=low, vmax=high, base=10)
    return Normalize(vmin=low, vmax=high)


def _set_beta_axis(ax: Axes, betas: Sequence[float]) -> None:
    """A log β axis (symlog if β = 0 is present) with the swept values as tick labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    positive = [b for b in betas if b > 0]
    if positive and len(positive) == len(betas):
        ax.set_xscale("log")
    elif positive:
        ax.set_xscale("symlog", linthresh=min(positive))
    distinct = sorted(set(betas))
    if len(distinct) <= MAX_TICKED:
        # Log axes label only decades by default; a β sweep wants its own values read off.
        ax.xaxis.set_major_locator(FixedLocator(distinct))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    elif ax.get_xscale() == "log":
        _plain_log_ticks(ax.xaxis)
    if len(distinct) == 1:
        # A single value gives matplotlib no range to scale; show a factor of 2 around it.
        b = distinct[0]
        if b > 0:
            ax.set_xlim(b / 2, b * 2)
        else:
            ax.set_xlim(-1, 1)


def _plain_log_ticks(axis: Any) -> None:
    """Ticks at 1, 2, 5 × 10^k labelled as plain numbers (0.2, not 2×10⁻¹)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_locator(NullLocator())


def _viridis() -> Colormap:
    """viridis without its palest yellow end, which vanishes on a white background."""
    import matplotlib as mpl
    from matplotlib.colors import ListedColormap

    base = mpl.colormaps["viridis"]
    return ListedColormap(base(_linspace(0.0, 0.88, 256)), name="viridis_dark")


def _linspace(start: float, stop: float, n: int) -> list[float]:
    return [start + (stop - start) * i / (n - 1) for i in range(n)]


def rate_distortion(
    points: Sequence[PlotPoint], title: str, stage: str, group_title: str
) -> Figure:
    """Scatter KL (rate) against reconstruction (distortion), one point a run.

    Colour encodes β on a colour bar (log scale when β spans more than 10×), the marker
    the group: the latent size, plus any other swept setting but the seed. Runs
    without a recorded β are drawn grey.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5.5), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    groups = group_runs(points)
    markers = markers_for(list(groups))
    betas = [p.beta for p in points if p.beta is not None]
    distinct_betas = sorted(set(betas))
    cmap = _viridis()
    norm = _beta_norm(betas) if len(distinct_betas) > 1 else None
    mappable = None
    for group, members in groups.items():
        # keyword arguments of Axes.scatter, of several types
        style: dict[str, Any] = {
            "marker": markers[group],
            "s": 90,
            "edgecolors": "black",
            "linewidths": 0.7,
        }
        with_beta = [p for p in members if p.beta is not None]
        without = [p for p in members if p.beta is None]
        if with_beta and norm is not None:
            mappable = ax.scatter(
                [p.kl for p in with_beta],
                [p.recon for p in with_beta],
                c=[cast(float, p.beta) for p in with_beta],  # with_beta: beta is not None
                cmap=cmap,
                norm=norm,
                zorder=3,
                **style,
            )
        elif with_beta:  # one β for all: nothing for a colour bar to tell apart
            xs, ys = [p.kl for p in with_beta], [p.recon for p in with_beta]
            ax.scatter(xs, ys, color=cmap(0.35), zorder=3, **style)
        if without:
            xs, ys = [p.kl for p in without], [p.recon for p in without]
            ax.scatter(xs, ys, color=NO_BETA_COLOUR, zorder=3, **style)

    if mappable is not None:
        _beta_colour_bar(fig, mappable, ax, distinct_betas, norm)

    handles = []
    if not (len(groups) == 1 and points[0].latent is None and group_title == "latent size"):
        handles += [_legend_marker(marker, "white", group) for group, marker in markers.items()]
    if betas and len(betas) < len(points):
        handles.append(_legend_marker("o", NO_BETA_COLOUR, "β not recorded"))
    if handles:
        ax.legend(handles=handles, title=group_title, loc="best", framealpha=0.9)

    subtitle = ""
    if len(distinct_betas) == 1:
        subtitle = f"\nβ = {_fmt(distinct_betas[0])} for every run"
    elif not distinct_betas:
        subtitle = "\nno β recorded"
    ax.set_title(_wrap_title(f"Rate–distortion ({stage} set): {title}") + subtitle, fontsize=11)
    ax.set_xlabel(f"rate: {stage} KL(q(z|x) ‖ p(z))  [nats]")
    ax.set_ylabel(f"distortion: {stage} −E log p(x|z)  [nats]")
    ax.grid(True, color="0.9", zorder=0)
    ax.margins(0.12)
    return fig


def _beta_colour_bar(
    fig: Any, mappable: Any, ax: Any, distinct_betas: Sequence[float], norm: Any
) -> None:
    """The β colour bar, ticked at the swept values when there are few of them."""
    from matplotlib.colors import LogNorm

    bar = fig.colorbar(mappable, ax=ax, pad=0.02)
    bar.set_label("β (weight of the KL term)")
    if len(distinct_betas) <= MAX_TICKED:
        bar.set_ticks(list(distinct_betas))
        bar.set_ticklabels([_fmt(b) for b in distinct_betas])
        bar.ax.minorticks_off()
    elif isinstance(norm, LogNorm):
        _plain_log_ticks(bar.ax.yaxis)


def _legend_marker(marker: str, face: Any, label: str) -> Any:
    """A legend entry showing a marker alone, without a line."""
    from matplotlib.lines import Line2D

    return Line2D(
        [],
        [],
        marker=marker,
        linestyle="",
        markersize=9,
        markerfacecolor=face,
        markeredgecolor="black",
        label=label,
    )


METRIC_PANELS = (
    ("nelbo", "−ELBO = recon + KL"),
    ("recon", "reconstruction −E log p(x|z)"),
    ("kl", "KL(q(z|x) ‖ p(z))"),
)


@dataclass(frozen=True)
class Panel:
    """One panel of a plot against β: its title, y label, a point's value (None: the
    point is not in this panel) and whether the value lies in [0, 1] (a fixed axis)."""

    title: str
    label: str
    value: Callable[[PlotPoint], float | None]
    unit_interval: bool = False


def metrics_vs_beta(
    points: Sequence[PlotPoint], title: str, stage: str, group_title: str
) -> Figure | None:
    """−ELBO, reconstruction and KL against β (log axis), one line per group of runs.

    A group is a latent size (plus any other swept setting but the seed), with the
    same marker as in the rate–distortion plot; runs that share a group and a β
    (seeds) are drawn as faint points and joined at their mean, with their sample
    standard deviation as an error bar. The y axes (nats) scale to the data. Returns
    None, drawing nothing, when no run has a β.
    """
    panels = [
        Panel(f"{stage} {panel_title}", "nats per example", _attribute(key))
        for key, panel_title in METRIC_PANELS
    ]
    suptitle = f"{stage.capitalize()} metrics against β: {title}"
    return _lines_against_beta(points, panels, suptitle, group_title)


def disentanglement_vs_beta(
    points: Sequence[PlotPoint],
    metrics: Sequence[str],
    title: str,
    group_title: str,
    protocols: str,
) -> Figure | None:
    """Each disentanglement score against β, one panel a score in rows of at most four
    (`panel_grid`), one line per group (an objective, a latent size, ...), seeds as
    mean ± sample standard deviation, as `metrics_vs_beta` draws them.

    A score in [0, 1] (`names.UNIT_INTERVAL_KEYS`) gets the fixed y axis [0, 1]: a
    difference shows at its true size, never zoomed (see the module's docstring).
    `protocols` says which protocol produced the numbers. None when no run has both β
    and a score."""
    panels = [
        Panel(
            f"test {m}",
            "score (axis 0–1)" if in_unit_interval(m) else "score",
            _score(m),
            unit_interval=in_unit_interval(m),
        )
        for m in metrics
    ]
    suptitle = f"Disentanglement against β ({protocols} protocol): {title}"
    return _lines_against_beta(points, panels, suptitle, group_title)


def _attribute(key: str) -> Callable[[PlotPoint], float | None]:
    return lambda p: getattr(p, key)


def _score(name: str) -> Callable[[PlotPoint], float | None]:
    return lambda p: p.scores.get(name)


def _lines_against_beta(
    points: Sequence[PlotPoint],
    panels: Sequence[Panel],
    suptitle: str,
    group_title: str,
) -> Figure | None:
    """One panel per `Panel` in `panel_grid`'s rows, β on a log x axis, one line per
    group joining the mean at each β; where some group has several runs at one β
    (seeds), every mean carries their sample standard deviation (n − 1) as an error
    bar and the runs are drawn as faint points. A point without the panel's value is
    left out of that panel."""
    from matplotlib.lines import Line2D

    all_groups = list(group_runs(points))
    markers = markers_for(all_groups)  # from every run, so markers match the other plot
    points = [p for p in points if p.beta is not None]
    if not points or not panels:
        return None
    groups = group_runs(points)
    palette = _group_colours(len(groups))
    averaged = any(
        sum(1 for q in members if q.beta == p.beta) > 1
        for members in groups.values()
        for p in members
    )

    fig, axes = panel_grid(len(panels), extra_width=LEGEND_WIDTH)
    drawn: dict[int, list[float]] = defaultdict(list)  # panel -> every value it shows
    counts: set[int] = set()  # runs behind each mean
    handles = []
    for (group, members), colour in zip(groups.items(), palette, strict=True):
        marker = markers[group]
        for i, (ax, panel) in enumerate(zip(axes, panels, strict=True)):
            by_beta: dict[float, list[float]] = defaultdict(list)
            for p in members:
                v = panel.value(p)
                if v is not None and math.isfinite(v):
                    by_beta[float(p.beta)].append(v)  # type: ignore[arg-type]
            xs = sorted(by_beta)
            if not xs:
                continue
            drawn[i] += [v for b in xs for v in by_beta[b]]
            counts.update(len(by_beta[b]) for b in xs)
            # Several runs at one β (seeds): the mean, and their sample standard
            # deviation as an error bar.
            errors = [_std(by_beta[b]) for b in xs] if averaged else None
            ax.errorbar(
                xs,
                [_mean(by_beta[b]) for b in xs],
                yerr=errors,
                color=colour,
                marker=marker,
                markersize=7,
                linewidth=1.8,
                capsize=3 if averaged else 0,
            )
            if averaged:
                ax.scatter(
                    [b for b in xs for _ in by_beta[b]],
                    [v for b in xs for v in by_beta[b]],
                    color=colour,
                    marker=marker,
                    s=18,
                    alpha=0.4,
                    zorder=1,
                )
        handles.append(Line2D([], [], color=colour, marker=marker, label=group))

    betas = [float(p.beta) for p in points]  # type: ignore[arg-type]
    for i, (ax, panel) in enumerate(zip(axes, panels, strict=True)):
        _set_beta_axis(ax, betas)
        ax.set_title(panel.title, fontsize=11)
        ax.set_xlabel("β (weight of the KL term)")
        ax.set_ylabel(panel.label)
        ax.grid(True, color="0.9")
        ax.margins(x=0.08, y=0.1)
        if panel.unit_interval:
            ax.set_ylim(unit_interval_limits(drawn[i]))
    fig.legend(handles=handles, title=group_title, loc="outside right upper", framealpha=0.9)
    if averaged:
        n = f"{min(counts)}–{max(counts)}" if len(counts) > 1 else f"{min(counts)}"
        suptitle += (
            f"  (lines: mean ± sample std over n = {n} runs with the same settings, e.g. seeds)"
        )
    fig.suptitle(_wrap_title(suptitle, _title_width(fig)), fontsize=12)
    return fig


def tradeoff(
    points: Sequence[PlotPoint],
    metrics: Sequence[str],
    title: str,
    stage: str,
    group_title: str,
    protocols: str,
) -> Figure | None:
    """Reconstruction against each disentanglement score, one panel a score in
    `panel_grid`'s rows, one point a run: colour = β (as in the rate–distortion plot),
    marker = group. A score in [0, 1] gets the fixed x axis [0, 1], as in
    `disentanglement_vs_beta`. None when no run has a score."""
    scored = [p for p in points if any(p.scores.get(m) is not None for m in metrics)]
    if not scored or not metrics:
        return None
    groups = group_runs(scored)
    markers = markers_for(list(group_runs(points)))
    betas = [p.beta for p in scored if p.beta is not None]
    norm = _beta_norm(betas) if len(set(betas)) > 1 else None
    cmap = _viridis()
    legend = len(groups) > 1 or group_title != "latent size"
    fig, axes = panel_grid(
        len(metrics),
        extra_width=COLOUR_BAR_WIDTH if norm is not None else 0.0,
        extra_height=TITLE_HEIGHT + (BOTTOM_LEGEND_HEIGHT if legend else 0.0),
        sharey=True,
    )
    columns = grid_shape(len(metrics))[1]
    mappable = None
    for i, (ax, metric) in enumerate(zip(axes, metrics, strict=True)):
        shown: list[float] = []
        for group, members in groups.items():
            have = [p for p in members if p.scores.get(metric) is not None]
            if not have:
                continue
            style: dict[str, Any] = {
                "marker": markers[group],
                "s": 70,
                "edgecolors": "black",
                "linewidths": 0.6,
            }
            xs = [p.scores[metric] for p in have]
            ys = [p.recon for p in have]
            shown += xs
            colours = [p.beta for p in have if p.beta is not None]
            if norm is not None and len(colours) == len(have):
                mappable = ax.scatter(xs, ys, c=colours, cmap=cmap, norm=norm, zorder=3, **style)
            else:
                ax.scatter(xs, ys, color=cmap(0.35), zorder=3, **style)
        ax.set_title(f"{stage} {metric}", fontsize=11)
        bounded = in_unit_interval(metric)
        ax.set_xlabel(f"{metric} (higher: more disentangled{'; axis 0–1' if bounded else ''})")
        ax.grid(True, color="0.9", zorder=0)
        ax.margins(0.12)
        if bounded:
            ax.set_xlim(unit_interval_limits(shown))
        if i % columns == 0:
            ax.set_ylabel(f"distortion: {stage} −E log p(x|z)  [nats]")
    if mappable is not None:
        _beta_colour_bar(fig, mappable, axes, sorted(set(betas)), norm)
    if legend:
        handles = [_legend_marker(markers[g], "white", g) for g in groups]
        fig.legend(
            handles=handles,
            title=group_title,
            loc="outside lower center",
            ncols=min(len(handles), 6),
            framealpha=0.9,
        )
    fig.suptitle(
        _wrap_title(
            f"Reconstruction against disentanglement ({protocols} protocol): {title}",
            _title_width(fig),
        ),
        fontsize=12,
    )
    return fig


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _std(values: Sequence[float]) -> float:
    """Sample standard deviation (n − 1); 0 for a single value."""
    if len(values) < 2:
        return 0.0
    mean = _mean(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _group_colours(n: int) -> list[Any]:
    """Distinct qualitative colours: tab10 up to 10 groups, tab20 beyond (cycled)."""
    import matplotlib as mpl

    cmap = mpl.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
