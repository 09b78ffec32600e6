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
import math
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

KIND_LINES = {"gpu": ("-", "#0072B2"), "cpu": ("--", "#D55E00"), "dram": (":", "#009E73")}
PHASE_SHADES = {
    "meta_train": ("#bbbbbb", ""),
    "validate": ("#dddddd", "//"),
    "adapt": ("#eeeeee", ".."),
    "predict": ("#f7f7f7", "xx"),
}
WIDTH_IN = 7.2  # a figure in one column of the page (two per row at 1280 px)
WIDE_IN = 10.4  # a figure across the page (amortization with its table)
HEIGHT_IN = 4.2
TITLE_PT, NOTE_PT, SMALL_PT = 11, 8.5, 8
BREAKEVEN_MARKERS = {"scratch": "o", "transfer": "D"}
EST = " ≈"


def _wrap(text: str, width_in: float, points: float) -> str:
    """Wrap to the figure width: about 0.55 em per character in DejaVu Sans."""
    chars = max(int(width_in * 72 / (points * 0.55)) - 4, 20)
    return "\n".join(textwrap.wrap(text, chars))


def _figure(
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
        plot_width = width * (1.55 / 2.55 if side else 1.0)
        ax.set_title(_wrap(note, plot_width, NOTE_PT), fontsize=NOTE_PT, color="#444444")
    return fig, ax, extra


def _tick(value: float, _pos: object = None) -> str:
    """Plain tick labels (0.3, 10, 1,000), never 3×10⁻¹."""
    text = fmt.sig(value, 3)
    return text.rstrip("0").rstrip(".") if "." in text else text


def _log_scale(ax: plt.Axes, which: str = "xy") -> None:
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


def _transductive(s: pd.DataFrame) -> pd.Series:
    return s.get("normalization", pd.Series("", index=s.index)).eq("transductive")


def _label(row: pd.Series, mixed: bool = False) -> str:
    """Method name; "(transductive)" when the plot mixes normalizations; ≈ if estimated."""
    mark = " (transductive)" if mixed and row.get("normalization") == "transductive" else ""
    return str(row["method"]) + mark + (EST if bool(row["estimated"]) else "")


def _notes(s: pd.DataFrame, bars: bool = False) -> str:
    """The note line: estimated energy, transductive rows."""
    notes = []
    if s["estimated"].astype(bool).any():
        how = "lighter bars" if bars else "hollow markers"
        notes.append(f"≈ energy partly or wholly estimated (a model, not a meter); {how}.")
    t = _transductive(s)
    if t.all():
        notes.append("All rows transductive: queries normalised with their batch's statistics.")
    return " ".join(notes)


def _mixed(s: pd.DataFrame) -> bool:
    t = _transductive(s)
    return bool(t.any() and not t.all())


def _score_axis(s: pd.DataFrame) -> str:
    return (
        "test MSE (lower is better)"
        if lower_better(s)
        else "test accuracy (fraction correct, higher is better)"
    )


def _legend_below(fig: Figure, handles: list, ncols: int = 4) -> None:
    """The legend under the axes, outside them (constrained layout reserves its room)."""
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=ncols, fontsize=SMALL_PT)


def _styled(row: pd.Series, styles: dict[str, Style]) -> dict:
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
    fig, ax, _ = _figure(f"{s['suite'].iloc[0]}: score against energy per task", _notes(s))
    handles, mixed = [], _mixed(s)
    for _, r in s.iterrows():
        kw = _styled(r, styles)
        ax.errorbar(
            r[energy],
            r["score_mean"],
            yerr=r["score_ci95"],
            markersize=8,
            capsize=3,
            linestyle="none",
            **kw,
        )
        far = r["e_deploy_j_per_task"]
        if far == far and far > 0:
            ax.plot([r[energy], far], [r["score_mean"]] * 2, color=kw["color"], lw=0.8, alpha=0.6)
            ax.plot([far], [r["score_mean"]], marker=kw["marker"], color=kw["color"], ms=4)
        handles.append(Line2D([], [], linestyle="none", markersize=7, label=_label(r, mixed), **kw))
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
    _log_scale(ax, "x")
    ax.set_xlabel(f"energy per task at N = {n_test}: E_meta / N + E_deploy (J, log scale)")
    ax.set_ylabel(_wrap(_score_axis(s) + ", ± 95% CI", HEIGHT_IN, SMALL_PT + 2))
    _legend_below(fig, handles, ncols=4)
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
            rows.append((str(r["method"]), base, b.short(), point))
    return rows


