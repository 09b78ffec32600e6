"""What `metabench report`, `run` and `index` write, and where: every file inside the
folder given, nothing beside it, and a readable report even when no cell finished."""

from __future__ import annotations

import pandas as pd
import pytest
from ledger_factory import toy_ledger
from report_ledgers import add_failed, failed_only_ledger

from bench.cli import main
from bench.report.writer import write_report


def test_report_with_no_finished_cell_says_so_and_lists_errors(tmp_path, capsys):
    run = failed_only_ledger(tmp_path / "run")
    assert main(["report", str(run), "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    html = (out / "index.html").read_text()
    assert "No cell finished" in html
    assert "RuntimeError: CUDA out of memory (synthetic)" in html
    assert "ValueError: bad shape" in html
    cells = pd.read_csv(out / "cells.csv")
    assert set(cells["status"]) == {"failed"}
    assert cells.set_index("method").loc["maml", "error"].endswith("(synthetic)\n")
    md = (out / "summary.md").read_text()
    assert "No cell finished" in md and "toy / maml / seed 0: failed" in md
    for name in ("summary.csv", "results.csv", "trace.csv"):
        assert (out / name).is_file()


def test_report_of_an_empty_ledger_is_written(tmp_path):
    from ledger_factory import write_ledger

    run = write_ledger(tmp_path / "run", [])  # Ctrl-C before the first cell ended
    page = write_report(run)
    assert "No cell finished" in page.read_text()


def test_failed_cells_are_listed_beside_done_ones(tmp_path):
    run = add_failed(toy_ledger(tmp_path / "run"), "toy", "maml")
    html = write_report(run).read_text()
    assert "1 cell did not finish" in html and "toy / maml / seed 0" in html
    cells = pd.read_csv(run / "cells.csv")
    assert sorted(cells["status"].unique()) == ["done", "failed"]


def test_report_never_writes_beside_its_folder(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    own = site / "index.html"
    own.write_text("<html>my own site</html>")
    run = toy_ledger(site / "run")
    assert main(["report", str(run)]) == 0
    assert main(["report", str(run), "--out", str(site / "out")]) == 0
    assert own.read_text() == "<html>my own site</html>"
    assert sorted(p.name for p in site.iterdir()) == ["index.html", "out", "run"]


def test_index_lists_run_folders_and_keeps_a_foreign_page(tmp_path, capsys):
    runs = tmp_path / "reports"
    write_report(toy_ledger(runs / "a"))
    add_failed(toy_ledger(runs / "b"), "toy", "maml", seed=3)  # no page yet, a cell failed
    (runs / "not-a-run").mkdir()
    (runs / "site").mkdir()  # a user's own web page is not a run (review of 15, item 14)
    (runs / "site" / "index.html").write_text("<html>my site</html>")
    (runs / "corrupt").mkdir()
    (runs / "corrupt" / "ledger.sqlite").write_text("garbage")
    assert main(["index", str(runs)]) == 0
    html = (runs / "index.html").read_text()
    assert 'href="a/index.html"' in html and "metabench report b" in html
    assert html.count("toy / maml / seed 3") == 1  # the partly failed run names its cell
    # b has no report yet (as after Ctrl-C): its suites, methods and counts come from the ledger
    row_b = next(r for r in html.split("<tr>") if "metabench report b" in r)
    assert "<td>toy, toy-sine</td>" in row_b and "<td>4 done, 1 failed</td>" in row_b
    assert html.count("<td>none</td>") == 1  # run a: every cell finished
    assert "not-a-run" not in html and "site" not in html
    # a corrupt ledger is listed with its problem, not with a command that would fail
    assert "corrupt (ledger.sqlite is not a readable metabench ledger)" in html
    assert "metabench report corrupt" not in html
    assert main(["index", str(runs)]) == 0  # its own page is refreshed

    site = tmp_path / "site"
    toy_ledger(site / "run")
    (site / "index.html").write_text("<html>mine</html>")
    capsys.readouterr()
    assert main(["index", str(site)]) == 2
    err = capsys.readouterr().err
    assert "index.html" in err and "not written by" in err and "Traceback" not in err
    assert (site / "index.html").read_text() == "<html>mine</html>"
    assert main(["index", str(tmp_path / "missing")]) == 2


def test_model_only_energy_is_explained_once(tmp_path):
    """The CPU reference had no RAPL and no NVML: the page says what that means."""
    from report_ledgers import cpu_reference_ledger

    run = cpu_reference_ledger(tmp_path / "ref", ("sinusoid-5shot",))
    html = write_report(run, tmp_path / "out").read_text()
    assert html.count("All energy here is modelled") == 1
    assert "time ranking" in html
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "Meta-SGD MSE 1.04 ± 0.09" in md


def test_energy_scope_gpu_sums_the_accelerator_only(tmp_path):
    from report_ledgers import h200_copy

    run = h200_copy(tmp_path)
    assert main(["report", str(run), "--out", str(tmp_path / "gpu"), "--energy-scope", "gpu"]) == 0
    s = pd.read_csv(tmp_path / "gpu" / "summary.csv")
    assert set(s["energy_scope"]) == {"gpu"}
    proto = s[(s["suite"] == "omniglot-5w1s") & (s["method"] == "protonet")].iloc[0]
    assert proto["e_meta_j"] == pytest.approx(proto["e_meta_gpu_j"])
    md = (tmp_path / "gpu" / "summary.md").read_text()
    assert "Energy of the GPU only (--energy-scope gpu): GPU measured (nvml-counter)." in md
    assert "CPU and DRAM estimated" not in md


def test_energy_scope_gpu_without_a_gpu_says_so(tmp_path):
    run = toy_ledger(tmp_path / "run")
    page = write_report(run, tmp_path / "out", energy_scope="gpu")
    assert "No GPU was metered here" in page.read_text()
    from bench.cli import build_parser

    args = build_parser().parse_args(["run", "toy", "--energy-scope", "gpu"])
    assert args.energy_scope == "gpu"
    assert main(["report", str(run), "--energy-scope", "cpu"]) == 2


def test_empty_cells_say_why(tmp_path):
    """Energy-to-target of a method that missed the target reads "not reached", a
    baseline's iso-accuracy energy "baseline", never a bare "not measured"."""
    html = write_report(toy_ledger(tmp_path / "run")).read_text()
    curves = html[html.index('id="curves-classification"') :]
    curves = curves[: curves.index("</table>")]
    assert "not reached" in curves and "baseline" in curves
    row = curves[curves.index(">transfer<") :]
    assert row[: row.index("</tr>")].count("not measured") == 0
