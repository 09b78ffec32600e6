"""Report figures (matplotlib, Agg): one figure per question, built from summary rows.

Every function returns a Figure or None (nothing to draw, e.g. energy not measured); the
writer turns figures into inline SVG and PNG files. Readability rules, checked by
tests/test_plots_layout.py from matplotlib's own text extents: no text overlaps another
and none leaves the figure; legends sit outside the axes; a method keeps its colour,
marker and hatch everywhere (bench/report/styles.py); long labels wrap; bar charts are
horizontal so method names never collide; estimated energy is marked (hollow markers,
lighter bars, "≈" in labels).
"""

from __future__ import annotations

import io
import re
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bench.report import fmt
from bench.report.reading import BASELINES, breakeven, lower_better, pareto_front
from bench.report.styles import Style, method_styles

WIDTH_IN = 7.2  # a figure in one column of the page (two per row at 1280 px)
WIDE_IN = 10.4  # a figure across the page (amortization with its table)
HEIGHT_IN = 4.2
TITLE_PT, NOTE_PT, SMALL_PT = 11.5, 9, 9
BREAKEVEN_MARKERS = {"scratch": "o", "transfer": "D"}
EST = " ≈"


def _wrap(text: str, width_in: float, points: float) -> str:
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
    fig.suptitle(_wrap(title, width, TITLE_PT), fontsize=TITLE_PT)
    if side:
        ax, extra = fig.subplots(1, 2, width_ratios=(1.55, 1.0))
    else:
        ax, extra = fig.add_subplot(), None
    ax.grid(True, which="major", color="#dddddd", linewidth=0.6)
    if note:
        # the axes may be narrower than the figure (long tick labels): wrap to 70% of it
        plot_width = 0.7 * width * (1.55 / 2.55 if side else 1.0)
        ax.set_title(_wrap(note, plot_width, NOTE_PT), fontsize=NOTE_PT, color="#444444")
    return fig, ax, extra


def _tick(value: float, _pos: object = None) -> str:
    """Plain tick labels (0.3, 10, 1,000), never 3×10⁻¹."""
    text = fmt.sig(value, 3)
    return text.rstrip("0").rstrip(".") if "." in text else text


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
        axis.set_major_formatter(FuncFormatter(_tick))
        axis.set_minor_formatter(NullFormatter())


def row_label(row: pd.Series, mixed: bool = False) -> str:
    """The row's label (method, with settings that tell its rows apart; bench/report/
    tables.py), "(transductive)" when the plot mixes normalizations, ≈ if estimated."""
    label = str(row.get("label", row["method"])).removesuffix(" †")
    mark = " (transductive)" if mixed and bool(row.get("transductive")) else ""
    return label + mark + (EST if bool(row["estimated"]) else "")


def notes(s: pd.DataFrame, bars: bool = False) -> str:
    """The note line under the title: estimated energy."""
    if not s["estimated"].astype(bool).any():
        return ""
    how = "lighter bars" if bars else "hollow markers"
    return f"≈ energy partly or wholly estimated (a model, not a meter); {how}."


def is_mixed(s: pd.DataFrame) -> bool:
    t = s["transductive"].astype(bool) if "transductive" in s else pd.Series([False])
    return bool(t.any() and not t.all())


def _score_axis(s: pd.DataFrame) -> str:
    return (
        "test MSE (lower is better)"
        if lower_better(s)
        else "test accuracy (fraction correct, higher is better)"
    )


def legend_below(fig: Figure, handles: list, ncols: int = 4) -> None:
    """The legend under the axes, outside them (constrained layout reserves its room)."""
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=ncols, fontsize=SMALL_PT)


def styled(row: pd.Series, styles: dict[str, Style]) -> dict:
    st = styles[row["method"]]
    return {
        "color": st.color,
        "marker": st.marker,
        "markerfacecolor": "white" if bool(row["estimated"]) else st.color,
        "markeredgecolor": st.color,
    }


# --------------------------------------------------------------------------- decision


