"""Bar charts of the report, one bar per row, horizontal so that row labels never collide:
score per kJ, CO2 per task, and energy per task by component (GPU, CPU, DRAM).

What a bar's look means is the same in every chart and each chart's note says it: the
colour and hatch pattern are the method's (bench/report/styles.py, as in every plot); ≈ in
a label marks estimated energy; in the CO2 chart the white, outlined part is the
meta-training share; in the component chart a lighter part is estimated by a model."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from bench.report import fmt
from bench.report.figure import SMALL_PT, new_figure, row_label
from bench.report.reading import lower_better
from bench.report.styles import Style


def _hbars(
    s: pd.DataFrame,
    styles: dict[str, Style],
    values: pd.Series,
    title: str,
    xlabel: str,
    text: callable,
    stack: pd.Series | None = None,
) -> Figure:
    """Horizontal bars sorted by value, largest at the top, one per row (labels on the y
    axis never collide), value labels after each bar inside the axes. `stack`: a second
    part drawn after each bar, white with the method's outline and hatch."""
    total = values + (stack if stack is not None else 0)
    order = total.sort_values(ascending=True).index
    fig, ax, _ = new_figure(title, _bar_note(s, stack is not None))
    for y, idx in enumerate(order):
        st = styles[s.loc[idx, "method"]]
        ax.barh(y, values[idx], color=st.color, hatch=st.hatch, edgecolor="black")
        if stack is not None:
            ax.barh(y, stack[idx], left=values[idx], color="white", edgecolor=st.color,
                    hatch=st.hatch)  # fmt: skip
        ax.text(total[idx], y, "  " + text(idx), va="center", fontsize=SMALL_PT)
    ax.set_yticks(range(len(order)), [row_label(s.loc[i]) for i in order], fontsize=SMALL_PT + 1)
    # room for the value labels: the longest label is about 12 characters
    ax.set_xlim(0, float(total.max()) * 1.32 if total.max() > 0 else 1)
    ax.set_xlabel(xlabel)
    ax.grid(False, axis="y")
    return fig


def _bar_note(s: pd.DataFrame, stacked: bool) -> str:
    parts = ["filled: deploy; white, outlined: meta-training share"] if stacked else []
    parts.append("colour and pattern: the method's")
    if s["estimated"].astype(bool).any():
        parts.append("≈: energy partly or wholly estimated (a model, not a meter)")
    return "; ".join(parts) + "."


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
    """CO2 per task at N = n_test of one suite: deploy (filled) plus the meta-training
    share E_meta / n_test (white, outlined), one bar per row, in one unit (µg, mg or g)
    chosen for the largest bar."""
    s = s.dropna(subset=["co2_deploy_g_per_task", "co2_meta_g"])
    if s.empty:
        return None
    n_test = int(s["n_test"].iloc[0])
    meta = s["co2_meta_g"] / s["n_test"]
    scale, unit = fmt.mass_unit(s["co2_deploy_g_per_task"] + meta)
    return _hbars(
        s,
        styles,
        s["co2_deploy_g_per_task"] / scale,
        f"{s['suite'].iloc[0]}: CO2 per task at N = {n_test}",
        f"{unit} CO2-eq per task: deploy + meta-training share",
        lambda i: fmt.grams(s.loc[i, "co2_deploy_g_per_task"] + meta[i], unit=(scale, unit)),
        stack=meta / scale,
    )


KIND_COLORS = {"gpu": "#0072B2", "cpu": "#D55E00", "dram": "#009E73"}
KIND_NAMES = {"gpu": "GPU", "cpu": "CPU", "dram": "DRAM"}


def _kind_part(s: pd.DataFrame, kind: str) -> pd.Series:
    """Energy per task at N = n_test of one component kind: E_meta,k / n_test + E_deploy,k."""
    meta = s.get(f"e_meta_{kind}_j", pd.Series(float("nan"), index=s.index))
    deploy = s.get(f"e_deploy_{kind}_j_per_task", pd.Series(float("nan"), index=s.index))
    return meta.fillna(0) / s["n_test"] + deploy.fillna(0)


def _kind_label(s: pd.DataFrame, kind: str) -> tuple[str, bool]:
    """("GPU: nvml-counter", estimated?) over the suite's rows."""
    sources, estimated = set(), False
    for phase in ("meta", "deploy"):
        sources |= set(s.get(f"source_{phase}_{kind}", pd.Series(dtype=object)).dropna())
        estimated |= bool(
            s.get(f"estimated_{phase}_{kind}", pd.Series([False])).fillna(False).any()
        )
    sources -= {"", "none", "no meta-training"}
    text = f"{KIND_NAMES[kind]}{' ≈' if estimated else ''}: {', '.join(sorted(sources)) or '?'}"
    return text, estimated


def component_bars(s: pd.DataFrame, styles: dict[str, Style]) -> Figure | None:
    """Energy per task at N = n_test split by component kind (GPU, CPU, DRAM), each with
    its meter; estimated components lighter (and ≈ in the legend), so the measured part of a total
    reads apart from the modelled part. None without per-component columns."""
    kinds = [
        k
        for k in KIND_COLORS
        if f"e_deploy_{k}_j_per_task" in s and s[f"e_deploy_{k}_j_per_task"].notna().any()
    ]
    if not kinds:
        return None
    parts = {k: _kind_part(s, k) for k in kinds}
    total = sum(parts.values())
    order = total.sort_values(ascending=True).index
    n_test = int(s["n_test"].iloc[0])
    fig, ax, _ = new_figure(
        f"{s['suite'].iloc[0]}: energy per task at N = {n_test}, by component",
        "Lighter, ≈: estimated by a model; full colour: measured by a meter.",
    )
    handles = []
    left = pd.Series(0.0, index=s.index)
    for k in kinds:
        label, estimated = _kind_label(s, k)
        style = {"alpha": 0.45 if estimated else 1.0}
        for y, idx in enumerate(order):
            ax.barh(y, parts[k][idx], left=left[idx], color=KIND_COLORS[k], edgecolor="black",
                    linewidth=0.5, **style)  # fmt: skip
        left = left + parts[k]
        handles.append(Patch(facecolor=KIND_COLORS[k], edgecolor="black", label=label, **style))
    for y, idx in enumerate(order):
        ax.text(total[idx], y, "  " + fmt.joules(total[idx]), va="center", fontsize=SMALL_PT)
    ax.set_yticks(range(len(order)), [_plain(s.loc[i]) for i in order])
    ax.set_xlim(0, float(total.max()) * 1.32 if total.max() > 0 else 1)
    ax.set_xlabel(f"J per task at N = {n_test}: E_meta / N + E_deploy, per component")
    ax.grid(False, axis="y")
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=SMALL_PT)
    return fig


def _plain(row: pd.Series) -> str:
    """The row's label without the ≈ (the components carry it here)."""
    return row_label(row).removesuffix(" ≈")
