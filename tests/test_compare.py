"""`metabench compare`: the same cells of two runs side by side, with known ratios."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
from ledger_factory import toy_ledger, toy_specs, write_ledger
from report_ledgers import cpu_reference_ledger, h200_copy

from bench.cli import main
from bench.errors import MetabenchError
from bench.report.compare import compare, load_cells
from bench.report.writer import write_report


def scaled(specs, time: float, energy: float, fingerprint: str | None = None):
    """The same cells with every window `time` x longer and `energy` x dearer."""
    out = []
    for s in specs:
        windows = [
            dataclasses.replace(
                w, seconds=w.seconds * time, joules={c: j * energy for c, j in w.joules.items()}
            )
            for w in s.windows
        ]
        out.append(
            dataclasses.replace(s, windows=windows, fingerprint=fingerprint or s.fingerprint)
        )
    return out


@pytest.fixture
def two_runs(tmp_path):
    a = toy_ledger(tmp_path / "cpu")
    b = write_ledger(tmp_path / "gpu", scaled(toy_specs(), 0.5, 4.0), idle_w={"cpu:0": 1.0})
    return a, b


def test_ratios_per_phase_are_the_runs_quotients(two_runs, tmp_path):
    a, b = two_runs
    out = tmp_path / "cmp"
    compare([a, b], out)
    table = pd.read_csv(out / "compare.csv").set_index(["suite", "method", "phase"])
    r = table.loc[("toy", "protonet", "meta_train")]
    assert r["seconds@cpu"] == pytest.approx(20.0) and r["joules@cpu"] == pytest.approx(400.0)
    assert r["seconds ratio gpu/cpu"] == pytest.approx(0.5)
    assert r["joules ratio gpu/cpu"] == pytest.approx(4.0)
    deploy = table.loc[("toy", "protonet", "deploy")]
    assert deploy["joules@cpu"] == pytest.approx(3.0)  # 12 J over 4 tasks
    assert deploy["joules ratio gpu/cpu"] == pytest.approx(4.0)
    # from-scratch has no meta-training: no meta_train row for it
    assert ("toy", "scratch", "meta_train") not in table.index
    # energy not measured stays NaN, never a ratio of zeros
    sine = table.loc[("toy-sine", "scratch", "deploy")]
    assert math.isnan(sine["joules ratio gpu/cpu"])
    scores = pd.read_csv(out / "compare-scores.csv")
    assert (scores["difference gpu-cpu"] == 0).all()
    html = (out / "compare.html").read_text()
    assert "ratio-toy-gpu-vs-cpu.png" in html and (out / "ratio-toy-gpu-vs-cpu.png").is_file()
    assert "params_hash" in html  # the settings matched on are named


def test_without_out_nothing_is_written(two_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["compare", str(two_runs[0]), str(two_runs[1])]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    text = capsys.readouterr().out
    assert "protonet" in text and "×0.5" in text and "×4" in text


def test_different_episodes_are_refused(tmp_path, capsys):
    a = toy_ledger(tmp_path / "a")
    b = write_ledger(tmp_path / "b", scaled(toy_specs(), 1.0, 1.0, fingerprint="fp-other"))
    with pytest.raises(MetabenchError, match="fingerprints differ"):
        compare([a, b])
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "different episodes" in err and "Traceback" not in err


def test_bad_inputs_exit_2(tmp_path, capsys):
    a = toy_ledger(tmp_path / "a")
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(a)]) == 2
    assert main(["compare", str(a), str(tmp_path / "empty")]) == 2
    other = write_ledger(tmp_path / "other", [dataclasses.replace(toy_specs()[0], seed=7)])
    assert main(["compare", str(a), str(other)]) == 2
    assert "no cell is in every run" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["compare", str(a), str(a), "--out", str(tmp_path / "file")]) == 2


def test_a_report_folder_without_ledger_is_read_from_results_csv(two_runs, tmp_path):
    a, b = two_runs
    report = tmp_path / "report-only"
    write_report(a, report)  # results.csv and summary.csv, no ledger
    from_csv = load_cells(report).set_index(["suite", "method"]).sort_index()
    from_ledger = load_cells(a).set_index(["suite", "method"]).sort_index()
    for col in ("meta_train_s", "meta_train_j", "deploy_j", "score_mean"):
        pd.testing.assert_series_equal(from_csv[col], from_ledger[col], check_names=False)
    assert "×0.5" in compare([report, b])
    assert main(["compare", str(report), str(b)]) == 0  # the command reads it too


def test_cpu_reference_against_h200(tmp_path):
    """The first use: the 2-core CPU reference (its committed CSVs) against the H200 run."""
    h200 = h200_copy(tmp_path)
    cpu = cpu_reference_ledger(tmp_path / "cpu", ("omniglot-5w1s", "sinusoid-5shot"))
    compare([cpu, h200], tmp_path / "cmp")
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    meta = table[(table["phase"] == "meta_train") & (table["suite"] == "omniglot-5w1s")]
    assert len(meta) == 8  # every method but from-scratch meta-trains
    proto = meta[meta["method"] == "protonet"].iloc[0]
    assert proto["seconds ratio h200/cpu"] == pytest.approx(9.65 / 60.0, rel=0.02)


def test_ratio_plot_text_never_overlaps(two_runs):
    import matplotlib.pyplot as plt
    from test_plots_layout import layout_faults

    from bench.report.compare import compare_table, match, ratio_figure

    runs = {label: load_cells(p) for label, p in zip(("cpu", "gpu"), two_runs, strict=True)}
    merged, _, _ = match(runs)
    fig = ratio_figure(compare_table(merged, ["cpu", "gpu"]), "toy", "cpu", "gpu")
    assert layout_faults(fig) == []
    plt.close(fig)


def test_cells_run_under_foreign_load_are_noted(tmp_path, capsys):
    a = toy_ledger(tmp_path / "quiet")
    loaded = [
        dataclasses.replace(
            s,
            windows=[dataclasses.replace(w, details={"foreign_cpu_load": 0.5}) for w in s.windows],
        )
        if s.method == "protonet"
        else s
        for s in toy_specs()
    ]
    b = write_ledger(tmp_path / "busy", loaded)
    text = compare([a, b], tmp_path / "cmp")
    assert "⚠ Foreign CPU load" in text and "busy: toy/protonet/seed 0" in text
    assert "quiet:" not in text.split("⚠ Foreign CPU load")[1]
    assert "protonet ⚠" in text  # the flagged cell's lines carry the mark
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert 'id="foreign-load"' in page and "busy: toy/protonet/seed 0" in page
    assert "Foreign" not in compare([a, a], None)


def test_a_phase_only_one_run_recorded_has_no_ratio(tmp_path):
    # an older ledger has no setup windows: its ratio is missing, never x0
    from ledger_factory import Win, cpu

    a = toy_ledger(tmp_path / "old")
    with_setup = [
        dataclasses.replace(s, windows=[Win("setup", 1, 0.5, cpu(5.0)), *s.windows])
        for s in toy_specs()
    ]
    b = write_ledger(tmp_path / "new", with_setup)
    compare([b, a], tmp_path / "cmp")  # the run with setup windows first
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    setup = table[table["phase"] == "setup"]
    assert len(setup) and setup["joules ratio old/new"].isna().all()
    assert setup["joules@new"].gt(0).all()
