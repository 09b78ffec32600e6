"""The break-even table drawn beside the amortization plot: one row per plotted row, one
column per baseline, each row as tall as its text (the row lines never cut through
letters: tests/test_plots_layout.py compares every cell with its text's extent), the
figure growing taller when the rows need it."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.table import Table

ROW_PAD_PT = 3.0  # room between a row's text and the lines above and below it


def two_lines(text: str) -> str:
    """ "after 120 tasks (95% CI 90 to 170)" -> "after 120 tasks\\n95% CI 90 to 170": the
    break-even text (reading.BreakEven.text) with its interval on a line of its own."""
    head, sep, tail = text.partition(" (")
    return f"{head}\n{tail.removesuffix(')')}" if sep else text


def breakeven_table(
    ax: plt.Axes,
    bases: list[str],
    rows: list[tuple[str, str, list[str]]],
    colors: dict[str, str],
    fontsize: float,
) -> Table | None:
    """Break-even N* (tasks, 95% CI) of every row against each baseline in `bases`, its
    column of the figure widened to fit (call fit_rows once the figure is complete).
    rows: (label, method, [text per baseline]); colors: method -> its colour."""
    ax.axis("off")
    if not bases:
        ax.text(
            0.5,
            0.5,
            "no baseline in this suite:\nno break-even",
            ha="center",
            va="center",
            fontsize=fontsize,
        )
        return None
    ax.set_title("break-even N* (95% CI)", fontsize=fontsize)
    table = ax.table(
        cellText=[[label, *(two_lines(t) for t in texts)] for label, _, texts in rows],
        colLabels=["row", *(f"vs {b}" for b in bases)],
        loc="upper center",
        cellLoc="left",
        colLoc="left",
        edges="horizontal",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(fontsize)
    table.auto_set_column_width(list(range(len(bases) + 1)))
    for (i, _), cell in table.get_celld().items():
        if i > 0:
            cell.get_text().set_color("#1b1b1b")
    for i, (_, method, _) in enumerate(rows, start=1):
        table[i, 0].get_text().set_color(colors[method])
        table[i, 0].get_text().set_fontweight("bold")
    widen(ax, table)
    return table


def widen(ax: plt.Axes, table: Table) -> None:
    """Widen the table's column of the figure (the last of its grid) to the table's width,
    measured after constrained layout has placed the axes: the plot beside it narrows."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    need = table.get_window_extent(renderer).width + 8
    grid = ax.get_subplotspec().get_gridspec()
    for _ in range(4):  # the column's share of the ratios, not its pixels, is what is set
        have = ax.get_window_extent(renderer).width
        if need <= have:
            return
        ratios = list(grid.get_width_ratios() or [1.0] * grid.ncols)
        ratios[-1] *= 1.05 * need / have
        grid.set_width_ratios(ratios)
        fig.canvas.draw()


def fit_rows(ax: plt.Axes, table: Table) -> None:
    """Give each table row the height of its tallest text plus padding, measured with the
    figure's renderer; grow the figure when the rows need more than the axes' height.
    Call it last: anything that moves the axes afterwards changes the rows' height."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    pad = 2 * ROW_PAD_PT * fig.dpi / 72
    need: dict[int, float] = {}
    for (i, _), cell in table.get_celld().items():
        height = cell.get_text().get_window_extent(renderer).height
        need[i] = max(need.get(i, 0.0), height + pad)
    room = ax.get_window_extent(renderer).height
    for _ in range(3):  # constrained layout gives the axes most, not all, of the new height
        if sum(need.values()) <= room:
            break
        fig.set_figheight(fig.get_figheight() + (sum(need.values()) - room) / fig.dpi + 0.1)
        fig.canvas.draw()
        room = ax.get_window_extent(renderer).height
    for (i, _), cell in table.get_celld().items():
        cell.set_height(need[i] / room)
