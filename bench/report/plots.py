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

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from bench.report.figtable import breakeven_table, fit_rows
from bench.report.figure import (
    EST,
    HEIGHT_IN,
    NOTE_PT,
    SMALL_PT,
    WIDE_IN,
    legend_below,
    log_axes,
    new_figure,
    row_label,
    tasks_tick,
    wrap,
)
from bench.report.reading import BASELINES, breakeven, lower_better, pareto_front
from bench.report.styles import Style, method_styles

BREAKEVEN_MARKERS = {"scratch": "o", "transfer": "D"}
FRONT_STYLES = ("--", ":", "-.")  # one Pareto front per comparison group
# A summary row's settings that make a comparison group (bench/report/ledger.py COMPARISON,
# less the suite): rows of different groups are never compared, so each has its own front.
GROUP_KEYS = ("profile", "device", "precision", "normalization")
# Every setting of a summary row (bench/report/ledger.py SETTINGS): a curve belongs to the
# row whose method and settings it shares.
SETTING_KEYS = ("profile", "device", "precision", "normalization", "execution", "torch_threads")


def notes(s: pd.DataFrame) -> str:
    """The note line under the title: estimated energy."""
    if not s["estimated"].astype(bool).any():
        return ""
    return "≈ energy partly or wholly estimated (a model, not a meter); hollow markers."


def _score_axis(s: pd.DataFrame) -> str:
    return (
        "test MSE (lower is better)"
        if lower_better(s)
        else "test accuracy (fraction correct, higher is better)"
    )


def styled(row: pd.Series, styles: dict[str, Style]) -> dict:
    st = styles[row["method"]]
    return {
        "color": st.color,
        "marker": st.marker,
        "markerfacecolor": "white" if bool(row["estimated"]) else st.color,
        "markeredgecolor": st.color,
    }


def line_style(row: pd.Series) -> str:
    """Dashed for a transductive row of a suite that mixes normalizations (its label ends
    in †: bench/report/tables.py), so its line differs from the same method's inductive
    one; solid otherwise."""
    return "--" if str(row.get("label", "")).endswith("†") else "-"


# --------------------------------------------------------------------------- decision


def errbar_text(s: pd.DataFrame) -> str:
    """What the score error bars are: the seed-level interval with two or more seeds (the
    summary's score_errbar), else the pooled-episode one."""
    kinds = set(s.get("score_errbar_kind", pd.Series(["episodes"])).fillna("episodes"))
    if kinds == {"seeds"}:
        return "± 95% CI over seeds (Student's t)"
    if "seeds" in kinds:
        return "± 95% CI over seeds (Student's t; over episodes for single-seed rows)"
    return "± 95% CI over episodes"


