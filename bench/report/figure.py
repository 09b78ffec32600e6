"""The frame every report figure shares (matplotlib, Agg): sizes and type sizes for a
1280 px page, a titled figure with constrained layout, log axes with plain numbers, a
legend below the axes that fits the width, row labels with the ≈ mark, inline SVG.
"""

from __future__ import annotations

import io
import re
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bench.report import fmt

WIDTH_IN = 7.2  # a figure in one column of the page (two per row at 1280 px)
WIDE_IN = 10.4  # a figure across the page (amortization with its table)
HEIGHT_IN = 4.2
TITLE_PT, NOTE_PT, SMALL_PT = 11.5, 9, 9
EST = " ≈"
LEGEND_ROW_IN = 0.2  # one more row of a 9-pt legend


def wrap(text: str, width_in: float, points: float) -> str:
    """Wrap to the figure width: about 0.55 em per character in DejaVu Sans."""
    chars = max(int(width_in * 72 / (points * 0.55)) - 4, 20)
    return "\n".join(textwrap.wrap(text, chars))


def new_figure(
    title: str, note: str = "", width: float = WIDTH_IN, side: bool = False
) -> tuple[Figure, plt.Axes, plt.Axes | None]:
    """A figure with its title (suptitle) and an optional note line (the axes' title),
    both wrapped and placed by constrained layout so they never overlap the axes or each
    other; with `side`, a second, narrower axes to the right for a table."""
    fig = plt.figure(figsize=(width, HEIGHT_IN), layout="constrained")
    fig.suptitle(wrap(title, width, TITLE_PT), fontsize=TITLE_PT)
    if side:
        ax, extra = fig.subplots(1, 2, width_ratios=(1.55, 1.0))
    else:
        ax, extra = fig.add_subplot(), None
    ax.grid(True, which="major", color="#dddddd", linewidth=0.6)
    if note:
        # the axes may be narrower than the figure (long tick labels): wrap to 70% of it
        plot_width = 0.7 * width * (1.55 / 2.55 if side else 1.0)
        ax.set_title(wrap(note, plot_width, NOTE_PT), fontsize=NOTE_PT, color="#444444")
    return fig, ax, extra


def plain_tick(value: float, _pos: object = None) -> str:
    """Plain tick labels (0.3, 10, 1,000), never 3×10⁻¹."""
    text = fmt.sig(value, 3)
    return text.rstrip("0").rstrip(".") if "." in text else text


def tasks_tick(value: float, _pos: object = None) -> str:
    """Compact task counts for a narrow axis: 1, 10, 100, 1k, 10k, 100k, 1M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return plain_tick(value / scale) + suffix
    return plain_tick(value)


def log_axes(ax: plt.Axes, which: str = "xy") -> None:
    """Log axes with plain-number labels on 1-2-5 ticks when the data span under 1.5
    decades (so several labels show), on powers of ten otherwise; minor ticks
    unlabelled (their labels collide)."""
    for name in which:
        axis = ax.xaxis if name == "x" else ax.yaxis
        (ax.set_xscale if name == "x" else ax.set_yscale)("log")
        lo, hi = ax.get_xlim() if name == "x" else ax.get_ylim()
        narrow = lo > 0 and hi / lo < 10**2.5
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if narrow else (1.0,)))
        axis.set_major_formatter(FuncFormatter(plain_tick))
        axis.set_minor_formatter(NullFormatter())


def row_label(row: pd.Series) -> str:
    """The row's label (the method, with the settings that tell its rows apart, e.g.
    "anil (transductive)": bench/report/tables.py) without the table's † mark, and ≈ where
    its energy is estimated."""
    label = str(row.get("label", row["method"])).removesuffix(" †")
    return label + (EST if bool(row["estimated"]) else "")


def legend_below(fig: Figure, handles: list, ncols: int = 4) -> None:
    """The legend under the axes, outside them (constrained layout reserves its room), in
    as many columns (up to `ncols`) as fit the figure's width, measured with the figure's
    renderer; the figure grows taller when the legend needs more than three rows."""
    if not handles:
        return
    renderer = fig.canvas.get_renderer()
    for n in range(min(ncols, len(handles)), 0, -1):
        legend = fig.legend(handles=handles, loc="outside lower center", ncols=n, fontsize=SMALL_PT)
        if n == 1 or legend.get_window_extent(renderer).width <= fig.bbox.width - 12:
            break
        legend.remove()
    rows = -(-len(handles) // n)
    if rows > 3:
        fig.set_figheight(fig.get_figheight() + (rows - 3) * LEGEND_ROW_IN)


def to_svg(fig: Figure, salt: str) -> str:
    """Inline SVG text (no XML prolog); a per-figure hash salt keeps element ids unique
    when several figures share one HTML page."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg")
    text = buf.getvalue()
    # The RDF metadata block only carries a date and namespace URLs: drop it.
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    return text[text.index("<svg") :]
