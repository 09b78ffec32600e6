"""What the HTML page says besides tables and plots: the headline blocks, the cells that
did not finish, how energy was measured (in one sentence where no meter measured), the
warnings grouped by suite / method / seed, and the provenance."""

from __future__ import annotations

import json
import re

import pandas as pd

from bench.report import marks
from bench.report.aggregate import LedgerTables, enrich_windows, fingerprint_conflicts
from bench.report.coverage import absent_lines, unfinished_cells
from bench.report.headline import TRANSDUCTIVE_NOTE, all_transductive, headline
from bench.report.html import Column, table
from bench.report.ledger import SETTINGS
from bench.report.tables import marked_label, page_tables, prepare

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
        **measurement_context(t, prepare(summary) if len(summary) else summary),
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
    if not sources:
        return "No cell of this run finished: nothing was metered yet.", False
    if all(s <= {"none"} for s in sources.values()):
        return "No meter and no model covered this run: it reports time only.", False
    measured = sorted(k for k, v in sources.items() if any(_measured(s) for s in v))
    modelled = sorted(k for k, v in sources.items() if not any(_measured(s) for s in v))
    names = lambda kinds: " and ".join(KIND_NAMES.get(k, k) for k in kinds)  # noqa: E731
    if not measured:
        return (
            "No meter measured energy here (no RAPL, no NVML): every joule is a model's "
            "estimate, modelled power × time (codecarbon's CPU TDP and RAM power; "
            "estimate:codecarbon-process attributes them to metabench's process by its "
            "share of CPU time and memory), so the energy ranking is a time ranking: a "
            "method that uses less energy here simply ran for less time.",
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


def _mark_lines(r: pd.Series | None) -> list[str]:
    """The warnings a cell's summary row carries as marks: ⚠ foreign load, ‡ shared energy."""
    if r is None:
        return []
    lines = []
    if marks.foreign(r):
        note = r.get("foreign_load_note")
        if not (isinstance(note, str) and note):
            note = f"other processes used up to {r['foreign_load_max']:.0%} of the machine's CPU"
        lines.append(f"{marks.FOREIGN} foreign CPU load: {note}")
    if marks.shared(r):
        reason = r.get("shared_energy_reason")
        lines.append(f"{marks.SHARED} shared energy: {reason or 'energy shared among cells'}")
    return lines


def warning_groups(t: LedgerTables, s: pd.DataFrame) -> list[dict]:
    """Per done cell (suite / its row's label and marks / seed): the marks of its summary
    row (`s`: prepared summary rows) with their reasons, then its windows' warnings grouped
    by phase and message (numbers that vary between windows folded: "×12 windows, values
    differ")."""
    keys = ["suite", "method", *(k for k in SETTINGS if k in s and k in t.done)]
    rows = {tuple(str(r[k]) for k in keys): r for _, r in s.iterrows()}
    w = t.windows[["cell_key", "phase", "warnings"]]
    groups = []
    for cell in t.done.sort_values(["suite", "method", "seed"]).itertuples():
        r = rows.get(tuple(str(getattr(cell, k)) for k in keys))
        items: dict[tuple[str, str], list[str]] = {}
        for x in w[w["cell_key"] == cell.cell_key].itertuples():
            for msg in json.loads(x.warnings or "[]"):
                items.setdefault((x.phase, re.sub(r"\d+(\.\d+)?", "#", msg)), []).append(msg)
        lines = _mark_lines(r)
        for (phase, _), msgs in sorted(items.items()):
            more = f" (×{len(msgs)} windows" + (", values differ)" if len(set(msgs)) > 1 else ")")
            lines.append(f"{phase}: {msgs[0]}" + (more if len(msgs) > 1 else ""))
        if lines:
            label = marked_label(r) if r is not None else cell.method
            groups.append({"cell": f"{cell.suite} / {label} / seed {cell.seed}", "lines": lines})
    return sorted(groups, key=lambda g: g["cell"])


def measurement_context(t: LedgerTables, s: pd.DataFrame) -> dict:
    """How energy was measured, the idle baseline and carbon, and the warnings per cell
    (`s`: the prepared summary rows, for the cells' labels and marks)."""
    ew = enrich_windows(t)
    done = t.windows[t.windows["cell_key"].isin(t.done["cell_key"])]
    sentence, model_only = energy_sentence(component_sources(done))
    idle = t.idle.rename(columns={"watts": "idle_w", "seconds": "measured_for_s"})
    return {
        "energy_sentence": sentence,
        "model_only": model_only,
        "sources": sorted({s for src in ew.get("source", []) for s in src.split("+")}),
        "warning_groups": warning_groups(t, s),
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
        Column("suite_sha256", "sha256", "digest"),
        Column("profile", "profile", "text"),
        Column("dataset", "dataset", "text"),
        Column("split", "split", "text"),
        Column("n_way", "way", "int"),
        Column("k_shot", "shot", "int"),
        Column("n_test", "test episodes", "int"),
        Column("target_score", "target"),
    ]
    return {"runs": runs, "suites": table(suites, cols, "suites")}
