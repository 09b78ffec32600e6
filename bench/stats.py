"""The score statistics, defined once (docs/protocol.md, "Test protocol" and "Metrics")."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def ci95(values: Sequence[float] | np.ndarray) -> float:
    """Half-width of the 95% confidence interval of a mean over episodes (normal
    approximation): 1.96 * std(ddof=1) / sqrt(n); NaN for n < 2."""
    v = np.asarray(values, dtype=float)
    return float(1.96 * v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")


def t_ci95(values: Sequence[float] | np.ndarray) -> float:
    """Half-width of the 95% confidence interval of a mean of few values, e.g. the seed
    means of one method (Student 1908, "The probable error of a mean"):
    t(0.975, n - 1) * std(ddof=1) / sqrt(n); NaN for n < 2.

    Seeds are the independent replicates of meta-training, so with n seeds this interval,
    not the pooled-episode ci95, is the one for "how much would another seed move it".
    Example: seed means 0.95, 0.70, 0.45 -> 4.303 * 0.25 / sqrt(3) = 0.621."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def paired_difference(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """Mean of a - b over paired observations (the same test episodes scored by two
    methods) and the half-width of its 95% CI, ci95 of the differences. Pairing removes
    the episodes' shared difficulty from the comparison, so it is tighter than comparing
    two separate CIs (whose overlap is a test at about the 0.5% level, not 5%: Schenker &
    Gentleman 2001, The American Statistician 55(3)). Raises ValueError unless a and b
    have one value each per observation (equal lengths)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"paired_difference: expected two equal-length 1-D arrays, got {a.shape} and {b.shape}"
        )
    d = a - b
    return float(d.mean()), ci95(d)
