"""What the HTML page says besides tables and plots: the headline blocks, the cells that
did not finish, how energy was measured (in one sentence where no meter measured), the
warnings grouped by suite / method / seed, and the provenance."""

from __future__ import annotations

import json
import re

import pandas as pd

from bench.report.aggregate import LedgerTables, enrich_windows, fingerprint_conflicts
from bench.report.coverage import absent_lines, unfinished_cells
from bench.report.headline import TRANSDUCTIVE_NOTE, all_transductive, headline
from bench.report.html import Column, table
from bench.report.tables import page_tables

MEASURING = ("nvml", "rapl")  # source prefixes of meters (anything estimate:* is a model)
KIND_NAMES = {"gpu": "GPU", "cpu": "CPU", "dram": "DRAM"}


def page_context(t: LedgerTables, summary: pd.DataFrame, title: str, scope: str) -> dict:
    conflicts = fingerprint_conflicts(t.cells)
    blocks = headline(summary, conflicts, absent_lines(t.cells, t.runs), scope)
    return {
        "title": title,
        "scope": scope,
        "headline": [
            {"suite": h.suite, "caption": h.caption, "lines": h.lines, "notes": h.notes}
            for h in blocks
        ],
        "nothing_done": summary.empty,
        "transductive_note": TRANSDUCTIVE_NOTE if all_transductive(summary) else "",
        "unfinished": unfinished_cells(t.cells).to_dict("records"),
        "conflicts": conflicts.to_dict("records"),
        **page_tables(summary),
        **measurement_context(t),
        **provenance_context(t),
    }


# --------------------------------------------------------------------------- energy


def component_sources(windows: pd.DataFrame) -> dict[str, set[str]]:
    """{component kind: its sources} over the windows (the ledger's JSON `sources`)."""
    out: dict[str, set[str]] = {}
    for text in windows.get("sources", pd.Series(dtype=object)).dropna():
        for comp, source in json.loads(text or "{}").items():
            out.setdefault(comp.split(":", 1)[0], set()).add(str(source))
    return out


def _measured(source: str) -> bool:
    return any(part.startswith(MEASURING) for part in source.split("+"))


def energy_sentence(sources: dict[str, set[str]]) -> tuple[str, bool]:
    """(one sentence on where the energy comes from, whether it is all a model)."""
    if not sources or all(s <= {"none"} for s in sources.values()):
        return "No meter and no model covered this run: it reports time only.", False
    measured = sorted(k for k, v in sources.items() if any(_measured(s) for s in v))
    modelled = sorted(k for k, v in sources.items() if not any(_measured(s) for s in v))
    names = lambda kinds: " and ".join(KIND_NAMES.get(k, k) for k in kinds)  # noqa: E731
    if not measured:
        return (
            "No meter measured energy here (no RAPL, no NVML): every joule is a model's "
            "estimate, modelled power × time (e.g. codecarbon: CPU TDP × load plus a fixed "
            "DRAM term), so the energy ranking is a wall-time ranking: a method that uses "
            "less energy here simply ran for less time.",
            True,
        )
    via = sorted({s for k in measured for s in sources[k] if _measured(s)})
    text = f"{names(measured)} energy is measured ({', '.join(via)})"
    if modelled:
        text += (
            f"; {names(modelled)} energy is a model's estimate (≈: modelled power × time), "
            "marked wherever it enters a figure"
        )
    return text + ".", False


def warning_groups(t: LedgerTables) -> list[dict]:
    """Window warnings of done cells grouped by suite / method / seed, then by phase and
    message (numbers that vary between windows folded: "×12 windows, values differ")."""
    w = t.windows[["cell_key", "phase", "warnings"]].merge(
        t.done[["cell_key", "suite", "method", "seed"]], on="cell_key"
    )
    groups = []
    for (suite, method, seed), g in w.groupby(["suite", "method", "seed"], sort=True):
        items: dict[tuple[str, str], list[str]] = {}
        for r in g.itertuples():
            for msg in json.loads(r.warnings or "[]"):
                key = (r.phase, re.sub(r"\d+(\.\d+)?", "#", msg))
                items.setdefault(key, []).append(msg)
        lines = []
        for (phase, _), msgs in sorted(items.items()):
            more = f" (×{len(msgs)} windows" + (", values differ)" if len(set(msgs)) > 1 else ")")
            lines.append(f"{phase}: {msgs[0]}" + (more if len(msgs) > 1 else ""))
        if lines:
            groups.append({"cell": f"{suite} / {method} / seed {seed}", "lines": lines})
    return groups


def measurement_context(t: LedgerTables) -> dict:
    ew = enrich_windows(t)
    done = t.windows[t.windows["cell_key"].isin(t.done["cell_key"])]
    sentence, model_only = energy_sentence(component_sources(done))
    idle = t.idle.rename(columns={"watts": "idle_w", "seconds": "measured_for_s"})
    return {
        "energy_sentence": sentence,
        "model_only": model_only,
        "sources": sorted({s for src in ew.get("source", []) for s in src.split("+")}),
        "warning_groups": warning_groups(t),
        "idle": table(
            idle,
            [
                Column("run_id", "run", "text"),
                Column("component", "component", "text"),
                Column("idle_w", "idle power (W)"),
                Column("source", "source", "text"),
                Column("measured_for_s", "measured for", "seconds"),
            ],
            "idle",
        ),
        "carbon": table(
            t.carbon,
            [
                Column("run_id", "run", "text"),
                Column("intensity_g_per_kwh", "intensity (g/kWh)"),
                Column("source", "source", "text"),
                Column("pue", "PUE"),
                Column("region", "region", "text"),
            ],
            "carbon",
        ),
    }


# --------------------------------------------------------------------------- provenance


def provenance_context(t: LedgerTables) -> dict:
    runs = [
        {
            "run_id": r.run_id,
            "command": r.command,
            "environment": json.dumps(json.loads(r.environment or "{}"), indent=2),
        }
        for r in t.runs.itertuples()
    ]
    suites = t.done.groupby("suite", as_index=False).agg(
        suite_path=("suite_path", "first"),
        suite_sha256=("suite_sha256", "first"),
        profile=("profile", "first"),
        dataset=("dataset", "first"),
        split=("split", "first"),
        n_way=("n_way", "first"),
        k_shot=("k_shot", "first"),
        n_test=("n_test", "first"),
        target_score=("target_score", "first"),
    )
    cols = [
        Column("suite", "suite", "text"),
        Column("suite_path", "file", "text"),
        Column("suite_sha256", "sha256", "text"),
        Column("profile", "profile", "text"),
        Column("dataset", "dataset", "text"),
        Column("split", "split", "text"),
        Column("n_way", "way", "int"),
        Column("k_shot", "shot", "int"),
        Column("n_test", "test episodes", "int"),
        Column("target_score", "target"),
    ]
    return {"runs": runs, "suites": table(suites, cols, "suites")}
