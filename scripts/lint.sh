#!/usr/bin/env bash
# Linters (run by .ci/run before the tests): ruff lint, ruff format on the files already formatted, mypy.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] && . .venv/bin/activate
ruff check tunerail tests bench
# Every tracked Python file except the baseline list must be ruff-formatted.
git ls-files '*.py' | grep -v -x -F -f <(grep -v '^#' .ci/format-baseline.txt) | xargs -r ruff format --check --quiet
mypy tunerail
