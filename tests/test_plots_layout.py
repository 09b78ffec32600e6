"""Every figure of a report reads at 1280 px: from matplotlib's own text extents (each
text's window extent with the figure's renderer), no text overlaps another, none leaves
the figure, and no table cell is shorter or narrower than its text (a row line would cut
through its letters). Run on the toy ledger, a 9-method ledger rebuilt from the committed
CPU reference, the same with every cell also run under the other normalization (18 rows
per suite), and the first H200 run's ledger (committed, gzipped)."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import pytest
from ledger_factory import toy_ledger
from matplotlib.figure import Figure
from matplotlib.table import Table
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from report_ledgers import cpu_reference_ledger, h200_copy

from bench.report.aggregate import summary_table
from bench.report.writer import figure_list, load_tables

# Suites of the CPU reference covering every shape of plot: 5- and 20-way classification
# with 9 methods, regression with 8, dynamics with an extra metric, text.
REFERENCE_SUITES = ("omniglot-5w1s", "omniglot-20w5s", "sinusoid-5shot", "banking77-5w1s")
TOLERANCE_PX = 1.0


def _visible(t: Text) -> bool:
    return t.get_visible() and bool(t.get_text().strip()) and t.figure is not None


def _drawn_tick_labels(fig: Figure) -> set[int]:
    """ids of tick labels inside their axis' view interval (others are never drawn)."""
    shown = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                loc = tick.get_loc()
                if loc is not None and lo - 1e-9 * abs(lo) <= loc <= hi + 1e-9 * abs(hi):
                    shown.update(id(label) for label in (tick.label1, tick.label2))
    return shown


def text_boxes(fig: Figure) -> list[tuple[str, Bbox]]:
    """(text, window extent in pixels) of every text drawn in the figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ticks = {id(lbl) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for t in axis.get_major_ticks() + axis.get_minor_ticks()
             for lbl in (t.label1, t.label2)}  # fmt: skip
    drawn_ticks = _drawn_tick_labels(fig)
    boxes = []
    for t in fig.findobj(Text):
        if not _visible(t) or (id(t) in ticks and id(t) not in drawn_ticks):
            continue
        boxes.append((t.get_text(), t.get_window_extent(renderer)))
    return boxes


def cell_faults(fig: Figure) -> list[str]:
    """Table cells whose text reaches past the cell's edges (its row lines would cross the
    letters), from the cell's and the text's window extents."""
    renderer = fig.canvas.get_renderer()
    faults = []
    for table in fig.findobj(Table):
        for (i, j), cell in table.get_celld().items():
            text = cell.get_text()
            if not text.get_text().strip():
                continue
            box, edge = text.get_window_extent(renderer), cell.get_window_extent(renderer)
            if not edge.padded(TOLERANCE_PX).contains(box.x0, box.y0) or not edge.padded(
                TOLERANCE_PX
            ).contains(box.x1, box.y1):
                faults.append(f"table cell {i},{j} {text.get_text()!r} is cut by its edges")
    return faults


def layout_faults(fig: Figure) -> list[str]:
    boxes = text_boxes(fig)
    frame = fig.bbox.padded(TOLERANCE_PX)
    faults = [
        f"{text!r} leaves the figure ({box.bounds} outside {fig.bbox.bounds})"
        for text, box in boxes
        if not (frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1))
    ]
    for (ta, a), (tb, b) in itertools.combinations(boxes, 2):
        overlap_w = min(a.x1, b.x1) - max(a.x0, b.x0)
        overlap_h = min(a.y1, b.y1) - max(a.y0, b.y0)
        if overlap_w > TOLERANCE_PX and overlap_h > TOLERANCE_PX:
            faults.append(f"{ta!r} overlaps {tb!r}")
    return faults + cell_faults(fig)


def check_every_figure(run_dir) -> list[str]:
    t = load_tables(run_dir)
    summary = summary_table(t)
    names, faults = [], []
    for _, name, _, fig in figure_list(t, summary):
        if fig is None:
            continue
        names.append(name)
        faults += [f"{name}: {f}" for f in layout_faults(fig)]
        plt.close(fig)
    assert names, "no figure drawn"
    return faults


def test_layout_check_catches_overlap_and_clipping():
    fig = plt.figure(figsize=(4, 3))
    fig.text(0.5, 0.5, "one label")
    fig.text(0.52, 0.5, "another label")
    fig.text(0.95, 0.1, "runs off the edge of the figure")
    faults = layout_faults(fig)
    plt.close(fig)
    assert any("overlaps" in f for f in faults)
    assert any("leaves the figure" in f for f in faults)


def test_layout_check_catches_a_row_line_through_text():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.axis("off")
    table = ax.table(cellText=[["learned_opt", "reptile"]], loc="upper center")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    for cell in table.get_celld().values():
        cell.set_height(0.02)  # shorter than a 9-pt line: the row lines cross the letters
    faults = cell_faults(fig) if fig.canvas.draw() is None else []
    plt.close(fig)
    assert any("learned_opt" in f and "cut" in f for f in faults)


def test_toy_report_figures_have_no_overlap(tmp_path):
    assert check_every_figure(toy_ledger(tmp_path / "toy")) == []


def test_nine_method_reference_figures_have_no_overlap(tmp_path):
    run = cpu_reference_ledger(tmp_path / "ref", REFERENCE_SUITES)
    assert check_every_figure(run) == []


def test_mixed_normalization_figures_have_no_overlap(tmp_path):
    """Every method under both normalizations: 18 rows in one suite's legends and
    break-even table."""
    run = cpu_reference_ledger(
        tmp_path / "mixed", ("omniglot-5w1s", "sinusoid-5shot"), (None, "support")
    )
    assert check_every_figure(run) == []


def test_h200_figures_have_no_overlap(tmp_path):
    assert check_every_figure(h200_copy(tmp_path)) == []


@pytest.mark.parametrize("n_methods", [3, 16])
def test_many_methods_keep_distinct_styles(n_methods):
    from bench.report.styles import BUILTIN, method_styles

    names = list(BUILTIN)[:n_methods] + [f"custom_{i}" for i in range(max(n_methods - 9, 0))]
    styles = method_styles(names)
    looks = {(s.color, s.marker, s.hatch) for s in styles.values()}
    assert len(looks) == len(names)
    assert len({s.color for s in styles.values()}) == len(names)
