#!/usr/bin/env bash
# GPU validation of metabench in one call (docs/gpu-validation.md).
#
#   scripts/gpu_check.sh [--fake-nvml] [--out DIR] [--profile standard|smoke]
#                        [--steps install,env,meters,smi,run,report,graph,batch,maml,summary]
#                        [--python PY] [--fresh]
#
# For a fresh GPU machine with no internet: installs the wheels in .whl/ (if any), checks
# before anything that takes minutes that the dependencies, the data and the GPU are there
# (scripts/gpu_check.py preflight: else it stops at once, exit 2), prints the meters and
# nvidia-smi, runs the suites below on CUDA first (the 26-cell comparison, printing its wall
# time), packs the report, then the CUDA graph test, benchmarks/deploy_batch.py (stream vs
# batch vs graph deployment, ops per task, graph replay against eager) and
# benchmarks/maml_step.py, and ends with a summary: per suite and method stream and batch
# J/task, their ratio and latency, cells done, and PASS / FAIL per target. The NVML counter
# check (step agreement) runs when asked for with --steps. Everything it writes lands in
# one folder (--out, default $OUT, else ./gpu-check-out) of at most 8 files:
# gpu_check.log (every step's output), steps.tsv, nvml_agreement.csv, summary.md,
# summary.csv, report.tar.gz. Each step has a timeout and the whole script a budget
# (BUDGET_S, default 480 s: call the device with timeout_s >= BUDGET_S + 30; the device
# time arithmetic and a rerun's size: docs/gpu-validation.md); a failing
# step is logged and the script goes on.
#
# --fake-nvml rehearses it all on a CPU machine: a fake pynvml (scripts/fake_nvml, from
# tests/energy_fakes.py), --device cpu, the smoke profile and short NVML windows.
set -u -o pipefail
{ # the whole script is one block: bash parses it before running, so an edit of this file
  # during a run cannot break that run

# ---- what to run (edit here) ---------------------------------------------------------
SUITES="omniglot-5w1s sinusoid-5shot omniglot-20w5s"
METHODS="protonet scratch maml fomaml reptile anil metasgd learned_opt transfer"
SEEDS="0"
PROFILE="standard"
EXECUTION=${EXECUTION:-auto}   # the run's --execution (auto: batched on CUDA)
RUN_TARGET_S=120               # target: the 26 standard cells within this on an H200
# deploy_batch: tasks per batch, timing repeats, suites
BATCH_TASKS=32 BATCH_REPEATS=2 BATCH_SUITES="omniglot-5w1s,sinusoid-5shot"
# NVML agreement: idle window, warm-up, then LOAD_WINDOWS windows of WINDOW_S of matmuls
IDLE_S=10 WARMUP_S=3 LOAD_WINDOWS=12 WINDOW_S=5
MAML_REPEATS=3
# ---- time (seconds): the whole script, and each step's timeout -----------------------
# The comparison (run) goes first and gets the most time: it is the main target. A step's
# timeout is cut so that the steps after it keep their reserve (run_step's third argument).
BUDGET_S_SET=${BUDGET_S:-} T_RUN_SET=${T_RUN:-}
BUDGET_S=${BUDGET_S:-480}      # the device call's timeout_s must be >= BUDGET_S + 30
T_INSTALL=60 T_PREFLIGHT=60 T_ENV=30 T_METERS=30 T_SMI=15 T_RUN=${T_RUN:-240} T_REPORT=45
T_GRAPH=60 T_BATCH=120 T_MAML=60 T_AGREEMENT=110 T_SUMMARY=20
ALL_STEPS="install,env,meters,smi,run,report,graph,batch,maml,agreement,summary"
DEFAULT_STEPS="install,env,meters,smi,run,report,graph,batch,maml,summary"

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }

