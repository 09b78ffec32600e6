"""Report figures (matplotlib, Agg): one figure per question, built from aggregate tables.

Every function returns a Figure or None (nothing to draw, e.g. energy not measured); the
writer turns figures into inline SVG and PNG files. Readability rules: the Okabe-Ito
palette plus a distinct marker and hatch per method (grey-scale and colour-blind safe),
the same style for a method in every plot, units on every axis, and estimated energy
marked (hollow markers, "≈ est." in labels and a footnote).
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench.report.aggregate import N_LABELS, efficiency_column

OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo", "--")
KIND_LINES = {"gpu": ("-", "#0072B2"), "cpu": ("--", "#D55E00"), "dram": (":", "#009E73")}
PHASE_SHADES = {
    "meta_train": ("#bbbbbb", ""),
    "validate": ("#dddddd", "//"),
    "adapt": ("#eeeeee", ".."),
    "predict": ("#f7f7f7", "xx"),
}
FIGSIZE = (6.4, 4.0)
EST = " ≈ est."


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    hatch: str


def method_styles(methods: list[str]) -> dict[str, Style]:
    """One fixed style per method, by sorted name, so a method looks the same everywhere."""
    return {
        m: Style(OKABE_ITO[i % 8], MARKERS[i % 8], HATCHES[i % 8])
        for i, m in enumerate(sorted(set(methods)))
    }


def _label(row: pd.Series) -> str:
    return str(row["method"]) + (EST if bool(row["estimated"]) else "")


def _footnote(fig: Figure, s: pd.DataFrame) -> None:
    est = sorted(
        set(s.loc[s["estimated"].astype(bool), "source_deploy"])
        | set(s.loc[s["estimated"].astype(bool), "source_meta"])
    )
    if est:  # in the title block, so constrained layout keeps it clear of the axes
        ax = fig.axes[0]
        ax.set_title(
            ax.get_title() + f"\n≈ est.: estimated energy ({', '.join(est)}); "
            "hollow markers, lighter bars",
            fontsize=9,
        )


def _score_axis(s: pd.DataFrame) -> str:
    lower = bool(s["lower_is_better"].iloc[0])
    return "test MSE (lower is better)" if lower else "test accuracy (fraction correct)"


def _new(title: str) -> tuple[Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", color="#dddddd", linewidth=0.6)
    return fig, ax


def pareto_front(points: pd.DataFrame, lower_better: bool) -> pd.DataFrame:
    """Points not dominated in (energy lower, score better), sorted by energy."""
    p = points.sort_values(["e_task_j_ntest", "score_mean"], ascending=[True, lower_better])
    best, keep = None, []
    for idx, r in p.iterrows():
        better = best is None or (
            r["score_mean"] < best if lower_better else r["score_mean"] > best
        )
        if better:
            keep.append(idx)
            best = r["score_mean"]
    return p.loc[keep]


def accuracy_vs_energy(s: pd.DataFrame, styles: dict[str, Style]) -> Figure | None:
    """Score vs E_task(n_test) per method with 95% CI bars and the Pareto front."""
    s = s.dropna(subset=["e_task_j_ntest"])
    if s.empty:
        return None
    n_test = int(s["n_test"].iloc[0])
    fig, ax = _new(f"{s['suite'].iloc[0]}: score vs energy per task at N = {n_test}")
    for _, r in s.iterrows():
        st = styles[r["method"]]
        ax.errorbar(
            r["e_task_j_ntest"],
            r["score_mean"],
            yerr=r["score_ci95"],
            marker=st.marker,
            color=st.color,
            markersize=8,
            capsize=4,
            markerfacecolor="white" if r["estimated"] else st.color,
            linestyle="none",
            label=_label(r),
        )
    front = pareto_front(s, bool(s["lower_is_better"].iloc[0]))
    ax.plot(
        front["e_task_j_ntest"],
        front["score_mean"],
        color="#555555",
        linestyle="--",
        linewidth=1,
        drawstyle="steps-post",
        label="Pareto front",
    )
    ax.set_xscale("log")
    ax.set_xlabel(f"E_task(N={n_test}) = E_meta/N + E_deploy (J per task, log scale)")
    ax.set_ylabel(_score_axis(s) + " ± 95% CI")
    ax.legend(fontsize=8)
    _footnote(fig, s)
    return fig


def amortization(s: pd.DataFrame, styles: dict[str, Style]) -> Figure | None:
    """E_task(N) vs N (log-log), one line per method, break-even points marked."""
    s = s.dropna(subset=["e_deploy_j_per_task"])
    if s.empty:
        return None
    n = np.logspace(0, 6, 200)
    fig, ax = _new(f"{s['suite'].iloc[0]}: amortized energy per task")
    for _, r in s.iterrows():
        st = styles[r["method"]]
        ax.plot(
            n,
            r["e_meta_j"] / n + r["e_deploy_j_per_task"],
            color=st.color,
            marker=st.marker,
            markevery=25,
            label=_label(r),
            markerfacecolor="white" if r["estimated"] else st.color,
        )
    k = 0  # staggers labels so nearby break-even points stay readable
    for _, r in s.iterrows():
        for base in ("scratch", "transfer"):
            n_star = r.get(f"breakeven_vs_{base}_n")
            if isinstance(n_star, (int, float)) and not math.isnan(n_star) and n_star >= 1:
                e = r["e_meta_j"] / n_star + r["e_deploy_j_per_task"]
                ax.plot([n_star], [e], marker="X", color="black", markersize=9, zorder=5)
                ax.annotate(
                    f"N*={n_star:.3g}\n{r['method']} vs {base}",
                    (n_star, e),
                    textcoords="offset points",
                    xytext=(6, 6 + 18 * k),
                    fontsize=7,
                    arrowprops={"arrowstyle": "-", "color": "#777777"},
                )
                k += 1
    ax.axvline(
        int(s["n_test"].iloc[0]), color="#999999", linestyle=":", linewidth=1, label="N = n_test"
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N, tasks served (log scale)")
    ax.set_ylabel("E_task(N) (J per task, log scale)")
    ax.legend(fontsize=8, title="X = break-even N*", title_fontsize=7)
    _footnote(fig, s)
    return fig


def learning_curves(c: pd.DataFrame, styles: dict[str, Style]) -> Figure | None:
    """Validation score vs cumulative meta-training energy (seconds when unmeasured)."""
    if c.empty:
        return None
    measured = bool(c["meta_j_cum"].notna().all())
    x, xlabel = (
        ("meta_j_cum", "cumulative meta-training energy (J)")
        if measured
        else ("meta_s_cum", "cumulative meta-training time (s) — energy not measured")
    )
    lower = c["task"].iloc[0] == "regression"
    fig, ax = _new(f"{c['suite'].iloc[0]}: learning curves")
    for (method, seed), g in c.groupby(["method", "seed"]):
        st = styles[method]
        est = bool(g["estimated"].any())
        ax.plot(
            g[x],
            g["val_score"],
            color=st.color,
            marker=st.marker,
            markerfacecolor="white" if est else st.color,
            label=f"{method} seed {seed}" + (EST if est else ""),
        )
    ax.axhline(
        float(c["target_score"].iloc[0]), color="black", linestyle="--", linewidth=1, label="target"
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(
        "validation MSE (lower is better)" if lower else "validation accuracy (fraction correct)"
    )
    ax.legend(fontsize=8)
    return fig


def efficiency_bars(s: pd.DataFrame, styles: dict[str, Style]) -> Figure | None:
    """Accuracy (or 1/MSE) per kJ at N = n_test, one bar per method."""
    lower = bool(s["lower_is_better"].iloc[0])
    col = efficiency_column(lower, "ntest")
    s = s.dropna(subset=[col])
    if s.empty:
        return None
    n_test = int(s["n_test"].iloc[0])
    fig, ax = _new(f"{s['suite'].iloc[0]}: efficiency at N = {n_test}")
    for i, (_, r) in enumerate(s.iterrows()):
        st = styles[r["method"]]
        ax.bar(
            i,
            r[col],
            color=st.color,
            hatch=st.hatch,
            edgecolor="black",
            alpha=0.55 if r["estimated"] else 1.0,
            label=_label(r),
        )
        if r["estimated"]:
            ax.text(i, r[col], "≈ est.", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(s)), [_label(r) for _, r in s.iterrows()])
    ax.set_ylabel(
        "(1/MSE) per kJ (1 / (MSE·kJ))" if lower else "accuracy per kJ (fraction correct / kJ)"
    )
    _footnote(fig, s)
    return fig


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
    fig, ax = _new(f"power timeline: {cell['suite']} / {cell['method']} / seed {cell['seed']}")
    seen = set()
    for _, r in w.iterrows():
        color, hatch = PHASE_SHADES.get(r["phase"], ("#eeeeee", ""))
        ax.axvspan(
            r["start_s"] - t0,
            r["start_s"] - t0 + r["seconds_s"],
            facecolor=color,
            hatch=hatch,
            edgecolor="#999999",
            linewidth=0,
            alpha=0.6,
            label=None if r["phase"] in seen else f"phase: {r['phase']}",
        )
        seen.add(r["phase"])
    for kind, g in trace.groupby("kind"):
        style, color = KIND_LINES.get(kind, ("-.", "#CC79A7"))
        g = g.groupby("t_s", as_index=False)["power_w"].sum()
        ax.plot(
            g["t_s"] - t0,
            g["power_w"],
            linestyle=style,
            color=color,
            linewidth=1.4,
            label=kind.upper(),
            drawstyle="steps-post",
        )
    ax.set_xlabel(f"time since cell start (s); {source}")
    ax.set_ylabel("power (W)")
    ax.legend(fontsize=7, ncols=2)
    if bool(w["estimated"].any()):
        ax.set_title(ax.get_title() + "\n≈ est.: estimated energy in this cell", fontsize=9)
    return fig


def co2_per_method(summary: pd.DataFrame, styles: dict[str, Style]) -> Figure | None:
    """CO2 per task at N = n_test: amortized meta-training share + deploy, per suite."""
    s = summary.dropna(subset=["co2_deploy_g_per_task"])
    if s.empty:
        return None
    fig, ax = _new("CO2 per task at N = n_test (meta share hatched, deploy solid)")
    labels = []
    for i, (_, r) in enumerate(s.iterrows()):
        st = styles[r["method"]]
        meta = r["co2_meta_g"] / r["n_test"]
        ax.bar(i, r["co2_deploy_g_per_task"], color=st.color, edgecolor="black")
        ax.bar(
            i,
            meta,
            bottom=r["co2_deploy_g_per_task"],
            color="white",
            edgecolor=st.color,
            hatch="///",
        )
        if r["estimated"]:
            ax.text(
                i, meta + r["co2_deploy_g_per_task"], "≈ est.", ha="center", va="bottom", fontsize=8
            )
        labels.append(f"{r['suite']}\n{_label(r)}")
    ax.set_xticks(range(len(s)), labels, fontsize=7)
    ax.set_ylabel("CO2 per task (g CO2-eq)")
    _footnote(fig, s)
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
    "N_LABELS",
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
