"""The score statistics, defined once (docs/protocol.md, "Test protocol")."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def ci95(values: Sequence[float] | np.ndarray) -> float:
    """Half-width of the 95% confidence interval: 1.96 * std(ddof=1) / sqrt(n); NaN for n < 2."""
    v = np.asarray(values, dtype=float)
    return float(1.96 * v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
