"""The page's tables: the answer columns first (score ± CI, E_meta, E_deploy, N*, CO2 per
task), classification and regression suites apart, then one table per kind of detail.
Columns that no row of a table can fill are left out (e.g. GPU energy on a CPU run)."""

from __future__ import annotations

import pandas as pd

from bench.report import marks
from bench.report.answers import IDENTITY, answer_columns, answer_notes, batch_note
from bench.report.headline import transductive
from bench.report.html import Column, table
from bench.report.reading import BASELINES

SETTINGS = ("precision", "normalization", "execution", "device", "profile")
LABEL_SETTINGS = (*SETTINGS, "torch_threads")  # every setting a summary row is keyed by
KINDS = ("gpu", "cpu", "dram")
TASK_KINDS = (("classification", "Classification suites"), ("regression", "Regression suites"))
N_TITLES = (("n1", "1"), ("ntest", "n_test"), ("n10000", "10,000"), ("ninf", "∞"))

COMPONENTS = [
    *IDENTITY,
    *(
        Column(f"e_meta_{k}_j", k.upper(), "energy", f"estimated_meta_{k}", group="E_meta")
        for k in KINDS
    ),
    Column(
        "measured_share_meta", "measured", "share", help="share from NVML / RAPL", group="E_meta"
    ),
    *(
        Column(
            f"e_deploy_{k}_j_per_task",
            k.upper(),
            "energy",
            f"estimated_deploy_{k}",
            group="E_deploy per task",
        )
        for k in KINDS
    ),
    Column("measured_share_deploy", "measured", "share", group="E_deploy per task"),
]
TIME = [
    *IDENTITY,
    Column("meta_train_s", "meta-training", "seconds"),
    Column("validate_s", "validation", "seconds"),
    Column("setup_s", "setup", "seconds"),
    Column("adapt_s_per_task", "adapt / task", "seconds"),
    Column("predict_s_per_task", "predict / task", "seconds"),
    Column("deploy_s_per_task", "deploy / task", "seconds"),
    Column("deploy_batch_s_per_task", "deploy / task, batch", "seconds"),
    Column("seconds_to_target_s", "time to target", "seconds"),
]
NET_CO2 = [
    *IDENTITY,
    Column("e_meta_net_j", "E_meta net of idle", "energy", "estimated"),
    Column("e_deploy_net_j_per_task", "E_deploy net / task", "energy", "estimated"),
    Column("e_validate_j", "validation", "energy", "estimated"),
    Column("e_setup_j", "setup", "energy", "estimated"),
    Column("co2_meta_g", "CO2 meta-training", "grams", "estimated"),
    Column("co2_deploy_g_per_task", "CO2 deploy / task", "grams", "estimated"),
]
SETTING_COLUMNS = [
    *IDENTITY,
    *(Column(s, s, "text") for s in SETTINGS),
    Column("n_seeds", "seeds", "int"),
    Column("score_seed_std", "score std over seeds", "num"),
    Column("deploy_scenario", "deploy scenario", "text"),
    Column("source_meta", "meters, meta-training", "text"),
    Column("source_deploy", "meters, deploy", "text"),
    Column("foreign_load", "foreign CPU load (time-weighted)", "share"),
    Column("foreign_load_max", "foreign CPU load, worst window", "share"),
    Column("shared_energy_reason", "shared energy", "text"),
]


def _curves() -> list[Column]:
    cols = [
        *IDENTITY,
        Column("energy_to_target_j", "energy", "energy", "estimated", group="to the target",
               missing_from="target_reached"),
        Column("target_reached", "seeds", "text", group="to the target"),
        Column("budget_j", "energy", "energy", "estimated", group="common budget"),
        Column("val_score_at_budget", "val. score", "num", group="common budget",
               missing="no checkpoint within"),
    ]  # fmt: skip
    for b in BASELINES:
        group = f"to {b}'s score"
        cols += [
            Column(f"iso_energy_vs_{b}_j", "energy", "energy", "estimated", group=group,
                   missing_from=f"iso_reached_vs_{b}"),
            Column(f"iso_reached_vs_{b}", "seeds", "text", group=group),
        ]  # fmt: skip
    return cols


def _amortization(kind: str) -> list[Column]:
    eff, unit = (
        ("inv_mse", "(1/MSE) per kJ") if kind == "regression" else ("accuracy", "accuracy per kJ")
    )
    return [
        *IDENTITY,
        *(
            Column(f"e_task_j_{k}", t, "energy", "estimated", group="E_task(N) per task at N =")
            for k, t in N_TITLES
        ),
        *(
            Column(f"{eff}_per_kj_{k}", t, "num", "estimated", group=f"{unit} at N =")
            for k, t in N_TITLES
        ),
    ]


