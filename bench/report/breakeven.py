"""Break-even of a method A against a baseline B when both may pay a one-off cost, gated by
accuracy, with a bootstrap interval.

A's energy over N tasks is E_meta_A + N E_deploy_A (B likewise). With dm = E_meta_A -
E_meta_B and ds = E_deploy_B - E_deploy_A (A's saving per task):
- from_first_task: dm <= 0 and ds >= 0 (A no dearer up front nor per task);
- never: dm >= 0 and ds <= 0, not both 0 (A dearer in both, or equal in one);
- after: dm > 0 and ds > 0, N* = dm / ds (A cheaper for every N > N*);
- until: dm < 0 and ds < 0, N* = dm / ds (A cheaper for every N < N*).
N* is reported only where A's score is at least B's (MSE: at most), equal within the 95%
CI of their paired difference counting as equal; elsewhere the status is less_accurate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report.uncertainty import Replicates, interval
from bench.stats import ci95, paired_difference, t_ci95

STATUSES = (
    "after",
    "from_first_task",
    "never",
    "until",
    "less_accurate",
    "diverged",
    "baseline",
    "no_baseline",
    "not_measured",
    "not_comparable",
)
# A status of the point estimate that fewer than this share of bootstrap replicates share
# is called out in the note.
AGREEMENT = 0.95


def classify(dm: np.ndarray | float, ds: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """(status, N*) per pair of (E_meta_A - E_meta_B, E_deploy_B - E_deploy_A); N* is NaN
    unless the status is after or until. Works on arrays (bootstrap replicates)."""
    dm, ds = np.atleast_1d(np.asarray(dm, float)), np.atleast_1d(np.asarray(ds, float))
    status = np.select(
        [(dm <= 0) & (ds >= 0), (dm >= 0) & (ds <= 0), (dm > 0) & (ds > 0), (dm < 0) & (ds < 0)],
        ["from_first_task", "never", "after", "until"],
        default="not_measured",  # a NaN input
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.where(np.isin(status, ["after", "until"]), dm / ds, np.nan)
    return status, n


def break_even(
    e_meta: float, e_deploy: float, e_meta_base: float, e_deploy_base: float
) -> tuple[str, float]:
    """(status, N*) of A (e_meta J, e_deploy J/task) against baseline B (see module)."""
    status, n = classify(e_meta - e_meta_base, e_deploy_base - e_deploy)
    return str(status[0]), float(n[0])


def _crossing(status: np.ndarray, n: np.ndarray, point_status: str) -> np.ndarray:
    """Replicates mapped onto the point status's axis, so that percentiles make sense:
    for "after", the N from which A stays cheaper (from_first_task 0; never and until +inf);
    for "until", the N up to which A is cheaper (from_first_task +inf; never and after 0)."""
    if point_status == "after":
        fill = {"from_first_task": 0.0, "never": math.inf, "until": math.inf}
    else:
        fill = {"from_first_task": math.inf, "never": 0.0, "after": 0.0}
    out = n.copy()
    for s, value in fill.items():
        out[status == s] = value
    out[status == "not_measured"] = np.nan
    return out


@dataclass(frozen=True)
class Gate:
    ok: bool
    note: str


def accuracy_gate(
    a: pd.Series, b: pd.Series, lower_better: bool, base: str, score_name: str
) -> Gate:
    """Is A at least as accurate as baseline B? `a`, `b`: episode scores indexed by
    (seed, [episode-set fingerprint,] episode index), one score per index value. Paired
    over the episodes both scored, matched on the whole index, so only the same episode of
    the same episode set pairs (the protocol gives every method the same episodes): with
    two or more common seeds, Student's t over the seeds' mean differences (seeds are the
    independent replicates); with one, the pooled-episode CI of the differences. Without
    common episodes, the difference of the two means with the two pooled CIs combined in
    quadrature. Raises ValueError when an index value repeats (two cells of one seed)."""
    for name, s in (("A", a), (base, b)):
        if not s.index.is_unique:
            raise ValueError(f"accuracy_gate: {name}'s episode scores repeat an index value")
    common = a.index.intersection(b.index)
    seeds = common.get_level_values(0).unique() if len(common) else []
    if len(seeds) > 1:
        d = (a.loc[common] - b.loc[common]).groupby(level=0).mean()
        diff, half, over = float(d.mean()), t_ci95(d), f"95% CI over {len(seeds)} seeds"
    elif len(common):
        (diff, half), over = paired_difference(a.loc[common], b.loc[common]), "95% CI"
    else:
        diff, half, over = float(a.mean() - b.mean()), math.hypot(ci95(a), ci95(b)), "95% CI"
    better = -diff if lower_better else diff
    text = f"{score_name} {a.mean():.4g} vs {base} {b.mean():.4g}, difference {diff:+.3g}"
    if not math.isnan(half):
        text += f" ± {half:.2g} ({over})"
    if math.isnan(half):
        return Gate(better >= 0, "" if better >= 0 else f"less accurate: {text}")
    if better < -half:
        return Gate(False, f"less accurate: {text}")
    if better <= half:
        return Gate(True, f"scores equal within 95% CI ({text})")
    return Gate(True, "")


def against(
    e: tuple[float, float], e_base: tuple[float, float], reps: Replicates, reps_base: Replicates
) -> dict[str, object]:
    """The status, N*, its 95% interval and a note, for energies e = (E_meta, E_deploy)."""
    status, n = break_even(*e, *e_base)
    out: dict[str, object] = {"status": status, "n": n, "lo": math.nan, "hi": math.nan}
    notes = []
    if status == "not_measured":
        return out | {"note": "energy not measured"}
    if not (reps.informative and reps_base.informative):
        notes.append("no interval: a phase has a single window and a single seed")
    else:
        boot_status, boot_n = classify(
            reps.e_meta_boot - reps_base.e_meta_boot, reps_base.e_deploy_boot - reps.e_deploy_boot
        )
        share = float(np.mean(boot_status == status))
        if status in ("after", "until"):
            out["lo"], out["hi"] = interval(_crossing(boot_status, boot_n, status))
        if share < AGREEMENT:
            notes.append(f"status holds in {share:.0%} of bootstrap resamples")
    if status == "after" and n < 1:
        notes.append("N* < 1: cheaper from the first task on")
    if status == "until" and n < 1:
        notes.append("N* < 1: dearer from the first task on")
    return out | {"note": "; ".join(notes)}
