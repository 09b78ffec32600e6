"""The Python API: a grid run from Python with the CLI's checks, a run folder loaded into
the report's own tables, and methods from another installed package (entry points)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest
from suite_files import sinusoid_suite

import bench
from bench.errors import MetabenchError
from bench.methods import METHODS
from bench.registry import Registry


@pytest.fixture
def plugin(tmp_path, monkeypatch) -> Path:
    """An installed distribution `fakeplugin` declaring two metabench.methods entry points:
    `copycat` (a method class) and `broken` (a module that fails to import)."""
    site = tmp_path / "site"
    info = site / "fakeplugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[metabench.methods]\ncopycat = fake_method:CopyCat\nbroken = fake_broken:Nope\n"
    )
    (site / "fake_method.py").write_text(
        textwrap.dedent('''
        from bench.methods.scratch import Scratch

        class CopyCat(Scratch):
            """From scratch, but from another package."""

            name = "copycat"
        ''')
    )
    (site / "fake_broken.py").write_text("raise ImportError('needs a library you lack')\n")
    monkeypatch.syspath_prepend(str(site))
    # registrations made by the test are undone with it
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))
    monkeypatch.setattr(METHODS, "broken", dict(METHODS.broken))
    return site


def test_entry_points_register_methods_and_keep_broken_ones_apart(plugin) -> None:
    methods = Registry("method")
    methods.load_entry_points("metabench.methods")
    assert methods.names() == ["copycat"] and methods.get("copycat").name == "copycat"
    with pytest.raises(MetabenchError, match="fakeplugin failed to load: ImportError: needs"):
        methods.get("broken")
    with pytest.raises(MetabenchError, match=r"unknown method 'copycot'.*did you mean 'copycat'"):
        methods.get("copycot")


def test_a_plugin_method_runs_in_a_suite_and_loads_back(plugin, tmp_path) -> None:
    METHODS.load_entry_points("metabench.methods")
    suite = sinusoid_suite(tmp_path / "tiny.toml", {"scratch": 2, "copycat": 3})
    out = tmp_path / "run"
    outcome = bench.run_suites([str(suite)], profile="smoke", out=str(out), progress=False)
    assert (outcome.summary.done, outcome.summary.failed) == (2, 0)
    assert outcome.run_dir == out and outcome.report == out / "index.html"
    tables = bench.load_run(out)
    assert set(tables.summary["method"]) == {"scratch", "copycat"}
    # the same aggregation as the report's CSV
    csv = pd.read_csv(out / "summary.csv")
    pd.testing.assert_series_equal(
        tables.summary["score_mean"].reset_index(drop=True), csv["score_mean"], check_names=False
    )
    assert {"cell_key", "status"} <= set(tables.cells.columns)
    assert len(tables.results) > 0 and "phase" in tables.results
    assert list(tables.breakeven.columns[:2]) == ["suite", "method"]
    assert any(c.startswith("breakeven_vs_scratch") for c in tables.breakeven.columns)


def test_run_suites_checks_like_the_cli_and_writes_nothing(tmp_path) -> None:
    out = tmp_path / "never"
    cases = [
        ({"pue": 0.2}, r"^pue=: expected a number in 1\.\.5"),
        ({"seeds": [0, 0]}, r"^seeds=: expected distinct seeds"),
        ({"seeds": []}, r"^seeds=: expected at least one"),
        ({"methods": ["scratch", "scratch"]}, r"^methods=: expected distinct"),
        ({"threads": 0}, r"^threads=: expected an integer"),
        ({"executor": "dask"}, r"^executor= dask: expected scheduler="),
        ({"sample_hz": float("nan")}, r"^sample_hz=: expected a number"),
        ({"profiel": "smoke"}, r"^profiel=: unknown setting \(did you mean 'profile'"),
        ({"seeds": 0}, r"^seeds=: expected a list of integers >= 0, found 0 \(one seed: "),
        ({"seeds": "0,1"}, r"^seeds=: expected a list of integers"),
        ({"methods": {"maml"}}, r"^methods=: expected a method name or a list of them"),
        ({"methods": 3}, r"^methods=: expected a method name"),
        ({"country": "XYZ"}, r"^country=: expected an ISO 3166-1 alpha-3 code"),
        ({"country": "USA", "region": "nowhere"}, r"^region=: expected a region"),
        (
            {"methods": "scratchh"},
            r"^methods=: .*found 'scratchh' \(did you mean 'scratch'",
        ),  # one name
    ]
    for settings, message in cases:
        with pytest.raises(MetabenchError, match=message):
            bench.run_suites("sinusoid-5shot", out=str(out), **{"profile": "smoke", **settings})
    for suites in (None, 3, {"sinusoid-5shot"}):
        with pytest.raises(MetabenchError, match=r"^suites=: expected a suite name or \.toml"):
            bench.run_suites(suites, out=str(out), profile="smoke")
    assert not out.exists()
    with pytest.raises(MetabenchError, match="expected a run folder"):
        bench.load_run(tmp_path)
    (tmp_path / "ledger.sqlite").write_text("garbage")
    with pytest.raises(MetabenchError, match=r"ledger\.sqlite: expected a metabench ledger"):
        bench.load_run(tmp_path)


def test_one_name_is_accepted_for_suites_and_methods(monkeypatch, tmp_path) -> None:
    from bench.run import session

    planned = []
    monkeypatch.setattr(session, "execute", lambda plan, command: planned.append(plan))
    bench.run_suites("sinusoid-5shot", methods="scratch", seeds=[0], profile="smoke",
                     out=str(tmp_path / "o"))  # fmt: skip
    assert [c.label for c in planned[0].cells] == ["sinusoid-5shot/scratch/seed0"]