def front_groups(s: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(name, rows) per comparison group of a suite's rows: a Pareto front never joins rows
    that are not compared (e.g. support and transductive normalization). The name lists
    the settings that differ between groups ("" for a single group)."""
    keys = [k for k in GROUP_KEYS if k in s and s[k].nunique() > 1]
    if not keys:
        return [("", s)]
    return [
        (", ".join(str(v) for v in (name if isinstance(name, tuple) else (name,))), g)
        for name, g in s.groupby(keys, sort=True)
    ]


def accuracy_vs_energy(
    s: pd.DataFrame, styles: dict[str, Style], energy: str = "e_task_j_ntest"
) -> Figure | None:
    """The decision plot: score vs energy per task at N = n_test (marker, error bar: the
    seed-level 95% CI with two or more seeds, else the pooled-episode one), with a thin
    line to the same method's energy per task as N → ∞ (E_deploy, small marker); dashed:
    the Pareto front at N = n_test, one per comparison group."""
    s = s.dropna(subset=[energy])
    if s.empty:
        return None
    n_test = int(s["n_test"].iloc[0])
    fig, ax, _ = new_figure(f"{s['suite'].iloc[0]}: score against energy per task", notes(s))
    handles = []
    for _, r in s.iterrows():
        kw, dash = styled(r, styles), line_style(r)
        bars = ax.errorbar(
            r[energy],
            r["score_mean"],
            yerr=r.get("score_errbar", r["score_ci95"]),
            markersize=8,
            capsize=3,
            linestyle="none",
            **kw,
        )
        bars.lines[2][0].set_linestyle(dash)
        far = r["e_deploy_j_per_task"]
        if far == far and far > 0:
            ax.plot([r[energy], far], [r["score_mean"]] * 2, color=kw["color"], lw=0.8,
                    alpha=0.6, linestyle=dash)  # fmt: skip
            ax.plot([far], [r["score_mean"]], marker=kw["marker"], color=kw["color"], ms=4)
        line = {"linestyle": dash, "lw": 0.8} if dash != "-" else {"linestyle": "none"}
        handles.append(Line2D([], [], markersize=7, label=row_label(r), **line, **kw))
    for (name, g), style in zip(front_groups(s), FRONT_STYLES * 4, strict=False):
        front = pareto_front(g, energy, lower_better(s))
        line = {"color": "#555555", "linestyle": style, "linewidth": 1}
        ax.plot(front[energy], front["score_mean"], drawstyle="steps-post", **line)
        label = f"Pareto front at N = {n_test}" + (f" ({name})" if name else "")
        handles.append(Line2D([], [], label=label, **line))
    handles.append(
        Line2D([], [], color="#777777", marker="o", ms=4, lw=0.8, label="same method, N → ∞")
    )
    log_axes(ax, "x")
    ax.set_xlabel(f"energy per task at N = {n_test}: E_meta / N + E_deploy (J, log scale)")
    ax.set_ylabel(wrap(f"{_score_axis(s)}, {errbar_text(s)}", HEIGHT_IN, SMALL_PT + 2))
    legend_below(fig, handles, ncols=4)
    return fig


# --------------------------------------------------------------------------- amortization


def _breakeven_rows(s: pd.DataFrame) -> tuple[list[str], list[tuple[str, str, list[str]]]]:
    """(baselines present, [(label, method, [break-even text per baseline])]) for the side
    table: one row per plotted row, labelled as in the legend (so "anil (support)" and
    "anil (transductive)" differ), the texts of reading.BreakEven.text, "—" against itself."""
    bases = [b for b in BASELINES if b in set(s["method"])]
    rows = []
    for _, r in s.iterrows():
        texts = ["—" if r["method"] == b else breakeven(r, b).text() for b in bases]
        rows.append((row_label(r).removesuffix(EST), str(r["method"]), texts))
    return bases, rows


def _breakeven_points(s: pd.DataFrame) -> list[tuple[str, str, tuple[float, float]]]:
    """(method, baseline, (N*, E_task(N*))) of every finite N* >= 1, for the markers."""
    points = []
    for _, r in s.iterrows():
        for base in BASELINES:
            b = breakeven(r, base)
            if r["method"] != base and b.has_number and b.n >= 1:
                e_task = r["e_meta_j"] / b.n + r["e_deploy_j_per_task"]
                points.append((str(r["method"]), base, (b.n, e_task)))
    return points


def amortization(s: pd.DataFrame, styles: dict[str, Style]) -> Figure | None:
    """E_task(N) = E_meta / N + E_deploy against N (log-log), one line per row; the
    break-even points are marked on the lines and listed in a table beside the plot
    (never as stacked annotations), one table row per plotted row."""
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
    handles = []
    for _, r in s.iterrows():
        kw = {**styled(r, styles), "linestyle": line_style(r)}
        ax.plot(n, r["e_meta_j"] / n + r["e_deploy_j_per_task"], markevery=33, **kw)
        handles.append(Line2D([], [], label=row_label(r), **kw))
    points = _breakeven_points(s)
    for method, base, point in points:
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
        if any(b == base for _, b, _ in points):
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
    ax.xaxis.set_major_formatter(FuncFormatter(tasks_tick))
    ax.set_xlabel("N, tasks served (log scale)")
    ax.set_ylabel("energy per task, E_task(N) (J, log scale)")
    legend_below(fig, handles, ncols=4)
    colors = {m: st.color for m, st in styles.items()}
    table = breakeven_table(side, *_breakeven_rows(s), colors, SMALL_PT)
    if table is not None:  # the plot narrowed: its note wraps to its new width
        inches = ax.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi
        ax.set_title(wrap(notes(s), inches, NOTE_PT), fontsize=NOTE_PT, color="#444444")
        fit_rows(side, table)
    return fig


# --------------------------------------------------------------------------- curves


def curve_labels(c: pd.DataFrame, rows: pd.DataFrame | None) -> pd.Series:
    """Each checkpoint's row label (the table label of the summary row of its method and
    settings, † included), so one line is one row and one seed: support and transductive
    runs of a method never join into one line."""
    if rows is None:
        return c["method"].astype(str)
    keys = [k for k in ("method", *SETTING_KEYS) if k in c and k in rows]

    def key(r: pd.Series) -> tuple[str, ...]:
        return tuple(str(r[k]) for k in keys)  # str: NaN settings of old ledgers match

    lookup = {key(r): str(r.get("label", r["method"])) for _, r in rows.iterrows()}
    return pd.Series([lookup.get(key(r), str(r["method"])) for _, r in c.iterrows()], index=c.index)


def learning_curves(
    c: pd.DataFrame, styles: dict[str, Style], rows: pd.DataFrame | None = None
) -> Figure | None:
    """Validation score vs cumulative meta-training energy (seconds when unmeasured), one
    line per summary row (`rows`: the suite's prepared summary rows, for their labels) and
    seed."""
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
    c = c.assign(_label=curve_labels(c, rows))
    handles = []
    for (label, method, seed), g in c.groupby(["_label", "method", "seed"], sort=True):
        st = styles[method]
        e = bool(g["estimated"].any())
        kw = {
            "color": st.color,
            "marker": st.marker,
            "markerfacecolor": "white" if e else st.color,
            "markeredgecolor": st.color,
            "linestyle": line_style(pd.Series({"label": label})),
        }
        g = g.sort_values("step")
        ax.plot(g[x], g["val_score"], **kw)
        text = f"{label.removesuffix(' †')} seed {seed}" + (EST if e else "")
        handles.append(Line2D([], [], label=text, **kw))
    ax.axhline(float(c["target_score"].iloc[0]), color="black", linestyle="--", linewidth=1)
    handles.append(Line2D([], [], color="black", linestyle="--", label="target score"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation MSE (lower is better)" if lower else "validation accuracy")
    legend_below(fig, handles, ncols=4)
    return fig


__all__ = ["Style", "accuracy_vs_energy", "amortization", "learning_curves", "method_styles"]
