"""scripts/gpu_check.sh and benchmarks/nvml_agreement.py, rehearsed without a GPU.

- The agreement arithmetic against the fake pynvml: on a constant power curve the counter
  and the integrated instant / average power agree within 0.5% per window; on a curve the
  power readings only partly cover, the disagreement shows up with its sign.
- The script with --fake-nvml: the quick steps (wheels, meters, NVML agreement, headline)
  in the default test run; the default steps (deploy_batch, maml_step and the smoke
  comparison too) are `slow`: they take minutes on a shared 2-core CPU.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from energy_fakes import FakeClock, FakeGpu, install, torch_props

from bench.energy.composite import CompositeMeter
from bench.energy.nvml import NvmlSource
from bench.store import SCHEMA
from benchmarks import nvml_agreement as agree

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "gpu_check.sh"
UUID = "GPU-0000abcd-aaaa-bbbb-cccc-000000000001"
TICK_S = 0.05


def fake_meter(monkeypatch, power, energy):
    clock = FakeClock(12.5)
    gpu = FakeGpu(UUID, "00000000:3B:00.0", power, energy)
    install(monkeypatch, clock, [gpu], {0: torch_props(UUID, 0x3B)})
    return CompositeMeter([NvmlSource("cuda:0")], sample_hz=0, clock=clock), clock


def drive(meter: CompositeMeter, clock: FakeClock):
    """sleep and load functions that advance the fake clock with sampler ticks at 20 Hz."""

    def sleep(seconds: float) -> None:
        for _ in range(round(seconds / TICK_S)):
            clock.advance(TICK_S)
            meter.sample()

    def load_factory(device, size):
        def run(until_s: float) -> int:
            n = 0
            while clock() < until_s - 1e-9:
                clock.advance(TICK_S)
                meter.sample()
                n += 1
            return n

        return run

    return sleep, load_factory


def run_check(meter, clock, **kw):
    sleep, load_factory = drive(meter, clock)
    args = dict(idle_s=2.0, warmup_s=0.5, windows=4, window_s=5.0, size=8)
    args.update(kw)
    return agree.check(
        meter,
        torch.device("cpu"),
        sleep=sleep,
        load_factory=load_factory,
        log=lambda s: None,
        **args,
    )


def test_constant_power_counter_and_integrals_agree(monkeypatch):
    meter, clock = fake_meter(monkeypatch, lambda t: 300.0, lambda t: 300.0 * t)
    rows = run_check(meter, clock)
    assert [(r.phase, r.window) for r in rows] == [("idle", 0)] + [("load", i) for i in range(4)]
    for r in rows:
        assert r.counter_j == pytest.approx(300.0 * r.seconds, rel=1e-3)
        assert r.counter_w == pytest.approx(300.0, rel=1e-3)
        for j, d in (
            (r.instant_j, r.disagreement_instant),
            (r.average_j, r.disagreement_average),
            (r.meter_integrated_j, r.disagreement_meter),
        ):
            assert j == pytest.approx(r.counter_j, rel=0.005)
            assert abs(d) < 0.005
        assert r.n_instant >= round(r.seconds / TICK_S)
        assert r.temperature_c is not None and r.sm_clock_mhz == 1410


def test_power_that_misses_spikes_reads_low(monkeypatch):
    """Power sampled on the tick misses a spike between ticks that the counter sees: the
    integrated figures read low and the disagreement is negative (the A100/H100 case)."""

    def power(t: float) -> float:  # 200 W, readings never see the spikes
        return 200.0

    def energy(t: float) -> float:  # plus 10% more energy in short spikes
        return 220.0 * t

    meter, clock = fake_meter(monkeypatch, power, energy)
    rows = run_check(meter, clock, idle_s=0, windows=2)
    for r in rows:
        assert r.disagreement_instant == pytest.approx(200 / 220 - 1, abs=0.005)
        assert r.disagreement_average == pytest.approx(200 / 220 - 1, abs=0.005)


def test_integrate_clips_to_window_and_keeps_end_edge():
    from bench.energy.composite import TraceSample

    samples = [TraceSample(t, "gpu:0", "instant", 100.0) for t in (0.9, 1.0, 1.5, 2.0, 2.01)]
    j, n = agree.integrate(samples, "instant", 1.0, 2.0, end_slack_s=0.02)
    assert n == 4 and j == pytest.approx(101.0)
    assert agree.integrate(samples, "average", 1.0, 2.0) == (None, 0)


def test_csv_and_summary(monkeypatch, tmp_path):
    meter, clock = fake_meter(monkeypatch, lambda t: 250.0, lambda t: 250.0 * t)
    rows = run_check(meter, clock, windows=2)
    out = tmp_path / "a.csv"
    agree.write_csv(rows, out)
    read = list(csv.DictReader(out.open()))
    assert len(read) == 3 and read[0]["phase"] == "idle" and "disagreement_instant" in read[0]
    text = agree.summary(rows)
    assert "disagreement_instant: mean" in text and "idle power by the counter" in text


def script(
    tmp_path: Path, *args: str, timeout: int, data: Path | None = None
) -> subprocess.CompletedProcess:
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("needs bash and coreutils timeout")
    env = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path)}
    if data is not None:  # the Omniglot suites read it (no download)
        env["METABENCH_DATA"] = str(data)
    env.pop("OUT", None)
    return subprocess.run(
        ["bash", str(SCRIPT), "--fake-nvml", "--out", str(tmp_path / "out"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )


def test_gpu_check_fake_quick_steps(tmp_path):
    """The wheel, inventory and NVML-agreement path of the script, end to end (~30 s)."""
    p = script(tmp_path, "--steps", "env,meters,smi,agreement,summary", timeout=120)
    out = tmp_path / "out"
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "gpu_check.sh: all steps ok" in p.stdout
    assert sorted(f.name for f in out.iterdir()) == [
        "gpu_check.log",
        "nvml_agreement.csv",
        "steps.tsv",
    ]
    rows = list(csv.DictReader((out / "nvml_agreement.csv").open()))
    assert [r["phase"] for r in rows] == ["idle", "load", "load", "load"]
    assert all(abs(float(r["disagreement_instant"])) < 0.005 for r in rows)
    assert "[smi] skipped: --fake-nvml" in (out / "gpu_check.log").read_text()


@pytest.mark.slow
def test_gpu_check_fake_all_steps(tmp_path, data_root):
    """The default steps but maml_step, the smoke comparison on CPU included (minutes on a
    shared CPU)."""
    # maml_step (second order, meta batch 32) needs minutes on a shared CPU: left out
    steps = "install,env,meters,smi,batch,run,report,summary"
    p = script(tmp_path, "--steps", steps, timeout=900, data=data_root)
    out = tmp_path / "out"
    files = sorted(f.name for f in out.iterdir())
    assert len(files) <= 8 and all(f.is_file() for f in out.iterdir())
    assert {"gpu_check.log", "steps.tsv", "report.tar.gz", "summary.md"} <= set(files), p.stdout[
        -3000:
    ]
    log = (out / "gpu_check.log").read_text()
    assert f"run: suites omniglot-5w1s sinusoid-5shot; methods {NINE}" in log
    assert "cells done: 17 of 17" in log
    assert "ops_ratio_min=" in log  # deploy_batch ran
    assert "run_wall_s=" in log and ", 0 failed" in log
    assert p.returncode == 0, p.stdout[-3000:]


# -- preflight and summary (scripts/gpu_check.py) ----------------------------------------

HELPER = REPO / "scripts" / "gpu_check.py"
COLUMNS = [
    "suite",
    "method",
    "execution",
    "e_deploy_stream_j_per_task",
    "e_deploy_batch_j_per_task",
    "deploy_stream_s_per_task",
    "deploy_batch_s_per_task",
]
SUITES, METHODS = ["omniglot-5w1s", "sinusoid-5shot"], ["protonet", "scratch", "maml"]
# The planned cells: sinusoid-5shot's table has no ProtoNet (regression).
PAIRS = [(s, m) for s in SUITES for m in METHODS if (s, m) != ("sinusoid-5shot", "protonet")]


def helper_module():
    spec = importlib.util.spec_from_file_location("gpu_check_helper", HELPER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_run(run: Path, ratios: dict[tuple[str, str], float], done: int) -> Path:
    """A run folder: summary.csv with stream J/task 1.0 and batch 1 / ratio per (suite,
    method), latencies 0.1 / 0.01 s, and a ledger whose first `done` cells are done."""
    run.mkdir(parents=True)
    with (run / "summary.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for (suite, method), ratio in ratios.items():
            w.writerow(dict(zip(COLUMNS, [suite, method, "batched", 1.0, 1 / ratio, 0.1, 0.01])))
    con = sqlite3.connect(run / "ledger.sqlite")
    con.executescript(SCHEMA)
    for i, (suite, method) in enumerate(ratios):
        status = "done" if i < done else "failed"
        con.execute(
            "INSERT INTO cells (cell_key, suite, method, seed, status) VALUES (?, ?, ?, 0, ?)",
            (f"k{i}", suite, method, status),
        )
    con.commit()
    con.close()
    return run


LOG = """===== [run] ...
run: wall time of the comparison (suites: a b; target <= 120 s on an H200):
run_wall_s=97
ops_ratio_min=40.0 meta_ops_growth_max=1.01 speed_ratio_min=3.00 graph_diff_max=0 rows=1
scratch 1.0 2.0 (not a key=value line)
ops_ratio_min=28.7 meta_ops_growth_max=1.08 speed_ratio_min=2.10 graph_diff_max=0 rows=6
ratio=1.01 ratio_batched=2.10 efficiency=0.30
"""


def summarise(run: Path, log: str, tmp_path: Path) -> list[str]:
    (tmp_path / "gpu_check.log").write_text(log)
    p = subprocess.run(
        [sys.executable, str(HELPER), "summary", "--run", str(run), "--log",
         str(tmp_path / "gpu_check.log"), "--suites", ",".join(SUITES), "--methods",
         ",".join(METHODS), "--seeds", "0"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def test_summary_prints_deploy_per_task_and_a_verdict_per_target(tmp_path):
    ratios = dict.fromkeys(PAIRS, 20.0)
    ratios["sinusoid-5shot", "scratch"] = 6.0
    ratios["omniglot-5w1s", "protonet"] = 2.0  # not a 10x method: shown, not judged
    lines = summarise(fake_run(tmp_path / "run", ratios, done=4), LOG, tmp_path)
    rows = [line.split() for line in lines if line.startswith(tuple(SUITES))]
    assert [(r[0], r[1]) for r in rows] == PAIRS
    scratch = rows[PAIRS.index(("sinusoid-5shot", "scratch"))]
    assert scratch[3:8] == ["1", "0.167", "6.0", "0.1", "0.01"]
    assert "cells done: 4 of 5; run wall time: 97 s" in lines
    verdicts = [line for line in lines if line.startswith(("PASS", "FAIL"))]
    assert verdicts == [
        "FAIL  run: 5 cells within 120 s: 4 of 5 cells done, run_wall_s=97",
        "FAIL  batch J/task >= 10x below stream (scratch, transfer, MAML family): "
        "1 of 4 below 10x: scratch on sinusoid-5shot 6.0x",
        "PASS  maml_step ratio_batched >= 1.5: ratio_batched=2.10",
        "PASS  deploy_batch ops_ratio_min >= 10: ops_ratio_min=28.7",
        "PASS  graph replay vs eager: graph_diff_max <= 1e-06: graph_diff_max=0",
    ]
    assert lines[-1] == "targets_passed=3 targets=5 cells_done=4 cells_planned=5 run_wall_s=97"


def test_summary_all_targets_met(tmp_path):
    ratios = dict.fromkeys(PAIRS, 12.0)
    lines = summarise(fake_run(tmp_path / "run", ratios, done=5), LOG, tmp_path)
    assert "PASS  run: 5 cells within 120 s: 5 of 5 cells done, run_wall_s=97" in lines
    assert any(line.endswith("all 4 at least 10x (smallest 12.0x)") for line in lines)
    assert lines[-1] == "targets_passed=5 targets=5 cells_done=5 cells_planned=5 run_wall_s=97"


def test_summary_of_a_call_that_measured_nothing(tmp_path):
    lines = summarise(tmp_path / "no-run", "===== [run] failed\n", tmp_path)
    assert f"  no summary.csv rows in {tmp_path / 'no-run'}" in lines
    assert "FAIL  maml_step ratio_batched >= 1.5: not measured in this call" in lines
    assert "FAIL  batch J/task >= 10x below stream (scratch, transfer, MAML family): " in "\n".join(
        lines
    )
    assert lines[-1] == "targets_passed=0 targets=5 cells_done=0 cells_planned=5 run_wall_s=nan"


def test_preflight_names_missing_and_out_of_range_dependencies(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\ndependencies = ["numpy>=1.0", "surely-not-installed-dist>=1", '
        '"torch<1.0", "tomli>=2.0; python_version < \'3.0\'"]\n'
    )
    problems = helper_module().dependency_problems(pyproject)
    assert problems[0] == "surely-not-installed-dist: not installed"
    assert problems[1].startswith(f"torch: version {torch.__version__}, needs <1.0")
    assert len(problems) == 2  # numpy is fine; tomli's marker does not apply


NINE = "protonet,scratch,maml,fomaml,reptile,anil,metasgd,learned_opt,transfer"


def test_plan_keeps_every_method_the_suites_have():
    """All nine methods on the Omniglot and sinusoid suites (the first method of a table
    was once lost to a parse of `metabench list`); unknown names are skipped, with a
    message each."""
    p = subprocess.run(
        [sys.executable, str(HELPER), "plan", "--suites", "omniglot-5w1s,no-such-suite,"
         "sinusoid-5shot", "--methods", f"{NINE},no-such-method", "--profile", "smoke"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[-2:] == ["suites=omniglot-5w1s sinusoid-5shot", f"methods={NINE}"]
    assert any(x.startswith("run: suite no-such-suite is not in this checkout") for x in lines)
    assert "run: method no-such-method is not registered in this checkout: skipped" in lines


def test_gpu_check_stops_at_preflight_without_data(tmp_path):
    """No Omniglot under the data root: exit 2 after the preflight, before the run."""
    empty = tmp_path / "empty-data"
    empty.mkdir()
    p = script(tmp_path, "--steps", "env,run,summary", timeout=120, data=empty)
    assert p.returncode == 2, p.stdout[-3000:]
    assert "preflight: dataset 'omniglot'" in p.stdout
    assert "stopped before the steps that take minutes" in p.stdout
    steps = (tmp_path / "out" / "steps.tsv").read_text()
    assert "preflight\tfailed" in steps and "\nrun\t" not in steps


def test_gpu_check_summary_step_reads_the_run_folder(tmp_path):
    """The script's summary step on a run folder left by an earlier call (fake NVML: the
    smoke profile's run folder: 9 omniglot-5w1s and 8 sinusoid-5shot cells planned)."""
    ratios = dict.fromkeys(PAIRS, 15.0)
    fake_run(tmp_path / "gpu-check-run-1-smoke" / "run", ratios, done=5)
    p = script(tmp_path, "--steps", "summary", timeout=120)
    assert p.returncode == 0, p.stdout[-3000:]
    assert "cells done: 5 of 17; run wall time: - s" in p.stdout
    assert "targets_passed=0 targets=5 cells_done=5 cells_planned=17 run_wall_s=nan" in p.stdout


def test_documented_device_calls_fit_the_budget():
    """docs/gpu-validation.md's calls: each timeout_s >= its BUDGET_S + 30 (the script's
    default when unset), and a 2-minute machine start, the first call and the rerun, each
    with 20 s of transfers, fit in the session's 15 device minutes."""
    import re

    default = int(re.search(r"BUDGET_S=\$\{BUDGET_S:-(\d+)\}", SCRIPT.read_text())[1])
    doc = (REPO / "docs" / "gpu-validation.md").read_text()
    calls = re.findall(r'run\(command="([^"]*)"[^)]*?timeout_s=(\d+)\)', doc)
    assert len(calls) == 2, calls
    timeouts = []
    for command, timeout in calls:
        budget = re.search(r"BUDGET_S=(\d+)", command)
        assert int(timeout) >= (int(budget[1]) if budget else default) + 30, command
        timeouts.append(int(timeout))
    assert 120 + sum(t + 20 for t in timeouts) <= 15 * 60