def accuracy_vs_energy(
    s: pd.DataFrame, styles: dict[str, Style], energy: str = "e_task_j_ntest"
) -> Figure | None:
    """The decision plot: score vs energy per task at N = n_test (marker, 95% CI bar),
    with a thin line to the same method's energy per task as N → ∞ (E_deploy, small
    marker); dashed: the Pareto front at N = n_test."""
    s = s.dropna(subset=[energy])
    if s.empty:
        return None
    n_test = int(s["n_test"].iloc[0])
    fig, ax, _ = new_figure(f"{s['suite'].iloc[0]}: score against energy per task", notes(s))
    handles, mixed = [], is_mixed(s)
    for _, r in s.iterrows():
        kw = styled(r, styles)
        ax.errorbar(
            r[energy],
            r["score_mean"],
            yerr=r.get("score_errbar", r["score_ci95"]),
            markersize=8,
            capsize=3,
            linestyle="none",
            **kw,
        )
        far = r["e_deploy_j_per_task"]
        if far == far and far > 0:
            ax.plot([r[energy], far], [r["score_mean"]] * 2, color=kw["color"], lw=0.8, alpha=0.6)
            ax.plot([far], [r["score_mean"]], marker=kw["marker"], color=kw["color"], ms=4)
        handles.append(
            Line2D([], [], linestyle="none", markersize=7, label=row_label(r, mixed), **kw)
        )
    front = pareto_front(s, energy, lower_better(s))
    ax.plot(
        front[energy],
        front["score_mean"],
        color="#555555",
        linestyle="--",
        linewidth=1,
        drawstyle="steps-post",
    )
    handles += [
        Line2D([], [], color="#555555", linestyle="--", label=f"Pareto front at N = {n_test}"),
        Line2D([], [], color="#777777", marker="o", ms=4, lw=0.8, label="same method, N → ∞"),
    ]
    log_axes(ax, "x")
    ax.set_xlabel(f"energy per task at N = {n_test}: E_meta / N + E_deploy (J, log scale)")
    ax.set_ylabel(_wrap(_score_axis(s) + ", ± 95% CI", HEIGHT_IN, SMALL_PT + 2))
    legend_below(fig, handles, ncols=4)
    return fig


# --------------------------------------------------------------------------- amortization


def _breakeven_rows(s: pd.DataFrame) -> list[tuple[str, str, str, object]]:
    """(method, baseline, text, (n, energy) or None) for every method x baseline present."""
    rows = []
    present = set(s["method"])
    for _, r in s.iterrows():
        for base in BASELINES:
            if r["method"] == base or base not in present:
                continue
            b = breakeven(r, base)
            point = None
            if b.has_number and b.n >= 1:
                point = (b.n, r["e_meta_j"] / b.n + r["e_deploy_j_per_task"])
            rows.append((str(r["method"]), base, b.text(), point))
    return rows


def amortization(s: pd.DataFrame, styles: dict[str, Style]) -> Figure | None:
    """E_task(N) = E_meta / N + E_deploy against N (log-log), one line per method; the
    break-even points are marked on the lines and listed in a table beside the plot
    (never as stacked annotations)."""
    s = s.dropna(subset=["e_deploy_j_per_task"])
    if s.empty:
        return None
    n_test = int(s["n_test"].iloc[0])
    fig, ax, side = new_figure(
        f"{s['suite'].iloc[0]}: energy per task when N tasks share the meta-training",
        notes(s),
        width=WIDE_IN,
        side=True,
    )
    n = np.logspace(0, 6, 200)
    handles, mixed = [], is_mixed(s)
    for _, r in s.iterrows():
        kw = styled(r, styles)
        ax.plot(n, r["e_meta_j"] / n + r["e_deploy_j_per_task"], markevery=33, **kw)
        handles.append(Line2D([], [], label=row_label(r, mixed), **kw))
    rows = _breakeven_rows(s)
    for method, base, _, point in rows:
        if point is not None:
            ax.plot(
                *point,
                marker=BREAKEVEN_MARKERS[base],
                markersize=8,
                markerfacecolor=styles[method].color,
                markeredgecolor="black",
                markeredgewidth=1.4,
                zorder=5,
                linestyle="none",
            )
    ax.axvline(n_test, color="#999999", linestyle=":", linewidth=1)
    handles.append(Line2D([], [], color="#999999", linestyle=":", label=f"N = {n_test} (n_test)"))
    for base, marker in BREAKEVEN_MARKERS.items():
        if any(b == base and p is not None for _, b, _, p in rows):
            handles.append(
                Line2D(
                    [],
                    [],
                    linestyle="none",
                    marker=marker,
                    markerfacecolor="white",
                    markeredgecolor="black",
                    markeredgewidth=1.4,
                    label=f"break-even vs {base}",
                )
            )
    log_axes(ax, "xy")
    ax.set_xlabel("N, tasks served (log scale)")
    ax.set_ylabel("energy per task, E_task(N) (J, log scale)")
    _breakeven_table(side, rows, styles)
    legend_below(fig, handles, ncols=5)
    return fig


