#!/usr/bin/env bash
# Linters (run by .ci/run before the tests): ruff lint, ruff format on every tracked Python file, mypy.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] && . .venv/bin/activate
ruff check tunerail tests bench
# Every tracked Python file must be ruff-formatted (`ruff format` fixes it).
git ls-files '*.py' | xargs -r ruff format --check --quiet
mypy tunerail
