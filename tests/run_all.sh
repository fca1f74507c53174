#!/usr/bin/env bash
# Install certpl with its pinned dependencies into .venv (if needed), then run the whole test suite:
# notebooks are clean and exported, every notebook's tests (nbdev_test, slow ones included), notebook checks,
# nbdev's doc processing (no Quarto needed), and the integration tests under tests/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
# pip byte-compiles what it installs: keep it (with PYTHONDONTWRITEBYTECODE=1, as on our machines, Python would otherwise
# compile every imported module again in every process)
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
echo "== nbdev's doc processing of every notebook (what nbdev_docs runs before Quarto)"
rm -rf _proc; nbdev_proc_nbs --n_workers 2 > /tmp/certpl_proc_nbs.log 2>&1 || { tail -40 /tmp/certpl_proc_nbs.log >&2; exit 1; }
if grep -q Traceback /tmp/certpl_proc_nbs.log; then tail -40 /tmp/certpl_proc_nbs.log >&2; exit 1; fi
rm -rf _proc
if [ -d .git ] && ! git diff --quiet -- nbs; then echo "doc processing changed files under nbs/" >&2; git --no-pager diff --stat -- nbs; exit 1; fi
echo "== integration tests"
# two workers: the tests mostly wait on certpl_train subprocesses; each test goes to the worker that is free
python -m pytest -q -n 2 --dist load tests
