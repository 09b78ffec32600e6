"""The headline: per suite, two to four lines a researcher can act on.

1. The best score and its method, against the baselines (from-scratch, transfer).
2. The Pareto-optimal methods of score against energy per task at N = n_test and as
   N → ∞ (where E_task = E_deploy).
3. For the most accurate method that meta-trains: what meta-training costs, and its
   break-even against from-scratch and transfer (status and 95% interval of the summary's
   breakeven_vs_<b>_* columns), then its energy per task against theirs.
4. Where the energy comes from, once: measured, partly or wholly estimated.

Rows that normalised transductively are never ranked against inductive rows: the ranking
uses the inductive rows and names the transductive ones apart. A suite with failed or
missing methods, or whose methods saw different episodes, says so before its lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from bench.report import fmt, marks
from bench.report.reading import BASELINES, breakeven, lower_better, pareto_front
from bench.report.styles import display_name

NOTHING_FINISHED = "no method finished"


@dataclass
class SuiteHeadline:
    suite: str
    caption: str  # "accuracy, 600 test tasks, 1 seed"
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the lines do not cover, and why

    def text(self) -> str:
        body = " ".join(self.lines)
        notes = " ".join(self.notes)
        return f"{self.suite} ({self.caption}): " + " ".join(x for x in (notes, body) if x)


def transductive(s: pd.DataFrame) -> pd.Series:
    """The summary's `transductive` flag as booleans."""
    return s["transductive"].fillna(False).astype(bool)


def all_transductive(summary: pd.DataFrame) -> bool:
    return bool(len(summary)) and bool(transductive(summary).all())


TRANSDUCTIVE_NOTE = (
    "Every row ran with transductive normalization (BatchNorm statistics of the whole query "
    "set, as in the MAML paper's protocol): a query's prediction depended on the other "
    "queries of its episode, so scores may be higher than one query at a time would get."
)


def _name(r: pd.Series) -> str:
    return display_name(str(r["method"]))


def _marked(r: pd.Series) -> str:
    """The method's name with its row's marks (⚠ foreign load, ‡ shared energy)."""
    return _name(r) + marks.row_marks(r)


def _score(r: pd.Series) -> str:
    """The score ± its pooled-episode 95% CI and, with two or more seeds, the seed-level
    one in parentheses: "97.7 ± 0.3% (± 6.2% over seeds)"."""
    lower = bool(r["lower_is_better"])
    text = fmt.score(r["score_mean"], r["score_ci95"], lower)
    seed_ci = r.get("score_seed_ci95")
    if r.get("n_seeds", 1) >= 2 and not fmt.is_missing(seed_ci):
        text += f" ({fmt.score_ci(r['score_mean'], seed_ci, lower)} over seeds)"
    return text


def _better(a: float, b: float, lower: bool) -> bool:
    return a < b if lower else a > b


def _list(names: list[str]) -> str:
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


# --------------------------------------------------------------------------- lines


def best_line(s: pd.DataFrame) -> str:
    """The best score and its method, against the baselines present."""
    lower = lower_better(s)
    ranked = s.sort_values("score_mean", ascending=lower)
    best = ranked.iloc[0]
    others = [
        f"{_marked(b)} {_score(b)}"
        for _, b in ranked.iterrows()
        if b["method"] in BASELINES and b["method"] != best["method"]
    ]
    text = f"Best: {_marked(best)} {_score(best)}"
    if others:
        text += " against " + _list(others)
    if best["method"] in BASELINES:
        meta = ranked[~ranked["method"].isin(BASELINES)]
        if len(meta):
            m = meta.iloc[0]
            text += f"; the best meta-learner, {_marked(m)}, {_score(m)}"
    return text + "."


