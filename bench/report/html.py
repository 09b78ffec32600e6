"""Render the self-contained HTML report (Jinja2): no network requests, everything inline.

Table cells are formatted for people (bench/report/fmt.py): energy with its unit (J, kJ,
MJ), CO2 in grams, scores with their CI, break-even in tasks with its interval; each cell
keeps an exact sort key, so a click on a header sorts by value, not by text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup, escape

from bench.report import fmt
from bench.report.columns import missing_text
from bench.report.definitions import DEFINITIONS
from bench.report.reading import breakeven

TEMPLATES = Path(__file__).parent / "templates"


def _definition(markdown: str) -> Markup:
    """A definition's Markdown text as HTML: escaped, `code` spans as <code>."""
    parts = str(escape(markdown)).split("`")
    return Markup("".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)))


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: object) -> str:
    return "" if _missing(value) else repr(float(value))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Column:
    """One table column: `key` in the row, header `title`, how cells read (`kind`), an
    optional boolean row key `mark` that appends ≈ (estimated), and header help text.

    kinds: text | digest (a hash, shortened) | num | int | energy (J, kJ, MJ) |
    grams (one unit per column, µg to t) | seconds | share | score (with its pooled CI) |
    score_ci (a second CI of score_mean) | breakeven:<baseline>. With `interval`, the
    cell's second line is the 95% interval of `<key>_lo` / `<key>_hi`."""

    key: str
    title: str
    kind: str = "num"
    mark: str = ""
    help: str = ""
    group: str = ""  # a header spanning the neighbouring columns of the same group
    missing: str = ""  # what an empty cell means when the row's energy was measured
    # a text column that says why this one is empty ("0/1 seeds" -> "not reached";
    # "no transfer run", "baseline", "no checkpoints" as they are)
    missing_from: str = ""
    interval: bool = False


def _cell(r: pd.Series, c: Column, unit: tuple[float, str] | None = None) -> dict:
    """{text, sort, title, sub} of one table cell (sub: a second line, the interval)."""
    value = r.get(c.key)
    cell = _first_line(r, c, value, unit)
    # no interval for an exact 0 (from-scratch's E_meta): "0 J (95% CI 0 to 0 J)" says nothing
    if c.interval and not _missing(value) and value != 0 and "sub" not in cell:
        cell["sub"] = fmt.joules_interval(r.get(f"{c.key}_lo"), r.get(f"{c.key}_hi"))
    return cell


def _first_line(r: pd.Series, c: Column, value: object, unit: tuple[float, str] | None) -> dict:
    lower = bool(r.get("lower_is_better"))
    if c.kind in ("score", "score_ci"):
        text = (
            fmt.score(value, r.get("score_ci95"), lower)
            if c.kind == "score"
            else fmt.score_ci(r.get("score_mean"), value, lower)
        )
        return {"text": text, "sort": _number(value), "title": ""}
    if c.kind.startswith("breakeven:"):
        be = breakeven(r, c.kind.split(":", 1)[1])
        # the interval on a second line, as energy intervals: the answer table fits 1280 px
        text, interval = be.parts()
        cell = {"text": text, "sort": _number(be.n), "title": be.note}
        return cell | ({"sub": interval} if interval else {})
    if _missing(value):
        return {"text": _empty_text(r, c), "sort": "", "title": ""}
    if c.kind == "text":
        return {"text": str(value), "sort": str(value), "title": ""}
    if c.kind == "digest":  # 12 hex digits identify a file; the whole hash is the tooltip
        return {"text": f"{str(value)[:12]}…", "sort": str(value), "title": str(value)}
    formats: dict[str, Callable[[float], str]] = {
        "energy": fmt.joules,
        "grams": lambda v: fmt.grams(v, unit=unit),
        "seconds": fmt.seconds,
        "share": lambda v: f"{fmt.sig(100 * v, 3)}%",
        "int": lambda v: f"{int(v):,}",
        "num": fmt.sig,
    }
    text = formats.get(c.kind, fmt.sig)(float(value))
    if c.mark and bool(r.get(c.mark)) and float(value) != 0:
        text += " ≈"
    return {"text": text, "sort": _number(value), "title": ""}


def _empty_text(r: pd.Series, c: Column) -> str:
    """What an empty cell means: the column's own word where the row's energy was
    measured (e.g. "not reached"), else the column dictionary's reading ("not applicable",
    "not measured", the row's note such as "within idle noise")."""
    measured = bool(r.get("energy_measured", True))
    if c.missing_from and measured and isinstance(r.get(c.missing_from), str):
        why = r[c.missing_from]
        return "not reached" if why[:1].isdigit() else why
    if c.missing and measured:
        return c.missing
    text = missing_text(r.to_dict(), c.key) or "—"
    return "not measured" if text == "—" and c.kind in ("energy", "grams") else text


def table(
    df: pd.DataFrame,
    columns: list[Column],
    table_id: str,
    label: Callable[[pd.Series], str] | None = None,
    drop_empty: bool = False,
) -> dict:
    """A table for the template: header groups, headers and rows of cells. `label(row)`
    replaces the method cell's text (e.g. to mark transductive rows); `drop_empty` leaves
    out the columns in which no row has a value other than 0 (e.g. setup energy of a
    ledger without setup windows)."""
    if drop_empty:
        columns = [c for i, c in enumerate(columns) if i < 2 or _filled(df, c)]
    units = {c.key: fmt.mass_unit(df[c.key]) for c in columns if c.kind == "grams" and c.key in df}
    rows = []
    for _, r in df.iterrows():
        cells = [_cell(r, c, units.get(c.key)) for c in columns]
        if label is not None:
            cells[1]["text"] = label(r)
        rows.append(cells)
    return {
        "id": table_id,
        "groups": _groups(columns),
        "columns": [{"title": c.title, "help": c.help} for c in columns],
        "rows": rows,
    }


def _filled(df: pd.DataFrame, c: Column) -> bool:
    if c.kind == "score" or c.kind.startswith("breakeven:"):
        return True
    if c.kind == "score_ci":
        return c.key in df and bool(df[c.key].notna().any())
    if c.key not in df:
        return False
    if c.missing_from in df:  # kept where some row tried (its reason reads "k/n seeds")
        return bool(
            df[c.key].notna().any() or df[c.missing_from].astype(str).str[:1].str.isdigit().any()
        )
    values = df[c.key].dropna()
    numeric = pd.to_numeric(values, errors="coerce")
    return bool(len(values)) and not (numeric.notna().all() and (numeric == 0).all())


def _groups(columns: list[Column]) -> list[dict]:
    """Header groups: runs of neighbouring columns sharing `group` ("" spans ungrouped
    columns); empty when no column has a group."""
    if not any(c.group for c in columns):
        return []
    spans: list[dict] = []
    for c in columns:
        if spans and spans[-1]["title"] == c.group:
            spans[-1]["span"] += 1
        else:
            spans.append({"title": c.group, "span": 1})
    return spans


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )


def render_report(context: dict) -> str:
    return (
        environment()
        .get_template("report.html.j2")
        .render(definitions=[(_definition(n), _definition(t)) for n, t in DEFINITIONS], **context)
    )


def render_index(runs: list[dict], generator: str) -> str:
    return environment().get_template("index.html.j2").render(runs=runs, generator=generator)
