"""The power timeline of one cell: power per component kind over time, phases shaded."""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure

from bench.report.figure import legend_below, new_figure

KIND_LINES = {"gpu": ("-", "#0072B2"), "cpu": ("--", "#D55E00"), "dram": (":", "#009E73")}
PHASE_SHADES = {
    "meta_train": ("#bbbbbb", ""),
    "validate": ("#dddddd", "//"),
    "setup": ("#e8e8e8", "--"),
    "adapt": ("#eeeeee", ".."),
    "predict": ("#f7f7f7", "xx"),
}


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
    fig, ax, _ = new_figure(
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
    legend_below(fig, handles, ncols=4)
    return fig
