#!/usr/bin/env bash
# Install certpl with its pinned dependencies into .venv (if needed), then run the whole test suite:
# notebooks are clean and exported, every notebook's tests (nbdev_test, slow ones included), notebook checks,
# and the integration tests under tests/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/pip install -q -e '.[dev]'
. .venv/bin/activate
export MPLBACKEND=Agg
echo "== notebooks clean and exported"
nbdev_clean
nbdev_export
if [ -d .git ] && ! git diff --quiet -- nbs certpl; then
  git --no-pager diff --stat -- nbs certpl
  echo "nbdev_clean or nbdev_export changed tracked files: run them and commit" >&2; exit 1
fi
echo "== notebook tests"
nbdev_test --flags slow --n_workers 2 --timing
echo "== notebook checks (size, machine paths, README matches index)"
python tests/check_notebooks.py
echo "== integration tests"
python -m pytest -q tests