def pareto_line(s: pd.DataFrame) -> str:
    """Pareto-optimal methods (score against energy per task) at n_test and as N → ∞."""
    lower = lower_better(s)
    n_test = int(s["n_test"].iloc[0])
    kind = "MSE" if lower else "accuracy"
    fronts = {}
    for label, col in ((f"N = {n_test:,}", "e_task_j_ntest"), ("N → ∞", "e_task_j_ninf")):
        front = pareto_front(s, col, lower)
        if len(front):
            fronts[label] = [_marked(r) for _, r in front.iterrows()]
    if not fronts:
        return ""
    parts = list(fronts.items())
    if len(parts) == 2 and parts[0][1] == parts[1][1]:
        return (
            f"Pareto-optimal for {kind} against energy per task, at {parts[0][0]} and as "
            f"N → ∞: {_list(parts[0][1])}."
        )
    clauses = [
        f"{'as' if '∞' in label else 'at'} {label}, {_list(names)}" for label, names in parts
    ]
    return f"Pareto-optimal for {kind} against energy per task: " + "; ".join(clauses) + "."


def _possessive(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


NO_INTERVAL = "no interval"  # the start of the note's reason for a missing interval


def short_note(note: str) -> str:
    """The break-even note without its numbers in parentheses, for prose, and without the
    reason for a missing interval (breakeven_line says it once): "scores equal within 95%
    CI (accuracy 0.75 vs 0.5, ...); no interval: ..." -> "scores equal within 95% CI"
    (tables keep the whole note as a tooltip)."""
    parts = [re.sub(r"\s*\(.*\)\s*$", "", p.strip()) for p in note.split("; ")]
    return "; ".join(p for p in parts if p and not p.startswith(NO_INTERVAL))


def _no_interval(notes: list[str]) -> str:
    """The first missing-interval reason among the notes ("" if none)."""
    for note in notes:
        for part in note.split("; "):
            if part.strip().startswith(NO_INTERVAL):
                return part.strip()
    return ""


def _n_clause(be) -> str:
    """N* in tasks with its interval (fmt.tasks), then the note's words."""
    open_end = "no limit" if be.status == "until" else "never"
    text = fmt.tasks(be.n, be.lo, be.hi, open_end)
    note = short_note(be.note)
    return text + (f" ({note})" if note else "")


def _other(r: pd.Series, b: pd.Series, be) -> str:
    """A clause for a status other than "after"."""
    base = display_name(str(b["method"]))
    mine, theirs = fmt.joules(r["e_deploy_j_per_task"]), fmt.joules(b["e_deploy_j_per_task"])
    note = f" ({short_note(be.note)})" if short_note(be.note) else ""
    if be.status == "until":
        return (
            f"it is cheaper than {base} only until {_n_clause(be)}, costing less up front "
            f"but {mine} per task against {theirs}"
        )
    if be.status == "from_first_task":
        return f"it costs less than {base} from the first task{note}"
    if be.status == "never":
        return f"it never pays back against {base}{note}: {mine} per task against {theirs}"
    if be.status == "less_accurate":  # the note would repeat the scores
        return f"it is less accurate than {base} ({_score(r)} against {_score(b)})"
    if be.status == "not_comparable":
        return f"it is not compared with {base} (different test episodes)"
    return f"against {base}: {be.text()}{note}"


def breakeven_line(s: pd.DataFrame) -> str:
    """What meta-training of the most accurate meta-learner costs, and when it pays back
    against each baseline (then its energy per task against theirs); a missing interval's
    reason once at the end."""
    lower = lower_better(s)
    meta = s[~s["method"].isin(BASELINES)].sort_values("score_mean", ascending=lower)
    if meta.empty or fmt.is_missing(meta.iloc[0]["e_meta_j"]):
        return ""
    r = meta.iloc[0]
    text = (
        f"{_possessive(_name(r))} meta-training costs {fmt.joules(r['e_meta_j'])} "
        f"({fmt.seconds(r['meta_train_s'])})"
    )
    after, others, costs, notes = [], [], [], []
    for b in BASELINES:
        rows = s[s["method"] == b]
        if rows.empty:
            continue
        be = breakeven(r, b)
        notes.append(be.note)
        if be.status == "after":
            after.append(f"against {display_name(b)} after {_n_clause(be)}")
            costs.append(fmt.joules(rows.iloc[0]["e_deploy_j_per_task"]))
        else:
            others.append(_other(r, rows.iloc[0], be))
    clauses = []
    if after:
        clauses.append(
            "it pays back "
            + " and ".join(after)
            + f", then costs {fmt.joules(r['e_deploy_j_per_task'])} per task against "
            + " and ".join(costs)
        )
    batch = r.get("e_deploy_batch_j_per_task")
    if not fmt.is_missing(batch) and batch != r["e_deploy_j_per_task"]:
        clauses.append(f"served in batches, {fmt.joules(batch)} per task")
    missing = _no_interval(notes)
    return "; ".join([text, *clauses, *others]) + (f" ({missing})" if missing else "") + "."


KIND_NAMES = {"gpu": "GPU", "cpu": "CPU", "dram": "DRAM"}


def _kinds(s: pd.DataFrame) -> tuple[list[str], list[str], set[str]]:
    """(measured kinds, estimated kinds, measuring sources) from the component columns."""
    measured, estimated, sources = [], [], set()
    for kind in KIND_NAMES:
        # a kind is present where some window metered it (0 J of a missing phase is not)
        present = any(
            f"e_{p}_{kind}_j{u}" in s and (s[f"e_{p}_{kind}_j{u}"].fillna(0) > 0).any()
            for p, u in (("meta", ""), ("deploy", "_per_task"))
        )
        if not present:
            continue
        flags = [s[c] for c in (f"estimated_meta_{kind}", f"estimated_deploy_{kind}") if c in s]
        is_est = bool(flags) and bool(pd.concat(flags).fillna(False).astype(bool).any())
        (estimated if is_est else measured).append(kind)
        if not is_est:
            for c in (f"source_meta_{kind}", f"source_deploy_{kind}"):
                sources |= set(s.get(c, pd.Series(dtype=object)).dropna()) - {"", "none"}
    return measured, estimated, sources


def _names(kinds: list[str]) -> str:
    return _list([KIND_NAMES[k] for k in kinds])


def estimated_share(s: pd.DataFrame) -> float:
    """Mean share of the joules that are estimated (NaN when not recorded)."""
    shares = [s[c] for c in ("measured_share_meta", "measured_share_deploy") if c in s]
    measured = pd.concat(shares).dropna() if shares else pd.Series(dtype=float)
    return 1.0 - float(measured.mean()) if len(measured) else float("nan")


def source_line(s: pd.DataFrame, scope: str) -> str:
    """Where the energy comes from, said once for the suite."""
    measured, estimated, sources = _kinds(s)
    if scope == "gpu":
        measured, estimated = (
            [k for k in measured if k == "gpu"],
            [k for k in estimated if k == "gpu"],
        )
    if not s["energy_measured"].astype(bool).any():
        if scope == "gpu" and not measured and not estimated:
            return (
                "No GPU was metered here: with --energy-scope gpu there is no energy to rank "
                "by (--energy-scope node sums CPU and DRAM too)."
            )
        return "Energy was not measured (time only): no method is ranked by energy."
    what = "Energy of the GPU only (--energy-scope gpu)" if scope == "gpu" else "Energy of the node"
    if not measured and not estimated:  # summaries without per-component columns
        how = "estimated (≈)" if s["estimated"].astype(bool).any() else "measured"
        return f"{what}: {how}."
    share = estimated_share(s)
    parts = []
    if measured:
        parts.append(f"{_names(measured)} measured ({', '.join(sorted(sources))})")
    if estimated:
        amount = (
            f", {fmt.sig(100 * share, 2)}% of the joules" if measured and share == share else ""
        )
        parts.append(f"{_names(estimated)} estimated by a model of power × time (≈{amount})")
    return f"{what}: " + "; ".join(parts) + "."


# --------------------------------------------------------------------------- suites


def suite_headline(
    suite: str,
    s: pd.DataFrame,
    scope: str = "node",
    not_compared: str = "",
    absent: list[str] | None = None,
    page_transductive: bool = False,
) -> SuiteHeadline:
    """The headline of one suite from its summary rows. `not_compared`: why its methods
    cannot be compared (different episodes), `absent`: lines naming methods that failed or
    never ran (see bench/report/coverage.py); `page_transductive`: every row of the page
    is transductive and the page says so once."""
    lower = lower_better(s)
    n_test = int(s["n_test"].iloc[0])
    seeds = int(s["n_seeds"].max())
    ci = "± 95% CI over episodes" + (" (over seeds, Student's t)" if seeds > 1 else "")
    caption = (
        f"{'MSE' if lower else 'accuracy'} {ci}, {n_test:,} test tasks, "
        f"{seeds} seed{'s' if seeds > 1 else ''}"
    )
    h = SuiteHeadline(suite, caption)
    h.notes += absent or []
    if not_compared:
        h.notes.append(f"Methods not compared: {not_compared}.")
        return h
    trans = transductive(s)
    ranked = s[~trans] if (~trans).any() else s
    if trans.all() and not page_transductive:
        h.notes.append(
            "All rows ran with transductive normalization (BatchNorm statistics of the "
            "whole query set), so they are ranked among themselves."
        )
    elif trans.any() and not trans.all():
        apart = ", ".join(f"{_marked(r)} {_score(r)}" for _, r in s[trans].iterrows())
        h.notes.append(f"Not ranked with the rest (transductive normalization): {apart}.")
    h.notes += _left_out(s)
    ranked = ranked[ranked["score_mean"].notna()]  # a diverged row has no score to rank
    if ranked.empty:
        return h
    h.lines.append(best_line(ranked))
    if ranked["energy_measured"].astype(bool).any():
        h.lines += [x for x in (pareto_line(ranked), breakeven_line(ranked)) if x]
    h.lines.append(source_line(ranked, scope))
    mixed = "normalization" in s and s["normalization"].nunique() > 1
    labels = [_name(r) + (f" ({r['normalization']})" if mixed else "") for _, r in s.iterrows()]
    h.lines += marks.legends(s.assign(label=labels))
    return h


def _left_out(s: pd.DataFrame) -> list[str]:
    """Notes on rows with no score (diverged) and on cells left out of a row (superseded
    by a later version of the suite file)."""
    out = []
    for _, r in s.iterrows():
        if fmt.is_missing(r["score_mean"]):
            why = r.get("score_note")
            why = why if isinstance(why, str) and why else "no finite score"
            out.append(f"{_name(r)} has no score ({why}): it is not ranked.")
        note = r.get("superseded_note")
        if isinstance(note, str) and note:
            out.append(f"{_name(r)}: {note}.")
    return out


def headline(
    summary: pd.DataFrame,
    conflicts: pd.DataFrame,
    absent: dict[str, list[str]] | None = None,
    scope: str = "node",
) -> list[SuiteHeadline]:
    """One SuiteHeadline per suite of the summary, sorted by suite; `absent` maps a suite
    to its lines about failed and missing methods (suites with none of their methods done
    get a headline of those lines alone)."""
    absent = absent or {}
    reasons = conflicts.groupby("suite")["reason"].apply("; ".join).to_dict()
    everywhere = all_transductive(summary)
    out = [
        suite_headline(suite, s, scope, reasons.get(suite, ""), absent.get(suite), everywhere)
        for suite, s in summary.groupby("suite", sort=True)
    ] if len(summary) else []  # fmt: skip
    for suite in sorted(set(absent) - {h.suite for h in out}):
        out.append(SuiteHeadline(suite, NOTHING_FINISHED, [], absent[suite]))
    # suites with results first: a reader looks for answers before for what is missing
    return sorted(out, key=lambda h: (h.caption == NOTHING_FINISHED, h.suite))
