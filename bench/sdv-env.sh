#!/usr/bin/env bash
# Build .venv-sdv: the project plus SDV, for the "SDV GaussianCopula (sees micro-data)" row of
# bench/bench_methods.py (the row is skipped where sdv cannot be imported).
#
#     bash bench/sdv-env.sh            # ~2 min; 10-15 min if pip has not cached llama-cpp-python's wheel yet
#     .venv-sdv/bin/python bench/bench_methods.py --no-llm [--cases ecommerce adult adult11 semcog]
#     .venv-sdv/bin/python -m pytest -q tests/test_bench_baselines.py   # runs the SDV test instead of skipping it
#
# Why a separate environment and not a dependency or an extra of llmsynthor:
#   * its pins clash with the project's lock (constraints.txt, which pins the newest versions pyproject.toml
#     allows): sdv 2.0.0 and its own packages (rdt, copulas, sdmetrics) require pandas<3, and botocore (sdv
#     needs boto3) python-dateutil<3, where the lock pins pandas 3.x and python-dateutil 4.x. Here the lock
#     is used for everything except those two, which pip holds at their newest releases below 3.
#   * sdv pulls torch (through ctgan and deepecho, which the Gaussian copula does not use) and boto3:
#     hundreds of MB that neither the library nor its tests need.
# torch is installed first as torch==2.13.0, the CPU build this machine keeps on disk (pip's find-links);
# any other version would be fetched from PyPI as a multi-GB CUDA build. On a machine without that wheel,
# pip fetches that CUDA build too: set TORCH to another requirement, or PIP_EXTRA_INDEX_URL to an index of CPU builds.
# The environment is removed and built anew each time; `pip check` must pass at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv-sdv
SDV="sdv==2.0.0"
TORCH="${TORCH:-torch==2.13.0}"
started=$SECONDS
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip)
"${pip[@]}" install -q "$TORCH"

# the project's lock less the pins sdv's tree cannot meet (see above), plus torch held where it is
constraints="$VENV/constraints-sdv.txt"
{
    echo "# constraints.txt less pandas and python-dateutil (sdv's tree requires both <3); written by bench/sdv-env.sh"
    if [ -f constraints.txt ]; then
        grep -v -i -E '^(pandas|python-dateutil)[ =<>!~]' constraints.txt
    else
        echo "# (no constraints.txt: the project's dependencies unpinned)"
    fi
    echo "pandas<3"
    echo "python-dateutil<3"
    echo "$TORCH"
} > "$constraints"
# ipfn: the IPF row; pytest and playwright (imported by tests/conftest.py): to run the SDV test here
"${pip[@]}" install -q -c "$constraints" -e . "$SDV" "ipfn==1.4.4" pytest "playwright==1.65.2"
"${pip[@]}" check
"$VENV/bin/python" - <<'EOF'
import numpy, pandas, scipy, sdv, torch
print(f"sdv {sdv.__version__}, torch {torch.__version__}, numpy {numpy.__version__}, pandas {pandas.__version__}, "
      f"scipy {scipy.__version__}")
EOF
echo "$VENV built in $((SECONDS - started)) s; now: $VENV/bin/python bench/bench_methods.py --no-llm"
