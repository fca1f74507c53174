#!/usr/bin/env bash
# The Fashion-MNIST studies (issues 15 and 27), two jobs at a time, one thread each; safe to run again: a finished job is skipped,
# an interrupted one resumes from its checkpoint. Usage, from anywhere: bash bench/study/run.sh OUT_DIR [JOBS]
# JOBS: an extended regular expression for the job names to run (default: all); e.g. 'o-softmatch-.*-s2'.
# Runs made in a new OUT_DIR join the exported results with `export_results.py --add`.
# Runs go to OUT_DIR/mlflow.db (studies `pilot`: FixMatch against supervised-only, `rank40`, `rank250`, `outcome40`); aggregate with
# `certpl_study <name>` (MLFLOW_TRACKING_URI=sqlite:///OUT_DIR/mlflow.db).
set -uo pipefail
OUT=$(realpath "${1:?usage: run.sh OUT_DIR [JOBS]}"); PICK=${2:-.*}; HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT/done" "$OUT/logs" "$OUT/ckpt"
export OUT OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg
job() {
  name=$1; shift
  [ -e "$OUT/done/$name" ] && return 0
  common="data.source=fashion_mnist data.batch_size.train=16 data.steps_per_epoch=64 exp.max_epochs=16 exp.mlflow_uri=sqlite:///$OUT/mlflow.db exp.checkpoint_every=64 exp.checkpoint_dir=$OUT/ckpt/$name hydra.run.dir=$OUT/hydra/$name"
  ck=$(ls "$OUT/ckpt/$name"/*.pt 2>/dev/null | head -1)
  if [ -n "$ck" ]; then certpl_train $common exp.resume="$ck" "$@" >> "$OUT/logs/$name.log" 2>&1
  else certpl_train $common "$@" > "$OUT/logs/$name.log" 2>&1; fi
  rc=$?; echo "$(date +%T) $name rc=$rc" >> "$OUT/logs/queue.log"
  [ $rc = 0 ] && touch "$OUT/done/$name"
}
export -f job
JOBS=$(grep -v '^#' "$HERE/jobs.txt" | grep -E "^($PICK) ") || { echo "no job in $HERE/jobs.txt matches '$PICK'" >&2; exit 2; }
printf '%s\n' "$JOBS" | xargs -P 2 -L 1 bash -c 'job "$@"' _
