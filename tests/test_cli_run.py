"""`metabench run` on a bad day: failed cells, Ctrl-C, and what it prints while it works.

In-process (bench.cli.main) smoke runs of sinusoid-5shot/scratch, about a second a cell;
a cell is made to fail (or to be interrupted) by wrapping the harness's run_cell.
"""

from __future__ import annotations

import io
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bench import cli
from bench.devices import cpu_count
from bench.energy.base import Measurement
from bench.errors import MetabenchError
from bench.options import RunOptions
from bench.run import executors, session
from bench.run.folder import RunLock, lock_holder
from bench.run.grid import expand_grid
from bench.run.harness import CellResult, WindowRecord
from bench.run.progress import (
    Estimate,
    EtaModel,
    Live,
    Progress,
    Timing,
    format_eta,
    timing_of,
)
from bench.suite import load_suite

REPO = Path(__file__).resolve().parent.parent


def smoke(out: Path, seeds: str = "0,1") -> list[str]:
    return ["run", "sinusoid-5shot", "--profile", "smoke", "--methods", "scratch", "--seeds",
            seeds, "--out", str(out), "--no-progress"]  # fmt: skip


def fail_seed(monkeypatch, seed: int, exc: BaseException) -> None:
    real = executors.run_cell

    def run_cell(cell, *args, **kwargs):
        if cell.seed == seed:
            raise exc
        return real(cell, *args, **kwargs)

    monkeypatch.setattr(executors, "run_cell", run_cell)


def test_failed_cells_end_in_one_paragraph_and_a_log(tmp_path, monkeypatch, capfd) -> None:
    out = tmp_path / "run"
    fail_seed(monkeypatch, 1, RuntimeError("boom: the inner loop diverged\nsecond line"))
    assert cli.main(smoke(out)) == 1
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err
    assert "FAILED sinusoid-5shot/scratch/seed1: RuntimeError: boom: the inner loop diverged\n" in (
        captured.err
    )
    paragraph = captured.err.strip().splitlines()[-1]
    assert paragraph.startswith("metabench: 1 of 2 cells failed: sinusoid-5shot/scratch/seed1 ")
    assert "(RuntimeError: boom: the inner loop diverged)" in paragraph
    assert str(out / "errors.log") in paragraph
    log = (out / "errors.log").read_text()
    assert "Traceback" in log and "second line" in log and "seed1" in log
    monkeypatch.undo()  # the next try succeeds: only the failed cell runs again
    assert cli.main(smoke(out)) == 0
    assert "1 cell run, 1 already done, 0 failed" in capfd.readouterr().out


def test_ctrl_c_prints_the_command_that_resumes(tmp_path, monkeypatch, capfd) -> None:
    out = tmp_path / "run"
    fail_seed(monkeypatch, 1, KeyboardInterrupt())
    assert cli.main(smoke(out)) == 130
    err = capfd.readouterr().err
    assert "Traceback" not in err
    command = err.strip().splitlines()[-1].split("): ", 1)[1]
    assert command.startswith("metabench run sinusoid-5shot")
    monkeypatch.undo()
    assert cli.main(shlex.split(command)[1:]) == 0
    assert "1 cell run, 1 already done" in capfd.readouterr().out