def _extra(s: pd.DataFrame) -> list[Column]:
    """Extra per-episode scores of a source (<name>_mean / <name>_ci95)."""
    names = [c[: -len("_mean")] for c in s.columns if c.endswith("_mean") and c != "score_mean"]
    return [
        *IDENTITY,
        *(Column(f"{n}_mean", n.replace("_", " "), "num") for n in names),
        *(Column(f"{n}_ci95", f"{n.replace('_', ' ')} ±95% CI", "num") for n in names),
    ]


# --------------------------------------------------------------------------- rows


def prepare(summary: pd.DataFrame) -> pd.DataFrame:
    """Summary rows plus the presentation columns: CO2 per task at N = n_test (the
    meta-training share E_meta / n_test plus deploy) and each row's label."""
    s = summary.copy()
    s["co2_task_ntest_g"] = s["co2_meta_g"] / s["n_test"] + s["co2_deploy_g_per_task"]
    s["transductive"] = transductive(s)
    s["label"] = row_labels(s)
    s["batch_note"] = batch_note(s)
    return s


def row_labels(s: pd.DataFrame) -> pd.Series:
    """The method, with the settings that tell apart the rows of one suite ("maml (bf16)";
    every row names its normalization where a suite mixes them: "anil (support)", "anil
    (transductive) †"), and † on transductive rows of such a suite (TRANSDUCTIVE_MARK)."""
    labels = s["method"].astype(str).copy()
    for _, g in s.groupby("suite"):
        mixed = g["transductive"].nunique() > 1
        varying = [
            k
            for k in LABEL_SETTINGS
            if k in g
            and (g.groupby("method")[k].nunique().max() > 1 or (k == "normalization" and mixed))
        ]
        for idx, r in g.iterrows():
            extra = [_setting(k, r[k]) for k in varying]
            text = r["method"] + (f" ({', '.join(extra)})" if extra else "")
            labels[idx] = text + (" †" if mixed and r["transductive"] else "")
    return labels


def _setting(key: str, value: object) -> str:
    return f"{value} threads" if key == "torch_threads" else str(value)


def marked_label(r: pd.Series) -> str:
    """The row's label with its marks (⚠ foreign load, ‡ shared energy: marks.py)."""
    return str(r["label"]) + marks.row_marks(r)


def page_tables(summary: pd.DataFrame) -> dict:
    """Every table of the page, as template contexts: `answers` and `details` per task
    kind present (classification first), each {"title", "tables": [...]}."""
    if summary.empty:
        return {"kinds": [], "shared": []}
    s = prepare(summary)
    kinds = []
    for kind, title in TASK_KINDS:
        k = s[s["task"] == kind]
        if k.empty:
            continue
        tid = kind
        extra = k.dropna(subset=[c.key for c in _extra(k)[2:]], how="all")
        tables = [
            ("Answers", table(k, answer_columns(k), f"answers-{tid}", marked_label)),
            ("Amortization", table(k, _amortization(kind), f"amortization-{tid}", marked_label)),
            ("Learning curves", table(k, _curves(), f"curves-{tid}", marked_label, True)),
        ]
        if len(_extra(k)) > 2 and len(extra):
            tables.append(("Extra scores", table(extra, _extra(k), f"extra-{tid}", marked_label)))
        kinds.append(
            {
                "kind": kind,
                "title": title,
                "tables": tables,
                "notes": answer_notes(k),
            }
        )
    settings, common = _constant_apart(s, SETTING_COLUMNS)
    details = (
        ("Energy by component", COMPONENTS, "components", ""),
        ("Time per phase", TIME, "timing", ""),
        ("Net of idle, validation, setup and CO2", NET_CO2, "net", ""),
        ("Settings, meters and flags", settings, "settings", common),
    )
    shared = [(title, table(s, cols, tid, marked_label, True), note)
              for title, cols, tid, note in details]  # fmt: skip
    return {"kinds": kinds, "shared": shared}


def _constant_apart(s: pd.DataFrame, columns: list[Column]) -> tuple[list[Column], str]:
    """The columns whose value differs between rows, and a sentence giving the others'
    one value ("Every row: precision bf16, device cuda.")."""
    keep, same = list(IDENTITY), []
    for c in columns[len(IDENTITY) :]:
        values = s[c.key].dropna().astype(str).unique() if c.key in s else []
        if len(values) == 1 and s[c.key].notna().all():
            if values[0].strip():  # an empty reason everywhere: nothing to say
                same.append(f"{c.title} {values[0]}")
        else:
            keep.append(c)
    return keep, ("Every row: " + ", ".join(same) + ".") if same else ""
