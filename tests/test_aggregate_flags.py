"""Per-row flags a reader must see (review of issues 12/14, items 2 and 8): foreign CPU
load, time-weighted over the windows long enough to resolve it; and whose CPU and DRAM
energy a row's figures are (own, this process's attributed share, or a shared package's)."""

from __future__ import annotations

import math

import pytest
from ledger_factory import CellSpec, Win, cpu, write_ledger

from bench.report import energy
from bench.report.aggregate import summary_table
from bench.report.writer import load_tables

PROCESS = "estimate:codecarbon-process"
HOST = {"cpu:all": PROCESS, "dram:all": PROCESS}


def _summary(tmp_path, specs: list[CellSpec]):
    return summary_table(load_tables(write_ledger(tmp_path / "run", specs))).set_index("method")


def _load(seconds: float, load: float | None) -> Win:
    details = {} if load is None else {"foreign_cpu_load": load, "process_cpu_share": 0.4}
    return Win("adapt", 2, seconds, cpu(2.0), details=details)


def _cell(method: str, windows: list[Win], **kw) -> CellSpec:
    return CellSpec("toy", method, [0.5, 0.5], [*windows, Win("predict", 2, 1.0, cpu(1.0))], **kw)


def test_foreign_load_is_time_weighted_and_ignores_unresolvable_windows(tmp_path):
    specs = [
        # 9 s at 5% and 1 s at 95%: 14% time-weighted (the plain mean, 50%, would flag it
        # for one second); the 5 ms window reading 1.0 is one CPU-clock tick, left out
        _cell("a", [_load(9.0, 0.05), _load(1.0, 0.95), _load(0.005, 1.0)]),
        # a loaded machine throughout
        _cell("b", [_load(2.0, 0.5), _load(2.0, 0.3)]),
        # only ticks: nothing resolvable, like a window without a reading
        _cell("c", [_load(0.005, 1.0), _load(1.0, None)]),
        _cell("d", [_load(3.0, 0.02)]),
    ]
    s = _summary(tmp_path, specs)
    assert s.loc["a", "foreign_load"] == pytest.approx((9 * 0.05 + 0.95) / 10)
    assert s.loc["a", "foreign_load_max"] == pytest.approx(0.95)
    assert s.loc["a", "foreign_load_flag"]  # 0.14 > FOREIGN_LOAD_THRESHOLD
    assert s.loc["a", "foreign_load_note"] == (
        "other processes used 14% of the machine's CPU while these cells ran (time-weighted; "
        "up to 95% in one window): contention may have inflated its time and energy"
    )
    assert s.loc["b", "foreign_load"] == pytest.approx(0.4) and s.loc["b", "foreign_load_flag"]
    c = s.loc["c"]
    assert math.isnan(c["foreign_load"]) and math.isnan(c["foreign_load_max"])
    assert not c["foreign_load_flag"] and c["foreign_load_note"] == ""
    assert not s.loc["d", "foreign_load_flag"] and s.loc["d", "foreign_load_note"] == ""
    assert energy.LOAD_MIN_WINDOW_S == 0.2 and energy.FOREIGN_LOAD_THRESHOLD == 0.1


def _host_cell(method: str, source: dict, exclusive: int, details: dict | None = None):
    joules = {"cpu:all": 2.0, "dram:all": 1.0}
    if "cpu:0" in source:
        joules = {"cpu:0": 2.0, "dram:0": 1.0}
    windows = [
        Win(p, 2, 1.0, joules, source=source, details=details or {}) for p in ("adapt", "predict")
    ]
    return CellSpec("toy", method, [0.5, 0.5], windows, exclusive_energy=exclusive)


def test_the_reason_says_whose_energy_a_shared_cell_was_billed(tmp_path):
    rapl = {"cpu:0": "rapl", "dram:0": "rapl"}
    split = {"attribution": {"cpu:0": "process-cpu-time", "dram:0": "process-cpu-time"}}
    specs = [
        # dask-local with process-attributed estimates: this process's share, not shared
        _host_cell("process", HOST, 0),
        # a RAPL package split by CPU time among the cells: attributed
        _host_cell("split", rapl, 0, split),
        # concurrent, RAPL unsplit: the package's whole energy, once per cell
        _host_cell("whole", rapl, 0),
        # an old machine-wide estimate, concurrent: shared too
        _host_cell(
            "machine", {"cpu:all": "estimate:codecarbon", "dram:all": "estimate:codecarbon"}, 0
        ),
        # alone on its package
        _host_cell("alone", rapl, 1),
    ]
    s = _summary(tmp_path, specs)
    assert s.loc["process", "energy_sharing"] == "attributed"
    assert not s.loc["process", "shared_energy"]
    assert "package's" not in s.loc["process", "shared_energy_reason"]
    assert s.loc["process", "shared_energy_reason"] == (
        "ran on an executor whose concurrent cells share the CPU package; its CPU and "
        "DRAM figures are this "
        f"process's share: estimated for this process's CPU time and memory ({PROCESS})"
    )
    assert s.loc["split", "energy_sharing"] == "attributed" and not s.loc["split", "shared_energy"]
    assert (
        "split among the processes by CPU time (process-cpu-time)"
        in (s.loc["split", "shared_energy_reason"])
    )
    for m, src in (("whole", "rapl"), ("machine", "estimate:codecarbon")):
        assert s.loc[m, "energy_sharing"] == "shared" and s.loc[m, "shared_energy"]
        assert s.loc[m, "shared_energy_reason"] == (
            "ran on an executor whose concurrent cells share the CPU package, without "
            "attribution: its CPU and "
            f"DRAM figures ({src}) are the whole package's, counted once per concurrent cell"
        )
    assert s.loc["alone", "energy_sharing"] == "own"
    assert s.loc["alone", "shared_energy_reason"] == ""
