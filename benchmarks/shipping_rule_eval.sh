#!/bin/bash
# usage: shipping_rule_eval.sh NAME SOURCE.pt CORE SUFFIX LOGDIR -- the shipping rule's first two parts for one
# candidate: pack SOURCE to half precision (runs/candidates/NAME.pt), read the two 2048² classic slabs (100/101) and
# calibrate on the 16 validation slabs (runs/candidates/NAME-cal.pt), pinned to CORE, in work folders of its own
# (SUFFIX), so that two candidates can be judged side by side, one per core; logs in LOGDIR.
# (From the marathon round, 2026-12-06, to the epoxy round this was that round's log folder's eval.sh.)
set -e
cd "$(dirname "$0")/.."
NAME=$1; SRC=$2; CORE=$3; SUF=$4; L=$5
[ -n "$L" ] || { echo "usage: $0 NAME SOURCE.pt CORE SUFFIX LOGDIR" >&2; exit 2; }
export OMP_NUM_THREADS=1
mkdir -p runs/candidates
taskset -c $CORE .venv/bin/python benchmarks/pack_checkpoint.py $SRC runs/candidates/$NAME.pt --half
taskset -c $CORE .venv/bin/python benchmarks/generalization.py --models runs/candidates/$NAME.pt --styles classic --seeds 2 --first-seed 100 --size 2048 --workdir benchmarks/work/classic-2048-$SUF --out $L/classic-$NAME.json > $L/classic-$NAME.log 2>&1
taskset -c $CORE .venv/bin/bigseg calibrate runs/candidates/$NAME.pt -o runs/candidates/$NAME-cal.pt --workdir benchmarks/work/calibration-$SUF > $L/calibrate-$NAME.log 2>&1
echo done