def amortization(s: pd.DataFrame, styles: dict[str, Style]) -> Figure | None:
    """E_task(N) = E_meta / N + E_deploy against N (log-log), one line per method; the
    break-even points are marked on the lines and listed in a table beside the plot
    (never as stacked annotations)."""
    s = s.dropna(subset=["e_deploy_j_per_task"])
    if s.empty:
        return None
    n_test = int(s["n_test"].iloc[0])
    fig, ax, side = _figure(
        f"{s['suite'].iloc[0]}: energy per task when N tasks share the meta-training",
        _notes(s),
        width=WIDE_IN,
        side=True,
    )
    n = np.logspace(0, 6, 200)
    handles, mixed = [], _mixed(s)
    for _, r in s.iterrows():
        kw = _styled(r, styles)
        ax.plot(n, r["e_meta_j"] / n + r["e_deploy_j_per_task"], markevery=33, **kw)
        handles.append(Line2D([], [], label=_label(r, mixed), **kw))
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
    _log_scale(ax, "xy")
    ax.set_xlabel("N, tasks served (log scale)")
    ax.set_ylabel("energy per task, E_task(N) (J, log scale)")
    _breakeven_table(side, rows, styles)
    _legend_below(fig, handles, ncols=5)
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
    fig, ax, _ = _figure(
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
    _legend_below(fig, handles, ncols=4)
    return fig


# --------------------------------------------------------------------------- bars


def _hbars(
    s: pd.DataFrame,
    styles: dict[str, Style],
    values: pd.Series,
    title: str,
    xlabel: str,
    text: callable,
    stack: pd.Series | None = None,
) -> Figure:
    """Horizontal bars sorted by value, largest at the top, one per method (names on the
    y axis never collide), value labels after each bar inside the axes."""
    order = values.sort_values(ascending=True).index
    fig, ax, _ = _figure(title, _notes(s, bars=True))
    mixed = _mixed(s)
    total = values + (stack if stack is not None else 0)
    for y, idx in enumerate(order):
        r = s.loc[idx]
        st = styles[r["method"]]
        alpha = 0.55 if bool(r["estimated"]) else 1.0
        ax.barh(y, values[idx], color=st.color, hatch=st.hatch, edgecolor="black", alpha=alpha)
        if stack is not None:
            ax.barh(y, stack[idx], left=values[idx], color="white", edgecolor=st.color, hatch="///")
        ax.text(total[idx], y, "  " + text(idx), va="center", fontsize=SMALL_PT)
    ax.set_yticks(
        range(len(order)), [_label(s.loc[i], mixed) for i in order], fontsize=SMALL_PT + 1
    )
    # room for the value labels: the longest label is about 12 characters
    ax.set_xlim(0, float(total.max()) * 1.32 if total.max() > 0 else 1)
    ax.set_xlabel(xlabel)
    ax.grid(False, axis="y")
    return fig


def efficiency_bars(s: pd.DataFrame, styles: dict[str, Style]) -> Figure | None:
    """Score per kJ at N = n_test (accuracy, or 1/MSE for regression), one bar per method."""
    lower = lower_better(s)
    col = f"{'inv_mse' if lower else 'accuracy'}_per_kj_ntest"
    s = s.dropna(subset=[col])
    if s.empty:
        return None
    n_test = int(s["n_test"].iloc[0])
    unit = "(1/MSE) per kJ" if lower else "accuracy per kJ"
    return _hbars(
        s,
        styles,
        s[col],
        f"{s['suite'].iloc[0]}: {unit} at N = {n_test}",
        f"{unit} of energy per task at N = {n_test} (higher is better)",
        lambda i: fmt.sig(s.loc[i, col]),
    )


def co2_per_method(s: pd.DataFrame, styles: dict[str, Style]) -> Figure | None:
    """CO2 per task at N = n_test of one suite: deploy (solid) plus the meta-training
    share E_meta / n_test (hatched), one bar per method."""
    s = s.dropna(subset=["co2_deploy_g_per_task", "co2_meta_g"])
    if s.empty:
        return None
    n_test = int(s["n_test"].iloc[0])
    meta = s["co2_meta_g"] / s["n_test"]
    return _hbars(
        s,
        styles,
        s["co2_deploy_g_per_task"],
        f"{s['suite'].iloc[0]}: CO2 per task at N = {n_test}",
        "g CO2-eq per task: deploy (solid) + meta-training share (hatched)",
        lambda i: fmt.grams(s.loc[i, "co2_deploy_g_per_task"] + meta[i]),
        stack=meta,
    )


# --------------------------------------------------------------------------- timeline


def _window_power(w: pd.DataFrame) -> pd.DataFrame:
    """Mean power per window and component kind: a coarse trace when no samples exist."""
    rows = []
    for _, r in w.iterrows():
        for kind in ("gpu", "cpu", "dram"):
            if not math.isnan(r[f"{kind}_j"]) and r["seconds_s"] > 0:
                for t in (r["start_s"], r["start_s"] + r["seconds_s"]):
                    rows.append(
                        {"t_s": t, "kind": kind, "power_w": r[f"{kind}_j"] / r["seconds_s"]}
                    )
    return pd.DataFrame(rows, columns=["t_s", "kind", "power_w"])


def power_timeline(trace: pd.DataFrame, w: pd.DataFrame) -> Figure | None:
    """Power of one cell over time per component kind, phases shaded. `trace` are its
    samples (trace.csv rows), `w` its enriched windows."""
    if w.empty:
        return None
    source = "power samples"
    if trace.empty:
        trace, source = _window_power(w), "mean power per window (no samples stored)"
    else:
        trace = trace.assign(kind=trace["component"].str.split(":").str[0])
    if trace.empty:
        return None
    t0 = float(min(w["start_s"].min(), trace["t_s"].min()))
    cell = w.iloc[0]
    fig, ax, _ = _figure(
        f"power of one cell: {cell['suite']} / {cell['method']} / seed {cell['seed']}",
        "≈ estimated energy in this cell" if bool(w["estimated"].any()) else "",
    )
    handles, seen = [], set()
    for _, r in w.iterrows():
        color, hatch = PHASE_SHADES.get(r["phase"], ("#eeeeee", ""))
        patch = ax.axvspan(
            r["start_s"] - t0,
            r["start_s"] - t0 + r["seconds_s"],
            facecolor=color,
            hatch=hatch,
            edgecolor="#999999",
            linewidth=0,
            alpha=0.6,
        )
        if r["phase"] not in seen:
            patch.set_label(f"phase: {r['phase']}")
            handles.append(patch)
        seen.add(r["phase"])
    for kind, g in trace.groupby("kind"):
        style, color = KIND_LINES.get(kind, ("-.", "#CC79A7"))
        g = g.groupby("t_s", as_index=False)["power_w"].sum()
        (line,) = ax.plot(
            g["t_s"] - t0,
            g["power_w"],
            linestyle=style,
            color=color,
            linewidth=1.4,
            label=kind.upper(),
            drawstyle="steps-post",
        )
        handles.append(line)
    ax.set_xlabel(f"time since the cell started (s); {source}")
    ax.set_ylabel("power (W)")
    _legend_below(fig, handles, ncols=4)
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
    "co2_per_method",
    "efficiency_bars",
    "learning_curves",
    "method_styles",
    "power_timeline",
    "to_svg",
]
