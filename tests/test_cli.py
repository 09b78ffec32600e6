"""End to end through the command line: smoke runs, their CSVs, and exit code 2 on bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent


def metabench(
    *args: str, data_root: Path | None = None, cwd: Path = REPO, **popen
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if data_root:
        env["METABENCH_DATA"] = str(data_root)
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        **popen,
    )


RESULTS_COLUMNS = {"suite", "method", "seed", "phase", "seconds_s", "score_mean", "fingerprint"}
SUMMARY_COLUMNS = {
    "suite",
    "method",
    "score_name",
    "score_mean",
    "score_ci95",
    "meta_train_s",
    "deploy_s_per_task",
}


@pytest.mark.parametrize(
    ("suite", "methods", "score", "precision"),
    [
        ("omniglot-5w1s", {"protonet", "scratch"}, "accuracy", "bf16"),
        ("sinusoid-5shot", {"scratch"}, "mse", None),
    ],
)
def test_smoke_run_writes_results_and_summary(
    tmp_path, data_root, suite, methods, score, precision
):
    out = tmp_path / "run"
    args = ["run", suite, "--profile", "smoke", "--methods", ",".join(sorted(methods))]
    args += ["--out", str(out), "--no-progress"]
    args += ["--precision", precision] if precision else []
    done = metabench(*args, data_root=data_root)
    assert done.returncode == 0, done.stderr
    results = pd.read_csv(out / "results.csv")
    summary = pd.read_csv(out / "summary.csv")
    assert set(results.columns) >= RESULTS_COLUMNS
    assert set(summary.columns) >= SUMMARY_COLUMNS
    assert set(summary["method"]) == methods
    assert (summary["score_name"] == score).all()
    assert (summary["precision"] == (precision or "fp32")).all()  # the suite's, or the flag's
    assert {"adapt", "predict"} <= set(results["phase"])
    # a re-run of the same command resumes: nothing left to do
    again = metabench(*args, data_root=data_root)
    assert again.returncode == 0 and "0 cells run" in again.stdout


def test_list_shows_suites_and_methods():
    done = metabench("list")
    assert done.returncode == 0, done.stderr
    for name in ("omniglot-5w1s", "sinusoid-10shot", "protonet", "scratch", "smoke"):
        assert name in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["run", "omniglot-5w1"],
        ["run", "omniglot-5w1s", "--profile", "huge"],
        ["run", "omniglot-5w1s", "--seeds", "a,b"],
        ["run", "omniglot-5w1s", "--methods", "protonett"],
        ["run", "no/such/suite.toml"],
        ["report", "/nonexistent/run"],
        ["frobnicate"],
    ],
)
def test_bad_input_exits_2_without_traceback(args, tmp_path):
    done = metabench(*args, "--data-dir", str(tmp_path)) if args[0] == "run" else metabench(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("metabench: error:")


def test_bad_suite_file_exits_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        (REPO / "suites" / "sinusoid-5shot.toml")
        .read_text()
        .replace("n_query = 100", "n_query = -1")
    )
    done = metabench("run", str(bad), "--data-dir", str(tmp_path))
    assert done.returncode == 2 and "n_query" in done.stderr and str(bad) in done.stderr


def test_list_aligns_columns_and_names_regression_shots(capsys):
    from bench.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    rows = out.split("suites:\n")[1].split("methods:")[0].splitlines()
    starts = {row.index(row.split()[1]) for row in rows}  # where the dataset column begins
    assert len(starts) == 1, rows
    assert "10-shot regression" in out and "1-way" not in out
    assert "5-way 1-shot classification" in out
    assert "standard (default)" in out


def test_meters_says_when_torch_cannot_use_the_gpu(monkeypatch, capsys):
    import torch

    from bench import devices
    from bench.cli import main

    monkeypatch.setattr(devices, "nvidia_gpu_count", lambda: 1)
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["meters", "--seconds", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "a run here uses device 'cpu'" in out
    assert "1 NVIDIA GPU but torch" in out and "CPU-only build" in out
    assert "install a CUDA build of torch" in out
    assert main(["meters", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "CPU-only build" in err and "Traceback" not in err