def _breakeven_table(ax: plt.Axes, rows: list, styles: dict[str, Style]) -> None:
    """Break-even N* (tasks, 95% interval) of every method against each baseline."""
    ax.axis("off")
    if not rows:
        ax.text(0.5, 0.5, "no baseline in this suite:\nno break-even", ha="center", fontsize=9)
        return
    ax.set_title("break-even N* (tasks, 95% interval)", fontsize=9)
    table = ax.table(
        cellText=[[m, b, text] for m, b, text, _ in rows],
        colLabels=["method", "against", "N*"],
        loc="upper center",
        cellLoc="left",
        colLoc="left",
        edges="horizontal",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(SMALL_PT)
    table.auto_set_column_width([0, 1, 2])
    height = min(0.065, 0.95 / (len(rows) + 1))
    for (i, _), cell in table.get_celld().items():
        cell.set_height(height)
        if i > 0:
            cell.get_text().set_color("#1b1b1b")
    for i, (method, *_rest) in enumerate(rows, start=1):
        table[i, 0].get_text().set_color(styles[method].color)
        table[i, 0].get_text().set_fontweight("bold")


# --------------------------------------------------------------------------- curves


def learning_curves(c: pd.DataFrame, styles: dict[str, Style]) -> Figure | None:
    """Validation score vs cumulative meta-training energy (seconds when unmeasured)."""
    if c.empty:
        return None
    measured = bool(c["meta_j_cum"].notna().all())
    x, xlabel = (
        ("meta_j_cum", "cumulative meta-training energy (J)")
        if measured
        else ("meta_s_cum", "cumulative meta-training time (s): energy not measured")
    )
    lower = c["task"].iloc[0] == "regression"
    est = bool(c["estimated"].any())
    fig, ax, _ = new_figure(
        f"{c['suite'].iloc[0]}: validation score during meta-training",
        "≈ energy partly or wholly estimated; hollow markers." if est else "",
    )
    handles = []
    for (method, seed), g in c.groupby(["method", "seed"]):
        st = styles[method]
        e = bool(g["estimated"].any())
        label = f"{method} seed {seed}" + (EST if e else "")
        kw = {
            "color": st.color,
            "marker": st.marker,
            "markerfacecolor": "white" if e else st.color,
            "markeredgecolor": st.color,
        }
        ax.plot(g[x], g["val_score"], **kw)
        handles.append(Line2D([], [], label=label, **kw))
    ax.axhline(float(c["target_score"].iloc[0]), color="black", linestyle="--", linewidth=1)
    handles.append(Line2D([], [], color="black", linestyle="--", label="target score"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation MSE (lower is better)" if lower else "validation accuracy")
    legend_below(fig, handles, ncols=4)
    return fig


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


__all__ = [
    "Style",
    "accuracy_vs_energy",
    "amortization",
    "learning_curves",
    "log_axes",
    "method_styles",
    "new_figure",
    "to_svg",
]
