"""Summary energy columns on synthetic ledgers: components and their sources, energy scope,
deploy scenarios and repeats, setup windows, net energy against the idle noise, settings
that split rows (normalization, precision), shared energy, and the column dictionary."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import pytest
from ledger_factory import CellSpec, Win, cpu, toy_ledger, write_ledger

from bench.report import columns
from bench.report.aggregate import results_table, summary_table
from bench.report.writer import load_tables

EST = "estimate:codecarbon"
NODE = {"gpu:0": "nvml-counter", "cpu:all": EST, "dram:all": EST}


def node(gpu: float, cpu_j: float, dram: float) -> dict[str, float]:
    return {"gpu:0": gpu, "cpu:all": cpu_j, "dram:all": dram}


def _summary(tmp_path: Path, specs: list[CellSpec], **kw) -> object:
    ledger_kw = {k: kw.pop(k) for k in ("idle_w", "idle_std_w") if k in kw}
    return summary_table(load_tables(write_ledger(tmp_path / "run", specs, **ledger_kw)), **kw)


def _gpu_cell(**kw) -> CellSpec:
    return CellSpec(
        "toy",
        "protonet",
        [0.9, 0.8],
        [
            Win("setup", 1, 2.0, node(50.0, 5.0, 10.0), source=NODE),
            Win("meta_train", 10, 10.0, node(700.0, 100.0, 200.0), source=NODE, step=10),
            Win("adapt", 2, 1.0, node(6.0, 1.0, 1.0), source=NODE),
            Win("predict", 2, 1.0, node(2.0, 0.5, 1.5), source=NODE),
        ],
        **kw,
    )


def test_energy_splits_by_component_each_with_its_source(tmp_path):
    r = _summary(tmp_path, [_gpu_cell()]).iloc[0]
    assert (r["e_meta_gpu_j"], r["e_meta_cpu_j"], r["e_meta_dram_j"]) == (700.0, 100.0, 200.0)
    assert r["e_deploy_gpu_j_per_task"] == pytest.approx(4.0)  # (6 + 2) / 2 tasks
    assert r["source_meta_gpu"] == "nvml-counter" and not r["estimated_meta_gpu"]
    assert r["source_meta_dram"] == "estimate:codecarbon" and r["estimated_meta_dram"]
    assert r["measured_share_meta"] == pytest.approx(0.7)
    assert r["measured_share_deploy"] == pytest.approx(8.0 / 12.0)
    assert r["e_meta_j"] == 1000.0 and r["estimated"]  # node scope: everything


def test_gpu_scope_sums_the_accelerator_only(tmp_path):
    r = _summary(tmp_path, [_gpu_cell()], energy_scope="gpu").iloc[0]
    assert r["energy_scope"] == "gpu"
    assert r["e_meta_j"] == 700.0 and r["e_deploy_j_per_task"] == pytest.approx(4.0)
    assert not r["estimated"] and r["energy_note"] == "measured"
    assert r["measured_share_meta"] == 1.0
    assert r["e_meta_cpu_j"] == 100.0  # the components stay whatever the scope
    # a CPU-only ledger has no accelerator energy: not measured, never 0
    cpu_only = CellSpec("toy", "scratch", [0.5], [Win("adapt", 1, 1.0, cpu(3.0))])
    r = _summary(tmp_path / "c", [cpu_only], energy_scope="gpu").iloc[0]
    assert math.isnan(r["e_deploy_j_per_task"]) and r["energy_note"] == "not measured"
    # a failed CPU figure (NaN) fails the node total, not the GPU one
    failed = CellSpec(
        "toy",
        "scratch",
        [0.5],
        [Win("adapt", 1, 1.0, node(6.0, math.nan, 1.0), source=NODE)],
    )
    gpu_only = _summary(tmp_path / "f", [failed], energy_scope="gpu").iloc[0]
    assert gpu_only["e_adapt_j_per_task"] == 6.0
    assert math.isnan(_summary(tmp_path / "g", [failed]).iloc[0]["e_adapt_j_per_task"])
    with pytest.raises(ValueError, match="energy_scope"):
        _summary(tmp_path / "d", [cpu_only], energy_scope="rack")


def test_setup_windows_are_neither_meta_nor_deploy(tmp_path):
    r = _summary(tmp_path, [_gpu_cell()]).iloc[0]
    assert r["e_setup_j"] == 65.0 and r["setup_s"] == 2.0
    assert r["e_meta_j"] == 1000.0 and r["e_deploy_j_per_task"] == pytest.approx(6.0)


def _scenario_cell() -> CellSpec:
    return CellSpec(
        "toy",
        "maml",
        [0.9, 0.8],
        [
            Win("meta_train", 10, 10.0, cpu(100.0), step=10),
            Win("adapt", 2, 1.0, cpu(8.0), scenario="stream"),
            Win("predict", 2, 0.5, cpu(2.0), scenario="stream"),
            # batch: 2 tasks per pass, 4 passes inside the window (repeats)
            Win("adapt", 2, 0.4, cpu(4.0), scenario="batch", repeats=4),
            Win("predict", 2, 0.2, cpu(0.8), scenario="batch", repeats=4),
        ],
    )


def test_both_deploy_scenarios_and_repeats(tmp_path):
    specs = [
        _scenario_cell(),
        CellSpec(
            "toy",
            "scratch",
            [0.9, 0.8],
            [Win("adapt", 2, 1.0, cpu(30.0)), Win("predict", 2, 1.0, cpu(0.0))],
        ),
    ]
    s = _summary(tmp_path, specs).set_index("method")
    r = s.loc["maml"]
    assert r["deploy_scenario"] == "stream"
    assert r["e_deploy_stream_j_per_task"] == pytest.approx(5.0)  # (8 + 2) / 2
    assert r["e_deploy_batch_j_per_task"] == pytest.approx(0.6)  # (4 + 0.8) / (4 x 2)
    assert r["deploy_batch_s_per_task"] == pytest.approx(0.6 / 8)
    assert r["e_deploy_j_per_task"] == r["e_deploy_stream_j_per_task"]
    # scratch's windows carry no scenario (an old ledger): stream
    assert s.loc["scratch", "e_deploy_stream_j_per_task"] == pytest.approx(15.0)
    assert r["breakeven_vs_scratch_n"] == pytest.approx(100.0 / (15.0 - 5.0))
    # a loop cell has no batch windows: the batch column says why it is empty
    assert "loop execution" in columns.missing_text(
        s.loc["scratch"].to_dict(), "e_deploy_batch_j_per_task"
    )
    batch = _summary(tmp_path / "b", [_scenario_cell()], scenario="batch").iloc[0]
    assert batch["deploy_scenario"] == "batch" and batch["e_deploy_j_per_task"] == 0.6


def _net_cell(meta_j: float) -> CellSpec:
    return CellSpec(
        "toy",
        "maml",
        [0.5, 0.5],
        [
            Win("meta_train", 10, 10.0, cpu(meta_j), step=10),
            Win("adapt", 2, 1.0, cpu(30.0)),
            Win("predict", 2, 1.0, cpu(10.0)),
        ],
    )


@pytest.mark.parametrize(
    ("meta_j", "net", "note"),
    [
        (150.0, 50.0, ""),  # idle 10 W x 10 s = 100 J; noise band 1.96 x 1 W x 10 s = 19.6 J
        (110.0, math.nan, "within idle noise"),
        (95.0, math.nan, "within idle noise"),  # -5 J: never shown negative
        (60.0, math.nan, "below the idle baseline"),
    ],
)
def test_net_energy_is_never_negative(tmp_path, meta_j, net, note):
    r = _summary(tmp_path, [_net_cell(meta_j)], idle_w={"cpu:0": 10.0}, idle_std_w={"cpu:0": 1.0})
    r = r.iloc[0]
    assert r["e_meta_net_j"] == pytest.approx(net, nan_ok=True)
    assert r["e_meta_net_note"] == note
    # ((30 - 10) + (10 - 10)) / 2 tasks = 10 J/task, above the band of 1.96 x 2 W s / 2
    assert r["e_deploy_net_j_per_task"] == pytest.approx(10.0)


def test_results_csv_nets_each_window_by_the_same_rule(tmp_path):
    run = write_ledger(
        tmp_path / "run", [_net_cell(60.0)], idle_w={"cpu:0": 10.0}, idle_std_w={"cpu:0": 1.0}
    )
    r = results_table(load_tables(run)).set_index("phase")
    # meta_train 60 J against 100 J idle; predict 10 J against 10 J idle (band 1.96 J)
    assert math.isnan(r.loc["meta_train", "net_j"])
    assert r.loc["meta_train", "net_note"] == "below the idle baseline"
    assert math.isnan(r.loc["predict", "net_j"])
    assert r.loc["predict", "net_note"] == "within idle noise"
    assert r.loc["adapt", "net_j"] == pytest.approx(20.0) and r.loc["adapt", "net_note"] == ""


def test_the_h200_reference_publishes_no_negative_net_energy(tmp_path):
    # its committed results.csv had 78 negative net_j rows; the ledger is committed beside it
    packed = Path(__file__).parents[1] / "docs/results/h200-2026-11-30/ledger.sqlite.gz"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "ledger.sqlite").write_bytes(gzip.decompress(packed.read_bytes()))
    r = results_table(load_tables(tmp_path / "run"))
    assert not (r["net_j"] < 0).any()
    hidden = r[r["net_j"].isna() & r["joules_j"].notna()]
    assert len(hidden) >= 78
    assert set(hidden["net_note"]) <= {"within idle noise", "below the idle baseline"}
    assert (r.loc[r["net_j"].notna(), "net_note"] == "").all()


def test_net_energy_without_idle_std_uses_the_documented_fallback(tmp_path):
    # no idle std in the ledger: 2% of idle W as its std, band 1.96 x 0.2 W x 10 s = 3.92 J
    r = _summary(tmp_path / "a", [_net_cell(103.5)], idle_w={"cpu:0": 10.0}).iloc[0]
    assert math.isnan(r["e_meta_net_j"]) and r["e_meta_net_note"] == "within idle noise"
    r = _summary(tmp_path / "b", [_net_cell(104.5)], idle_w={"cpu:0": 10.0}).iloc[0]
    assert r["e_meta_net_j"] == pytest.approx(4.5) and r["e_meta_net_note"] == ""
    r = _summary(tmp_path / "c", [_net_cell(111.0)]).iloc[0]
    assert math.isnan(r["e_meta_net_j"]) and r["e_meta_net_note"] == "no idle baseline"
    # no meta-training: nothing to net, exactly 0
    scratch = CellSpec("toy", "scratch", [0.5], [Win("adapt", 1, 1.0, cpu(30.0))])
    r = _summary(tmp_path / "d", [scratch], idle_w={"cpu:0": 10.0}).iloc[0]
    assert r["e_meta_net_j"] == 0.0 and r["e_meta_net_note"] == ""


def _scored(method: str, scores, deploy_j: float, **settings) -> CellSpec:
    windows = [Win("adapt", 2, 1.0, cpu(deploy_j)), Win("predict", 2, 1.0, cpu(0.0))]
    if method != "scratch":
        windows.insert(0, Win("meta_train", 10, 10.0, cpu(100.0), step=10))
    return CellSpec("toy", method, scores, windows, **settings)


def test_settings_split_rows_and_baselines_match_within_them(tmp_path):
    specs = [
        _scored("maml", [0.9, 0.9], 2.0, normalization="transductive"),
        _scored("maml", [0.6, 0.6], 2.0, normalization="support"),
        _scored("scratch", [0.6, 0.6], 22.0, normalization="support"),
        _scored("maml", [0.6, 0.6], 2.0, normalization="support", precision="bf16"),
    ]
    s = _summary(tmp_path, specs)
    assert len(s) == 4  # never pooled across normalization or precision
    by = s.set_index(["method", "normalization", "precision"])
    assert by.loc[("maml", "transductive", "fp32"), "transductive"]
    assert not by.loc[("maml", "support", "fp32"), "transductive"]
    # the transductive row has no support scratch to compare with, bf16 no bf16 scratch
    assert by.loc[("maml", "transductive", "fp32"), "breakeven_vs_scratch_status"] == "no_baseline"
    assert by.loc[("maml", "support", "bf16"), "breakeven_vs_scratch_status"] == "no_baseline"
    assert by.loc[("maml", "support", "fp32"), "breakeven_vs_scratch_n"] == pytest.approx(10.0)
    # old ledgers (NULL settings) read as fp32, transductive, loop
    old = _summary(tmp_path / "old", [_scored("maml", [0.5], 1.0)]).iloc[0]
    assert (old["precision"], old["normalization"], old["execution"]) == (
        "fp32",
        "transductive",
        "loop",
    )
    assert old["transductive"]


def test_thread_counts_are_rows_of_their_own_compared_like_for_like(tmp_path):
    specs = [
        _scored("maml", [0.6, 0.6], 2.0, torch_threads=1),
        _scored("maml", [0.6, 0.6], 4.0, torch_threads=4),
        _scored("scratch", [0.6, 0.6], 22.0, torch_threads=1),
        _scored("scratch", [0.6, 0.6], 12.0, torch_threads=4),
    ]
    s = _summary(tmp_path, specs).set_index(["method", "torch_threads"])
    assert len(s) == 4 and (s["n_seeds"] == 1).all()  # one seed each, never pooled
    assert s.loc[("maml", "1"), "breakeven_vs_scratch_n"] == pytest.approx(100.0 / 10.0)
    assert s.loc[("maml", "4"), "breakeven_vs_scratch_n"] == pytest.approx(100.0 / 4.0)


def test_not_applicable_is_not_not_measured(tmp_path):
    s = load_tables(toy_ledger(tmp_path / "run"))
    rows = summary_table(s).set_index(["suite", "method"])
    regression = rows.loc[("toy-sine", "scratch")].to_dict()
    assert columns.missing_text(regression, "accuracy_per_kj_ntest") == columns.NOT_APPLICABLE
    assert columns.missing_text(regression, "inv_mse_per_kj_ntest") == columns.NOT_MEASURED
    classification = rows.loc[("toy", "protonet")].to_dict()
    assert columns.missing_text(classification, "inv_mse_per_kj_n1") == columns.NOT_APPLICABLE
    assert columns.missing_text(classification, "accuracy_per_kj_n1") is None
    assert columns.missing_text(classification, "breakeven_vs_transfer_n") == "never"


def test_every_summary_column_is_in_the_dictionary_and_the_doc_is_current(tmp_path):
    t = load_tables(toy_ledger(tmp_path / "run"))
    summary = summary_table(t)
    missing = [c for c in summary.columns if columns.lookup(c) is None]
    assert not missing, f"add these to bench/report/columns.py: {missing}"
    doc = Path(__file__).parents[1] / "docs" / "report-columns.md"
    assert doc.read_text() == columns.markdown(), (
        "docs/report-columns.md is stale: python -m bench.report.columns > docs/report-columns.md"
    )
