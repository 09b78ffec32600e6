"""Power traces into ledger rows: each sample gets the phase of the innermost window it
falls in, and long series are averaged down so a cell stores at most a few thousand rows."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby

from bench.energy.composite import TraceSample

MAX_ROWS_PER_SERIES = 1000  # per (component, kind) and cell
OUTSIDE = "none"  # samples between windows (e.g. sampling episodes)


@dataclass(frozen=True)
class Span:
    """A window's wall-clock span and its phase."""

    phase: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class TraceRow:
    t: float  # wall-clock seconds (time.time())
    component: str
    kind: str
    watts: float
    phase: str


def phase_at(t: float, spans: Sequence[Span]) -> str:
    """The phase of the innermost (shortest) window containing t."""
    inside = [s for s in spans if s.start_s <= t <= s.end_s]
    return min(inside, key=lambda s: s.end_s - s.start_s).phase if inside else OUTSIDE


def trace_rows(
    samples: Iterable[TraceSample], spans: Sequence[Span], max_rows: int = MAX_ROWS_PER_SERIES
) -> list[TraceRow]:
    """Phase-labelled rows, each (component, kind) series averaged in consecutive groups
    (never across a phase change) to about `max_rows` rows."""
    spans = sorted(spans, key=lambda s: s.start_s)
    series: dict[tuple[str, str], list[TraceRow]] = {}
    for s in sorted(samples, key=lambda s: s.t_s):
        row = TraceRow(s.t_s, s.component, s.kind, s.watts, phase_at(s.t_s, spans))
        series.setdefault((s.component, s.kind), []).append(row)
    out: list[TraceRow] = []
    for rows in series.values():
        out += downsample(rows, math.ceil(len(rows) / max_rows))
    return out


def downsample(rows: list[TraceRow], k: int) -> list[TraceRow]:
    """Average groups of k consecutive rows within each run of one phase."""
    if k <= 1:
        return rows
    out = []
    for phase, run in groupby(rows, key=lambda r: r.phase):
        run = list(run)
        for i in range(0, len(run), k):
            g = run[i : i + k]
            out.append(
                TraceRow(
                    sum(r.t for r in g) / len(g),
                    g[0].component,
                    g[0].kind,
                    sum(r.watts for r in g) / len(g),
                    phase,
                )
            )
    return out
