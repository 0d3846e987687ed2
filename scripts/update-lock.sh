#!/usr/bin/env bash
# Re-resolve the newest versions pyproject.toml allows, write them to constraints.txt, and run the fast lane
# against them. One command to update the lock:   bash scripts/update-lock.sh
# It installs into a fresh virtual environment (.venv-lock, removed and made anew each time) without the old
# lock, freezes what pip chose, then runs the fast lane in that environment. constraints.txt is rewritten in
# any case: `git diff constraints.txt` shows what moved; commit it only if the fast lane passed (exit code 0).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv-lock
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q -e ".[dev]"
{
    echo "# The locked dependency set: every package 'pip install -e \".[dev]\"' installs, at one version."
    echo "# Used by both README commands and by .ci/run (pip install -c constraints.txt ...)."
    echo "# Written by scripts/update-lock.sh on $(date -u +%Y-%m-%d) with $(python --version) on $(uname -m); do not edit by hand."
    python -m pip freeze --exclude-editable | grep -v -i '^llmsynthor' | LC_ALL=C sort -f
} > constraints.txt
python -m pip check
echo "constraints.txt: $(grep -c '==' constraints.txt) packages pinned; running the fast lane against them"
python -m pytest -q -m "not model and not browser and not server and not slow"