FAKE=0 FRESH=0 STEPS=$DEFAULT_STEPS OUT_DIR=${OUT:-./gpu-check-out} PROFILE_SET=0
PYTHON=${PYTHON:-python3}
while (($#)); do
    case $1 in
        --fake-nvml) FAKE=1 ;;
        --fresh) FRESH=1 ;;
        --out) OUT_DIR=$2; shift ;;
        --profile) PROFILE=$2; PROFILE_SET=1; shift ;;
        --steps) STEPS=$2; shift ;;
        --python) PYTHON=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case $PROFILE in standard|smoke|paper) ;; *) echo "gpu_check.sh: --profile: expected standard, smoke or paper, found $PROFILE" >&2; exit 2 ;; esac

cd "$(dirname "$0")/.." || exit 2
REPO=$PWD
START=$SECONDS
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd) || exit 2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-work.XXXXXX") || exit 2
LOG=$OUT_DIR/gpu_check.log
STEPS_TSV=$OUT_DIR/steps.tsv
: >"$LOG"
printf 'step\tstatus\trc\tseconds\ttimeout_s\n' >"$STEPS_TSV"
exec > >(tee -a "$LOG") 2>&1

DEVICE=cuda
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
# data: $METABENCH_DATA, else .data/ (git-ignored, carried to the device), else shared/data
if [[ -z ${METABENCH_DATA:-} ]]; then
    for d in "$REPO/.data" "$REPO/shared/data"; do
        [[ -d $d ]] && { export METABENCH_DATA=$d; break; }
    done
fi
export MPLBACKEND=Agg
AGREE_ARGS=(--device cuda)
if ((FAKE)); then
    DEVICE=cpu
    ((PROFILE_SET)) || PROFILE=smoke
    IDLE_S=1 WARMUP_S=0.5 LOAD_WINDOWS=3 WINDOW_S=1 MAML_REPEATS=1
    BATCH_TASKS=4 BATCH_REPEATS=1 BATCH_SUITES=sinusoid-5shot
    SUITES="omniglot-5w1s sinusoid-5shot"  # 20-way smoke cells take minutes on 2 CPU cores
    # a smoke run on a shared 2-core CPU takes ~5 minutes: a longer budget (the GPU's
    # budget stays as above; BUDGET_S / T_RUN in the environment override both)
    [[ -n ${BUDGET_S_SET:-} ]] || BUDGET_S=900
    [[ -n ${T_RUN_SET:-} ]] || T_RUN=540
    export PYTHONPATH=$REPO/scripts/fake_nvml:$PYTHONPATH
    AGREE_ARGS=(--fake-nvml)
fi

# The run folder outlives the script (on a warm device machine too): a rerun resumes the
# completed cells from its ledger. --fresh starts it again.
RUN_DIR=${TMPDIR:-/tmp}/gpu-check-run-$((FAKE))-$PROFILE/run
((FRESH)) && rm -rf "$RUN_DIR"
mkdir -p "$(dirname "$RUN_DIR")"
echo "gpu_check.sh: $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
     "fake_nvml=$FAKE device=$DEVICE profile=$PROFILE budget=${BUDGET_S}s out=$OUT_DIR run=$RUN_DIR"
echo "data: ${METABENCH_DATA:-(unset: the user cache)}"
echo "suites: $SUITES; methods: $METHODS; seeds: $SEEDS; execution: $EXECUTION; steps: $STEPS"

want() { [[ ",$STEPS," == *",$1,"* ]]; }

# run_step NAME TIMEOUT RESERVE CMD...: CMD under `timeout`, capped so that RESERVE seconds
# of the budget stay for the steps after it; logs status, rc and elapsed time.
FAILED_STEPS=""
run_step() {
    local name=$1 limit=$2 reserve=$3
    shift 3
    if ! want "$name"; then
        printf '%s\tnot-selected\t-\t0\t-\n' "$name" >>"$STEPS_TSV"
        return 0
    fi
    local left=$((BUDGET_S - (SECONDS - START) - reserve))
    ((limit > left)) && limit=$left
    echo
    echo "===== [$name] $(date -u +%H:%M:%S) t=$((SECONDS - START))s timeout=${limit}s: $*"
    if ((limit < 5)); then
        echo "===== [$name] SKIPPED: the budget of ${BUDGET_S}s is spent"
        printf '%s\tskipped-budget\t-\t0\t%s\n' "$name" "$limit" >>"$STEPS_TSV"
        FAILED_STEPS+=" $name"
        return 0
    fi
    local t0=$SECONDS rc status
    timeout -k 10 "$limit" "$@"
    rc=$?
    case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status=failed ;; esac
    [[ $status == ok ]] || FAILED_STEPS+=" $name"
    echo "===== [$name] $status (rc=$rc) in $((SECONDS - t0))s"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$((SECONDS - t0))" "$limit" >>"$STEPS_TSV"
    return 0
}

