"""95% intervals of E_meta, E_deploy and break-even N* by a two-stage bootstrap (printing
them: bench/report/fmt.py).

Resampling (Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 6 and the
percentile interval of ch. 13; the two-stage scheme for clustered data: Davison & Hinkley
1997, "Bootstrap Methods and their Application", section 3.8):

1. seeds: with n_seeds >= 2, draw n_seeds of the row's seeds with replacement (the
   spread over seeds: meta-training and initialisation differ per seed);
2. windows: within each drawn seed, draw its windows of a phase with replacement, keeping
   each window's (joules, items) pair, and take the per-item rate sum(J) / sum(items).

E_meta* = mean over drawn seeds of rate* x the seed's meta_train items (its total);
E_deploy* = sum over drawn seeds of adapt J* / adapt items* + the same for predict.
Replicates are drawn from a generator seeded from the row's cell keys, so a report is
deterministic and a row's interval does not depend on the other rows. The interval is the
2.5% and 97.5% percentiles of N_BOOT replicates ("inverted_cdf": order statistics, no
interpolation, so a replicate of +inf stays +inf).

What it covers: the window-to-window variability of the energy rate (machine noise,
counter resolution) and the seed-to-seed spread. What it does not: a load that shifts a
whole run (see foreign_load_flag), or bias of the meters. With few windows (the harness
meters deploy in chunks of >= 32 tasks, meta-training between checkpoints) the percentile
interval is narrow-biased by about sqrt((k - 1) / k); with a single window and a single
seed there is nothing to resample and the interval is NaN.
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
    """Bootstrap replicates [N_BOOT] of one summary row's E_meta (J) and E_deploy (J/task)."""

    e_meta_boot: np.ndarray
    e_deploy_boot: np.ndarray
    informative: bool  # False: a single seed with a single window in some phase


def _within_seed(j: np.ndarray, n: np.ndarray, rng: np.random.Generator, n_boot: int):
    """Resampled (sum J, sum items) [n_boot] of one seed's windows of one phase."""
    k = len(j)
    if k == 0:
        return np.zeros(n_boot), np.zeros(n_boot)
    idx = rng.integers(0, k, size=(n_boot, k))
    return j[idx].sum(axis=1), n[idx].sum(axis=1)


def _phase(windows: pd.DataFrame, phase: str, seeds: list) -> list[tuple[np.ndarray, np.ndarray]]:
    w = windows[windows["phase"] == phase]
    return [
        (
            w.loc[w["seed"] == s, "joules_j"].to_numpy(float),
            w.loc[w["seed"] == s, "items_done"].to_numpy(float),
        )
        for s in seeds
    ]


def bootstrap_row(
    meta: pd.DataFrame, deploy: pd.DataFrame, seeds: list[int], key: str, n_boot: int = N_BOOT
) -> Replicates:
    """Two-stage bootstrap of one row of `seeds`: `meta` its meta_train windows, `deploy`
    its adapt and predict windows of the break-even scenario (enriched windows: seed,
    phase, joules_j, items_done); `key` seeds the generator. A phase without windows costs
    0 J (no meta-training) or leaves E_deploy NaN (nothing to divide by)."""
    rng = generator(key)
    draw = (
        rng.integers(0, len(seeds), size=(n_boot, len(seeds)))
        if len(seeds) > 1
        else np.zeros((n_boot, 1), dtype=int)
    )
    cols = np.arange(n_boot)[:, None]
    phases = {"meta": _phase(meta, "meta_train", seeds)}
    phases |= {p: _phase(deploy, p, seeds) for p in DEPLOY_PHASES}
    informative = len(seeds) > 1 or all(len(j) != 1 for v in phases.values() for j, _ in v)
    stacked = {}
    for name, per_seed in phases.items():
        res = [_within_seed(j, n, rng, n_boot) for j, n in per_seed]
        stacked[name] = (np.stack([r[0] for r in res]).T, np.stack([r[1] for r in res]).T)

    j, n = stacked["meta"]  # [n_boot, n_seeds]
    totals = np.array([float(nn.sum()) for _, nn in phases["meta"]])
    with np.errstate(invalid="ignore", divide="ignore"):
        seed_meta = np.where(n > 0, j / n, 0.0) * totals  # each seed's resampled E_meta
    e_meta_boot = seed_meta[cols, draw].mean(axis=1)
    e_deploy_boot = np.zeros(n_boot)
    for p in DEPLOY_PHASES:
        j, n = stacked[p]
        with np.errstate(invalid="ignore", divide="ignore"):
            e_deploy_boot = e_deploy_boot + j[cols, draw].sum(axis=1) / n[cols, draw].sum(axis=1)
    return Replicates(e_meta_boot, e_deploy_boot, informative)
