#!/usr/bin/env bash
# The test command (README, command 2; .ci/run runs exactly this): a fresh virtual environment from the lock,
# then the whole suite. Extra arguments go to pytest (bash scripts/test.sh -m "not model" -x).
#
# .venv-test is removed and made anew every time, so a run sees what a newcomer's machine sees: the versions in
# constraints.txt and nothing installed by hand. pip's wheel cache keeps it fast after the first time (the first
# install compiles llama-cpp-python, 5-13 minutes on 2 cores). The report tests open pages in Debian's chromium,
# installed if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
bash scripts/ensure-chromium.sh
rm -rf .venv-test
"$PYTHON" -m venv .venv-test
# shellcheck disable=SC1091
. .venv-test/bin/activate
python -m pip install -q -c constraints.txt -e ".[dev]"
python -m pip check
python -m pytest "$@"
