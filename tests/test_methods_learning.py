"""Learning, not just running: meta-learners beat the baselines and chance on smoke runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from bench.energy.base import TimeMeter
from bench.run.grid import Cell
from bench.run.harness import run_cell
from bench.suite import load_suite

SUITES = Path(__file__).resolve().parent.parent / "suites"


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these runs check learning, not speed, and on a shared 2-core
    machine OpenMP's spinning thread pool makes small kernels many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def score(suite, method: str, data_root: Path) -> float:
    return run_cell(Cell(suite, method, suite.seeds[0], "cpu"), TimeMeter(), data_root).score_mean


def test_maml_beats_scratch_on_sinusoid_smoke(data_root: Path) -> None:
    suite = load_suite(SUITES / "sinusoid-5shot.toml", "smoke")
    maml, scratch = score(suite, "maml", data_root), score(suite, "scratch", data_root)
    # Same episodes (same fingerprint); MSE, lower is better.
    assert maml < 0.6 * scratch, (maml, scratch)


@pytest.mark.parametrize(
    "method", ["maml", "fomaml", "reptile", "anil", "metasgd", "learned_opt", "transfer"]
)
def test_meta_learners_beat_chance_on_omniglot_smoke(method: str, data_root: Path) -> None:
    suite = load_suite(SUITES / "omniglot-5w1s.toml", "smoke")
    # Fewer test and validation episodes than the smoke profile keeps this test quick.
    suite = dataclasses.replace(suite, n_test_episodes=20, n_val_episodes=4, n_checkpoints=1)
    accuracy = score(suite, method, data_root)
    assert accuracy > 0.35, f"{method}: accuracy {accuracy:.3f} vs chance 0.20"