# ---- (a) wheels ------------------------------------------------------------------------
if want install; then
    if compgen -G "$REPO/.whl/*.whl" >/dev/null; then
        SITE=$WORK/site
        # The wheels are for CPython 3.12 (the GPU image's). Another interpreter (a CPU
        # rehearsal) installs them as for 3.12 to check the set, and keeps them off its path.
        PYVER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        FOREIGN=()
        if [[ $PYVER != 3.12 ]]; then
            FOREIGN=(--python-version 3.12 --implementation cp --only-binary=:all:)
            for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
                FOREIGN+=(--platform "$p")
            done
        fi
        run_step install "$T_INSTALL" 300 "$PYTHON" -m pip install -q --no-index --no-deps \
            --no-compile --no-cache-dir --upgrade --target "$SITE" "${FOREIGN[@]}" "$REPO"/.whl/*.whl
        if ((${#FOREIGN[@]})); then
            echo "install: python $PYVER is not 3.12: wheels installed as for 3.12 (a check of the set), not used"
        elif [[ -d $SITE ]]; then  # a fresh folder, first on the path
            export PYTHONPATH=$SITE:$PYTHONPATH
        fi
        if ((FAKE)); then  # keep the shim ahead of everything
            export PYTHONPATH=$REPO/scripts/fake_nvml:$PYTHONPATH
        fi
    else
        echo; echo "===== [install] no .whl/*.whl: nothing to install"
        printf 'install\tno-wheels\t-\t0\t-\n' >>"$STEPS_TSV"
    fi
fi

env_report() {
    "$PYTHON" - <<'EOF'
import importlib, platform, sys
print("python", sys.version.split()[0], platform.machine())
for name in ("torch", "pynvml", "codecarbon", "tqdm", "pandas", "matplotlib", "jinja2",
             "numpy", "dask", "distributed", "pydantic"):
    try:
        m = importlib.import_module(name)
        print(f"  {name:<12} {getattr(m, '__version__', '?'):<14} {getattr(m, '__file__', '')}")
    except Exception as e:  # noqa: BLE001 - an inventory, not a check
        print(f"  {name:<12} MISSING ({type(e).__name__}: {e})")
import torch
print("cuda available:", torch.cuda.is_available(), "torch cuda:", torch.version.cuda)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device 0:", p.name, f"{p.total_memory / 2**30:.1f} GiB", "uuid", p.uuid,
          "sm", p.multi_processor_count)
EOF
}
export -f env_report
export PYTHON

# ---- (b) the environment; preflight: fail fast, before any step that takes minutes ------
run_step env "$T_ENV" 300 bash -c env_report
# Dependencies of pyproject.toml (installed, in range, importable), the comparison's data
# in the data root (nothing is downloaded) and the GPU. Needed by run, graph, batch, maml.
if want run || want graph || want batch || want maml; then
    PRE_T0=$SECONDS
    echo; echo "===== [preflight] $(date -u +%H:%M:%S) t=$((SECONDS - START))s timeout=${T_PREFLIGHT}s"
    timeout -k 5 "$T_PREFLIGHT" "$PYTHON" "$REPO/scripts/gpu_check.py" preflight \
        --suites "${SUITES// /,}" --profile "$PROFILE" --device "$DEVICE"
    rc=$?
    if ((rc != 0)); then
        printf 'preflight\tfailed\t%s\t%s\t%s\n' "$rc" "$((SECONDS - PRE_T0))" "$T_PREFLIGHT" >>"$STEPS_TSV"
        echo "gpu_check.sh: preflight failed (rc=$rc): stopped before the steps that take minutes"
        rm -rf "$WORK"
        exit 2
    fi
    printf 'preflight\tok\t0\t%s\t%s\n' "$((SECONDS - PRE_T0))" "$T_PREFLIGHT" >>"$STEPS_TSV"
fi

# ---- (c) meters and nvidia-smi -----------------------------------------------------------
run_step meters "$T_METERS" 300 "$PYTHON" -m bench.cli meters --device "$DEVICE" --seconds 3
if ((FAKE)) || ! command -v nvidia-smi >/dev/null; then
    want smi && { echo; echo "===== [smi] skipped: $( ((FAKE)) && echo '--fake-nvml' || echo 'no nvidia-smi')"; }
    want smi && printf 'smi\tskipped\t-\t0\t-\n' >>"$STEPS_TSV"
else
    run_step smi "$T_SMI" 300 nvidia-smi -q -d POWER,CLOCK,TEMPERATURE
fi

# ---- (d) the comparison first: the issue's main target ---------------------------------
# Methods and suites that this checkout does not have are skipped with a message
# (scripts/gpu_check.py plan), so the script runs before every method has been merged.
plan_run() {
    local plan
    plan=$("$PYTHON" "$REPO/scripts/gpu_check.py" plan --suites "${SUITES// /,}" \
        --methods "${METHODS// /,}" --profile "$PROFILE")
    local rc=$?
    grep -v -e '^suites=' -e '^methods=' <<<"$plan"
    RUN_SUITES=" $(sed -n 's/^suites=//p' <<<"$plan")" RUN_METHODS=$(sed -n 's/^methods=//p' <<<"$plan")
    echo "run: suites${RUN_SUITES:- (none)}; methods ${RUN_METHODS:-(none)}"
    ((rc == 0)) && [[ -n ${RUN_SUITES// /} && -n $RUN_METHODS ]]
}
if want run; then
    if plan_run; then
        RUN_T0=$SECONDS
        # shellcheck disable=SC2086
        run_step run "$T_RUN" $((T_REPORT + T_SUMMARY)) "$PYTHON" -m bench.cli run $RUN_SUITES \
            --methods "$RUN_METHODS" --seeds "$SEEDS" --profile "$PROFILE" --device "$DEVICE" \
            --execution "$EXECUTION" --out "$RUN_DIR" --no-download --no-progress
        echo "run: wall time of the comparison (suites:$RUN_SUITES; methods $RUN_METHODS;" \
             "target <= ${RUN_TARGET_S} s on an H200):"
        echo "run_wall_s=$((SECONDS - RUN_T0))"
    else
        echo "===== [run] nothing to run"; printf 'run\tfailed\t-\t0\t-\n' >>"$STEPS_TSV"
        FAILED_STEPS+=" run"
    fi
else
    printf 'run\tnot-selected\t-\t0\t-\n' >>"$STEPS_TSV"
fi

# The report is rebuilt from the ledger when the run stopped early (a timeout keeps the
# completed cells), then packed into one file.
pack_report() {
    [[ -f $RUN_DIR/ledger.sqlite ]] || { echo "report: no ledger in $RUN_DIR"; return 1; }
    if [[ ! -f $RUN_DIR/summary.md || $RUN_DIR/ledger.sqlite -nt $RUN_DIR/index.html ]]; then
        echo "report: rebuilding from the ledger"
        "$PYTHON" -m bench.cli report "$RUN_DIR" || return 1
    fi
    cp "$RUN_DIR/summary.md" "$RUN_DIR/summary.csv" "$OUT_DIR/" 2>/dev/null
    tar -czf "$OUT_DIR/report.tar.gz" -C "$(dirname "$RUN_DIR")" run || return 1
    local size
    size=$(stat -c %s "$OUT_DIR/report.tar.gz")
    if ((size > 15 * 1024 * 1024)); then  # the device brings back files of <= 16 MiB
        echo "report: report.tar.gz is $size bytes; packing again without trace.csv and the ledger"
        tar -czf "$OUT_DIR/report.tar.gz" -C "$(dirname "$RUN_DIR")" --exclude=run/trace.csv \
            --exclude=run/ledger.sqlite run || return 1
    fi
    ls -l "$OUT_DIR/report.tar.gz"
    tar -tzf "$OUT_DIR/report.tar.gz"
}
export -f pack_report
export RUN_DIR WORK OUT_DIR
run_step report "$T_REPORT" "$T_SUMMARY" bash -c pack_report

# ---- (e) graph replay, deployment stream vs batch vs graph, the MAML meta-step ----------
# (CUDA only: on the CPU the graph test is skipped; its CPU tests run in `make test`.)
run_step graph "$T_GRAPH" "$T_SUMMARY" "$PYTHON" -m pytest -q -p no:cacheprovider \
    tests/test_batched_graph.py -k graph_replay_equals_eager
run_step batch "$T_BATCH" "$T_SUMMARY" "$PYTHON" benchmarks/deploy_batch.py --device "$DEVICE" \
    --tasks "$BATCH_TASKS" --repeats "$BATCH_REPEATS" --suites "$BATCH_SUITES"
run_step maml "$T_MAML" "$T_SUMMARY" "$PYTHON" benchmarks/maml_step.py --device "$DEVICE" \
    --repeats "$MAML_REPEATS"

# ---- (f) NVML counter vs integrated power (on request) ----------------------------------
run_step agreement "$T_AGREEMENT" "$T_SUMMARY" "$PYTHON" -m benchmarks.nvml_agreement \
    "${AGREE_ARGS[@]}" --idle-s "$IDLE_S" --warmup-s "$WARMUP_S" --windows "$LOAD_WINDOWS" \
    --window-s "$WINDOW_S" --out "$OUT_DIR/nvml_agreement.csv"

# ---- (g) summary: the headline, then deploy per task and PASS / FAIL per target ---------
summary_step() {
    if [[ -f $OUT_DIR/summary.md ]]; then cat "$OUT_DIR/summary.md"
    else echo "no summary.md (the run or the report step failed, or did not run: see above)"; fi
    echo
    "$PYTHON" "$REPO/scripts/gpu_check.py" summary --run "$RUN_DIR" --log "$LOG" \
        --suites "${SUITES// /,}" --methods "${METHODS// /,}" --seeds "$SEEDS" \
        --profile "$PROFILE" --run-target-s "$RUN_TARGET_S"
}
export -f summary_step
export LOG SUITES METHODS SEEDS PROFILE RUN_TARGET_S REPO
run_step summary "$T_SUMMARY" 0 bash -c summary_step

echo
echo "===== steps ($((SECONDS - START))s in all, budget ${BUDGET_S}s)"
column -t -s $'\t' "$STEPS_TSV" 2>/dev/null || cat "$STEPS_TSV"
# The device brings back at most 8 files of <= 16 MiB, at most 2 folders down.
n_files=$(find "$OUT_DIR" -type f | wc -l)
big=$(find "$OUT_DIR" -type f -size +16M)
deep=$(find "$OUT_DIR" -mindepth 3 -type f)
echo "out folder $OUT_DIR: $n_files files"
ls -l "$OUT_DIR"
((n_files <= 8)) || echo "WARNING: more than 8 files in $OUT_DIR: some will not come back"
[[ -z $big ]] || echo "WARNING: files over 16 MiB will not come back: $big"
[[ -z $deep ]] || echo "WARNING: files more than 2 folders down will not come back: $deep"
rm -rf "$WORK"
if [[ -n $FAILED_STEPS ]]; then
    echo "gpu_check.sh: done with problems in:$FAILED_STEPS"
    exit 1
fi
echo "gpu_check.sh: all steps ok"
exit 0
}
