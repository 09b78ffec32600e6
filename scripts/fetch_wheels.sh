#!/usr/bin/env bash
# Download the wheels that the GPU machine (docs/gpu-validation.md) lacks into .whl/
# (git-ignored), for CPython 3.12 on manylinux x86-64, without dependencies: every needed
# dependency is named below, pinned to the versions of the development environment.
# Run where PyPI is reachable; scripts/gpu_check.sh installs them there with --no-index.
#
#   scripts/fetch_wheels.sh [--clean]      (PYTHON=... to choose the pip that downloads)
#
# The GPU image already has: torch, numpy, pandas, matplotlib, jinja2, nvidia-ml-py, tqdm,
# click, psutil, py-cpuinfo, requests, rich, typer, prometheus-client, python-dateutil,
# typing-extensions (docs of the device: KINDS.md). Not carried: dask/distributed (only
# the Dask executor needs them; gpu_check.sh runs the local executor).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEST=.whl

# codecarbon 3.3.2 and what it requires that the GPU image lacks, each pinned; checked with
#   unzip -p .whl/NAME-*.whl '*/METADATA' | grep ^Requires-Dist
WHEELS=(
    codecarbon==3.3.2
    arrow==1.4.0 tzdata==2026.6                     # arrow -> python-dateutil (there), tzdata
    authlib==1.9.10 joserfc==1.8.0                  # -> cryptography
    cryptography==50.0.2 cffi==2.1.1 pycparser==3.12
    pycountry==26.2.16
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
    typing-extensions==4.16.0                       # there, but pydantic-core wants a recent one
    questionary==2.1.1 prompt-toolkit==3.0.53 wcwidth==0.9.4
    rapidfuzz==3.14.6
    tqdm==4.70.1                                    # there too; pinned to ours
)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64
           manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64
           manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64)

[[ ${1:-} == --clean ]] && rm -rf "$DEST"
mkdir -p "$DEST"
args=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d "$DEST")
for p in "${PLATFORMS[@]}"; do args+=(--platform "$p"); done
"$PYTHON" -m pip download -q "${args[@]}" "${WHEELS[@]}"

# one version of each distribution, or the --no-index install stops
dups=$(ls "$DEST"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)
if [[ -n $dups ]]; then
    echo "fetch_wheels.sh: several versions of: $dups (delete all but one in $DEST)" >&2
    exit 1
fi
ls -l "$DEST"
echo "$(ls "$DEST"/*.whl | wc -l) wheels, $(du -sh "$DEST" | cut -f1) in $DEST"
