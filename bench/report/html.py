"""Render the self-contained HTML report (Jinja2): no network requests, everything inline."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd

TEMPLATES = Path(__file__).parent / "templates"

# The metric definitions repeated in the page (the README's "What the report says").
DEFINITIONS = (
    (
        "E_meta (J)",
        "energy of the meta_train phase (meta-training or pretraining; 0 for "
        "from-scratch), mean per seed; validation windows are reported separately.",
    ),
    (
        "E_deploy (J/task)",
        "adapt + predict energy per test task: each deploy window's energy "
        "divided by the number of episodes it covered.",
    ),
    (
        "E_task(N) (J/task)",
        "E_meta / N + E_deploy: amortized energy per task when N tasks are served.",
    ),
    (
        "accuracy per kJ at N",
        "score / (E_task(N) / 1000), at N = 1, n_test, 10,000 and ∞. "
        "For regression the analogue is (1/MSE) per kJ.",
    ),
    (
        "break-even N*",
        "E_meta / (E_deploy_b - E_deploy) against baseline b (from-scratch, "
        'transfer) when positive, else "never".',
    ),
    (
        "energy-to-target (J)",
        "cumulative meta_train energy at the first validation "
        "checkpoint whose score reaches the suite's target (≥ for accuracy, ≤ for MSE).",
    ),
    (
        "net energy (J)",
        "gross - idle W × seconds, with the idle baseline measured before the run, per component.",
    ),
    ("CO2 (g)", "kWh × carbon intensity (g/kWh) × PUE."),
    (
        "score ± 95% CI",
        "mean over all test episodes pooled across seeds; CI = 1.96 × std(ddof=1) / √n.",
    ),
)


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    kind: str = "num"  # num | text | energy (NaN reads "not measured")


def _cell(value: object, kind: str) -> tuple[str, str]:
    """(display text, sort key) of one table cell."""
    if isinstance(value, float) and math.isnan(value):
        text = "not measured" if kind == "energy" else "—"
        return text, ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.4g}", repr(float(value))
    return str(value), str(value)


def table(
    df: pd.DataFrame, columns: list[Column], table_id: str, marks: pd.Series | None = None
) -> dict:
    """A table for the template: header titles and rows of (text, sort key) cells; rows
    where `marks` is true get a ≈ after their first cell (estimated energy)."""
    rows = []
    for i, (_, r) in enumerate(df.iterrows()):
        cells = [_cell(r.get(c.key, float("nan")), c.kind) for c in columns]
        if marks is not None and bool(marks.iloc[i]):
            cells[0] = (cells[0][0] + " ≈", cells[0][1])
        rows.append(cells)
    return {"id": table_id, "columns": [c.title for c in columns], "rows": rows}


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )


def render_report(context: dict) -> str:
    return environment().get_template("report.html.j2").render(definitions=DEFINITIONS, **context)


def render_index(runs: list[dict], generator: str) -> str:
    return environment().get_template("index.html.j2").render(runs=runs, generator=generator)
