"""95% intervals of E_meta, E_deploy and break-even N* by a two-stage bootstrap (printing
them: bench/report/fmt.py).

Resampling (Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 6 and the
percentile interval of ch. 13; the two-stage scheme for clustered data: Davison & Hinkley
1997, "Bootstrap Methods and their Application", section 3.8):

1. seeds: with n_seeds >= 2, draw n_seeds of the row's seeds with replacement (the
   spread over seeds: meta-training and initialisation differ per seed);
2. windows: within each drawn seed, draw its windows of a phase with replacement, keeping
   each window's (joules, items) pair, and take the per-item rate sum(J) / sum(items);
   items = repeats x tasks (a pure deploy pass repeated inside its window to outlast the
   meter's resolution). The deploy phase runs in chunks of tasks, each metered by an adapt
   and a predict window per scenario: a chunk's two windows are drawn together.

E_meta* = mean over drawn seeds of rate* x the seed's meta_train items (its total);
E_deploy* = sum over drawn seeds of adapt J* / adapt items* + the same for predict.
Replicates are drawn from a generator seeded from the row's cell keys, so a report is
deterministic and a row's interval does not depend on the other rows. The interval is the
2.5% and 97.5% percentiles of N_BOOT replicates ("inverted_cdf": order statistics, no
interpolation, so a replicate of +inf stays +inf).

What it covers: the window-to-window variability of the energy rate (machine noise,
counter resolution) and the seed-to-seed spread. What it does not: a load that shifts a
whole run (see foreign_load_flag), or bias of the meters. With few windows (the harness
meters deploy in at least 3 equal chunks per scenario, meta-training between checkpoints)
the percentile interval is narrow-biased by about sqrt((k - 1) / k); with a single window
and a single seed there is nothing to resample and that quantity's interval is NaN.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report.ledger import DEPLOY_PHASES

N_BOOT = 2000
LEVEL = 0.95
_BASE_SEED = 20261201


def generator(key: str) -> np.random.Generator:
    """A generator seeded from a stable hash of `key` (no global RNG state is read)."""
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    return np.random.default_rng([_BASE_SEED, digest])


def interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates; (NaN, NaN) when any is NaN."""
    r = np.asarray(replicates, dtype=float)
    if len(r) == 0 or np.isnan(r).any():
        return math.nan, math.nan
    tail = (1 - level) / 2
    lo, hi = np.quantile(r, [tail, 1 - tail], method="inverted_cdf")
    return float(lo), float(hi)


@dataclass(frozen=True)
class Replicates:
    """Bootstrap replicates [N_BOOT] of one summary row's E_meta (J) and E_deploy (J/task)
    of one deploy scenario. A quantity is informative unless it has a single seed with a
    single window in one of its phases (nothing to resample: its interval is NaN)."""

    e_meta_boot: np.ndarray
    e_deploy_boot: np.ndarray
    meta_informative: bool
    deploy_informative: bool

    @property
    def informative(self) -> bool:
        return self.meta_informative and self.deploy_informative


Windows = tuple[np.ndarray, np.ndarray]  # (joules, tasks) of one seed's windows of a phase


def _sums(w: Windows, idx: np.ndarray) -> Windows:
    """Resampled (sum J, sum tasks) [n_boot] for index draws idx [n_boot, k]."""
    j, n = w
    if len(j) == 0:
        return np.zeros(len(idx)), np.zeros(len(idx))
    return j[idx].sum(axis=1), n[idx].sum(axis=1)


def _draw(rng: np.random.Generator, k: int, n_boot: int) -> np.ndarray:
    return rng.integers(0, max(k, 1), size=(n_boot, k))


def _windows(w: pd.DataFrame, phase: str, seed: object) -> Windows:
    """One seed's windows of a phase in the order they ran (idx)."""
    mine = w[(w["phase"] == phase) & (w["seed"] == seed)].sort_values("idx")
    return mine["joules_j"].to_numpy(float), mine["items_done"].to_numpy(float)


def _single(per_seed: list[Windows]) -> bool:
    """A single seed whose phase has a single window: nothing to resample."""
    return len(per_seed) == 1 and len(per_seed[0][0]) == 1


def bootstrap_row(
    meta: pd.DataFrame, deploy: pd.DataFrame, seeds: list[int], key: str, n_boot: int = N_BOOT
) -> Replicates:
    """Two-stage bootstrap of one row of `seeds`: `meta` its meta_train windows, `deploy`
    its adapt and predict windows of one scenario (enriched windows: seed, phase, idx,
    joules_j, items_done = repeats x tasks; setup windows are neither); `key` seeds the
    generator. Within a seed, the k-th adapt and k-th predict window serve the same chunk
    of tasks: with as many of each they are drawn together (a load burst hits both), else
    each phase on its own. A phase without windows costs 0 J (no meta-training) or leaves
    E_deploy NaN (nothing to divide by)."""
    rng = generator(key)
    draw = (
        rng.integers(0, len(seeds), size=(n_boot, len(seeds)))
        if len(seeds) > 1
        else np.zeros((n_boot, 1), dtype=int)
    )
    cols = np.arange(n_boot)[:, None]
    metas = [_windows(meta, "meta_train", s) for s in seeds]
    adapts = [_windows(deploy, "adapt", s) for s in seeds]
    predicts = [_windows(deploy, "predict", s) for s in seeds]
    meta_j, meta_n, dep = [], [], {p: ([], []) for p in DEPLOY_PHASES}
    for m, a, p in zip(metas, adapts, predicts, strict=True):
        j, n = _sums(m, _draw(rng, len(m[0]), n_boot))
        meta_j.append(j)
        meta_n.append(n)
        paired = len(a[0]) == len(p[0])
        idx = _draw(rng, len(a[0]), n_boot)
        for phase, w in (("adapt", a), ("predict", p)):
            j, n = _sums(w, idx if paired else _draw(rng, len(w[0]), n_boot))
            dep[phase][0].append(j)
            dep[phase][1].append(n)

    j, n = np.stack(meta_j).T, np.stack(meta_n).T  # [n_boot, n_seeds]
    totals = np.array([float(nn.sum()) for _, nn in metas])
    with np.errstate(invalid="ignore", divide="ignore"):
        seed_meta = np.where(n > 0, j / n, 0.0) * totals  # each seed's resampled E_meta
    e_meta_boot = seed_meta[cols, draw].mean(axis=1)
    e_deploy_boot = np.zeros(n_boot)
    for phase in DEPLOY_PHASES:
        j, n = (np.stack(x).T for x in dep[phase])
        with np.errstate(invalid="ignore", divide="ignore"):
            e_deploy_boot = e_deploy_boot + j[cols, draw].sum(axis=1) / n[cols, draw].sum(axis=1)
    return Replicates(
        e_meta_boot,
        e_deploy_boot,
        meta_informative=not _single(metas),
        deploy_informative=not (_single(adapts) or _single(predicts)),
    )