def test_default_run_folder_is_added_to_the_resume_command(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    message = cli.interrupted_message(["run", "x"], session.RunInterrupted(Path("reports/x-smoke")))
    assert message.endswith(f"metabench run x --out {tmp_path / 'reports' / 'x-smoke'}")


def test_a_run_opens_with_one_line(tmp_path, capfd) -> None:
    out = tmp_path / "run"
    assert cli.main(smoke(out, "0")) == 0
    first = capfd.readouterr().err.splitlines()[0]
    assert first.startswith(f"metabench: 1 cell to run, 0 already done; output: {out}; energy: ")
    assert "measured by" in first or "estimated by" in first or "not metered" in first
    assert cli.main(smoke(out, "0")) == 0
    assert capfd.readouterr().err.startswith("metabench: 0 cells to run, 1 already done;")


# --- the ETA, on made-up timings ------------------------------------------------------


@pytest.fixture(scope="module")
def cells():
    suite = load_suite("sinusoid-5shot", "smoke")  # maml: 300 steps; 40 test episodes
    return expand_grid([suite], ["scratch", "maml"], [0, 1, 2], "cpu")


def test_eta_adds_each_methods_own_step_and_episode_rates(cells) -> None:
    scratch, maml = cells[:3], cells[3:]
    eta = EtaModel()
    eta.observe(scratch[0], Timing(steps=0, meta_s=1.0, episodes=40, deploy_s=4.0))
    eta.observe(maml[0], Timing(steps=300, meta_s=30.0, episodes=40, deploy_s=8.0))
    assert eta.estimate(scratch[1]) == Estimate(pytest.approx(1.0 + 4.0), True, True)
    assert eta.estimate(maml[1]) == Estimate(pytest.approx(30.0 + 8.0), True, True)
    assert eta.remaining([scratch[1], maml[1], maml[2]], [], now=0.0) == (
        pytest.approx(81.0),
        0,
        0,
    )
    assert eta.remaining([scratch[1], maml[1]], [], now=0.0, workers=2)[0] == pytest.approx(21.5)
    assert format_eta(81.0) == "ETA 81 s"


def test_eta_borrows_from_comparable_cells_scaled_per_sample_and_says_so() -> None:
    five = load_suite("sinusoid-5shot", "smoke")  # 1 x (5 + 100) samples per episode
    ten = load_suite("sinusoid-10shot", "smoke")  # 1 x (10 + 100)
    maml5, fomaml5 = expand_grid([five], ["maml", "fomaml"], [0], "cpu")
    (maml10,) = expand_grid([ten], ["maml"], [0], "cpu")
    eta = EtaModel()
    eta.observe(maml5, Timing(steps=300, meta_s=30.0, episodes=40, deploy_s=8.0))
    # the same method on another shape of the same dataset: scaled by samples per episode
    assert eta.estimate(maml10) == Estimate(pytest.approx(38.0 * 110 / 105), False, True)
    # another method of the same suite: its rates, approximate
    assert eta.estimate(fomaml5) == Estimate(pytest.approx(38.0), False, True)
    seconds, approximate, unknown = eta.remaining([maml10, fomaml5], [], now=0.0)
    assert (approximate, unknown) == (2, 0)
    text = format_eta(seconds, approximate, unknown)
    assert text == "ETA ~78 s (approximate: 2 cells from other suites or methods)"


def test_eta_of_a_default_run_is_a_number_once_anything_is_timed() -> None:
    """Shipped suites have one seed and cells run method by method: every cell is the
    first of its method. The ETA is still a number (approximate), never 'at least 0 s'."""
    suite = load_suite("sinusoid-5shot", "smoke")
    scratch, maml, fomaml = expand_grid([suite], ["scratch", "maml", "fomaml"], [0], "cpu")
    now = [0.0]
    progress = Progress(False, stream=io.StringIO(), clock=lambda: now[0])
    progress.open([scratch, maml, fomaml], 0, "out", "not metered (time only)")
    texts = [progress.eta_text()]
    tick = progress.cell_started(scratch)  # no steps: it deploys from its start
    texts.append(progress.eta_text())
    now[0] = 2.0
    tick(20)  # half its episodes in 2 s
    texts.append(progress.eta_text())
    now[0] = 4.0
    tick(20)
    progress.cell_finished(result_of(scratch, 0.0, 0.0, 4.0))
    tick = progress.cell_started(maml)
    texts.append(progress.eta_text())  # no step of any cell timed yet: a lower bound
    now[0] = 7.0
    tick(30)  # maml: 30 steps in 3 s
    texts.append(progress.eta_text())
    now[0] = 34.0
    tick(270)  # meta-training done; deploy starts, with no episode of its own timed
    texts.append(progress.eta_text())
    assert texts[0] == "ETA not known yet (nothing comparable to 3 cells timed so far)"
    assert texts[2].startswith("ETA over ")  # scratch's deploy rate, no step rate yet
    assert texts[4].startswith("ETA ~") and "approximate" in texts[4]
    assert texts[5].startswith("ETA ~")  # maml's deploy: scratch's episode rate
    assert not any("at least" in t or t.startswith("ETA over 0 s") for t in texts), texts
    # maml's own rates: 0.1 s per step (270 left for fomaml), scratch's 0.1 s per episode
    seconds, _, _ = progress.eta.remaining(progress.pending, list(progress.live.values()), 34.0)
    assert seconds == pytest.approx(4.0 + 30.0 + 4.0)  # maml deploy, fomaml meta + deploy


def result_of(cell, started: float, meta_end: float, finished: float) -> CellResult:
    """A finished cell whose meta phase ended at `meta_end` (wall seconds)."""
    result = CellResult(cell, "fp", [0.5, 0.5], started_at=started, finished_at=finished)
    result.windows = [
        WindowRecord("validate", 0, 1, 0, Measurement("validate", meta_end, 0.0)),
    ]
    return result


def test_eta_of_the_running_cell_uses_its_own_rates_phase_by_phase(cells) -> None:
    maml = cells[3:]
    eta = EtaModel()
    eta.observe(cells[0], Timing(steps=0, meta_s=1.0, episodes=40, deploy_s=20.0))
    live = Live(maml[0], started_s=100.0, steps=100)  # a third of the steps in 10 s
    left = eta.left(live, now=110.0)  # its own step rate; deploy from scratch (approximate)
    assert left == Estimate(pytest.approx(20.0 + 20.0), False, True)
    live.steps, live.deploy_started_s = 300, 130.0  # deploy began, no episode timed yet
    assert eta.left(live, now=131.0) == Estimate(pytest.approx(19.0), False, True)
    live.episodes = 10  # 10 of its 40 episodes in 5 s: its own rate, exact
    assert eta.left(live, now=135.0) == Estimate(pytest.approx(15.0), True, True)
    assert format_eta(15.4) == "ETA 15 s"
    assert format_eta(5000.0, 0, 2) == "ETA over 5000 s (1.4 h) (2 cells not timed yet)"


def test_timing_splits_a_cell_at_the_end_of_its_last_validation(cells) -> None:
    def window(phase: str, start: float, seconds: float) -> WindowRecord:
        return WindowRecord(phase, 0, 1, 0, Measurement(phase, start, seconds))

    result = CellResult(cells[3], "fp", started_at=1000.0, finished_at=1060.0)
    result.windows = [
        window("meta_train", 1002.0, 20.0),
        window("validate", 1022.0, 3.0),
        window("adapt", 1030.0, 10.0),
        window("predict", 1040.0, 10.0),
    ]
    assert timing_of(result) == Timing(300, 25.0, 40, 35.0)


def test_progress_lines_without_bars(cells) -> None:
    stream, now = io.StringIO(), [0.0]
    progress = Progress(False, stream=stream, clock=lambda: now[0])
    progress.open(cells[3:5], 1, "out/x", "measured by rapl (cpu:0)")
    tick = progress.cell_started(cells[3])
    now[0] = 10.0
    tick(150)
    # 10 s left of this cell's steps, 20 s of the next one's; no episode timed yet
    assert progress.eta_text() == "ETA over 30 s (2 cells not timed yet)"
    progress.cell_failed(cells[3], "RuntimeError: boom")
    assert stream.getvalue().splitlines() == [
        "metabench: 2 cells to run, 1 already done; output: out/x; energy: measured by rapl "
        "(cpu:0)",
        "FAILED sinusoid-5shot/maml/seed0: RuntimeError: boom",
    ]


@pytest.mark.parametrize("flag", [None, "support", "transductive"])
def test_normalization_flag_overrides_the_suites_rule_and_the_key(flag) -> None:
    p = session.plan(
        RunOptions(suites=("sinusoid-5shot",), profile="smoke", device="cpu", normalization=flag)
    )
    assert {c.suite.normalization for c in p.cells} == {flag or "support"}
    other = "transductive" if flag != "transductive" else "support"
    q = session.plan(
        RunOptions(suites=("sinusoid-5shot",), profile="smoke", device="cpu", normalization=other)
    )
    assert not {c.key for c in p.cells} & {c.key for c in q.cells}


# --- one run per folder, each cell once, Ctrl-C anywhere ------------------------------


def test_a_second_run_into_the_same_folder_stops_naming_the_first(
    tmp_path, monkeypatch, capfd
) -> None:
    out = tmp_path / "run"
    with RunLock(out, "metabench run sinusoid-5shot --out elsewhere"):
        assert cli.main(smoke(out, "0")) == 2
    err = capfd.readouterr().err
    assert f"pid {os.getpid()} on " in err and "metabench run sinusoid-5shot --out elsewhere" in err
    assert err.count("\n") == 1 and not (out / "ledger.sqlite").exists()
    seen = []  # while a cell runs, its run holds the lock

    def run_cell(cell, *args, **kwargs):
        with pytest.raises(MetabenchError, match="in use by another metabench run"):
            lock_holder(out)
        seen.append(cell.label)
        return real(cell, *args, **kwargs)

    real = executors.run_cell
    monkeypatch.setattr(executors, "run_cell", run_cell)
    assert cli.main(smoke(out, "0")) == 0 and seen == ["sinusoid-5shot/scratch/seed0"]
    lock_holder(out)  # released at the end


def test_a_report_into_a_folder_a_run_is_writing_is_refused(tmp_path, capfd) -> None:
    out = tmp_path / "run"
    assert cli.main(smoke(out, "0")) == 0
    capfd.readouterr()
    with RunLock(out, "metabench run sinusoid-5shot --out run"):
        assert cli.main(["report", str(out)]) == 2
        assert "in use by another metabench run" in capfd.readouterr().err
        assert cli.main(["report", str(out), "--out", str(tmp_path / "copy")]) == 0  # elsewhere
    assert cli.main(["report", str(out)]) == 0


def test_suites_with_the_same_cells_run_each_cell_once(tmp_path) -> None:
    text = (REPO / "suites" / "sinusoid-5shot.toml").read_text()
    for name in ("a", "b"):
        (tmp_path / f"{name}.toml").write_text(text)  # the same bytes: the same cell keys
    options = RunOptions(
        suites=(str(tmp_path / "a.toml"), str(tmp_path / "b.toml")),
        methods=("scratch",),
        profile="smoke",
        device="cpu",
        out=str(tmp_path / "run"),
    )
    p = session.plan(options)
    assert [c.label for c in p.cells] == ["a/scratch/seed0"]
    assert "b/scratch/seed0 (= a/scratch/seed0)" in p.notes[0]


def test_dask_local_beyond_the_cores_is_a_note(tmp_path) -> None:
    options = RunOptions(("sinusoid-5shot",), profile="smoke", device="cpu", threads=1,
                         executor="dask-local", out=str(tmp_path / "run"))  # fmt: skip
    assert not session.plan(replace(options, workers=cpu_count())).notes
    (note,) = session.plan(replace(options, workers=cpu_count() + 1)).notes
    assert f"{cpu_count() + 1} workers x 1 threads exceed the {cpu_count()} cores" in note


def test_ctrl_c_while_importing_exits_130_without_traceback(monkeypatch, capfd) -> None:
    class Importing:
        def __getattr__(self, name):
            raise KeyboardInterrupt

    monkeypatch.setitem(sys.modules, "bench.run.session", Importing())
    assert cli.main(["run", "sinusoid-5shot"]) == 130
    err = capfd.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert "before the run started; nothing was written" in err
    assert err.strip().endswith("metabench run sinusoid-5shot")


def test_ctrl_c_while_writing_the_report_keeps_the_earlier_one(
    tmp_path, monkeypatch, capfd
) -> None:
    from bench.report import writer

    out = tmp_path / "run"
    assert cli.main(smoke(out, "0")) == 0
    capfd.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    real = writer.write_report

    def interrupted(run_dir, out_dir, *args):
        (Path(out_dir) / "summary.csv").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "write_report", interrupted)
    assert cli.main(["report", str(out)]) == 130
    err = capfd.readouterr().err
    assert "the report was left as it was" in err and f"metabench report {out}" in err
    assert cli.main(smoke(out, "0,1")) == 130  # a run interrupted in its report
    err = capfd.readouterr().err
    assert "every cell is kept" in err and err.strip().endswith(f"metabench report {out}")
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after["index.html"] == before["index.html"]
    assert after["summary.csv"] == before["summary.csv"]
    assert not [p for p in out.iterdir() if p.name.startswith(".report-")]
    monkeypatch.setattr(writer, "write_report", real)
    assert cli.main(["report", str(out)]) == 0
    assert ",1,done," in (out / "cells.csv").read_text()  # seed 1, kept through Ctrl-C


def test_a_method_a_suite_does_not_list_is_a_note(tmp_path, data_root) -> None:
    # the README's own example: ProtoNets has no regression form, so sinusoid skips it
    options = RunOptions(("omniglot-5w1s", "sinusoid-5shot"), profile="smoke", device="cpu",
                         methods=("protonet", "scratch"), out=str(tmp_path / "run"),
                         data_dir=str(data_root))  # fmt: skip
    p = session.plan(options)
    assert "sinusoid-5shot has no protonet: not run for that suite" in p.notes
    assert len(p.cells) == 3
