#!/bin/bash
# usage: shipping_rule_eval.sh NAME SOURCE.pt CORE SUFFIX LOGDIR -- the shipping rule's first two parts for one
# candidate: pack SOURCE to half precision (runs/candidates/NAME.pt), read the two 2048² classic slabs (100/101) and
# calibrate on the 16 validation slabs (runs/candidates/NAME-cal.pt), in work folders of its own (SUFFIX); logs in
# LOGDIR. CORE 0 or 1 pins all of it to that core, so that two candidates can be judged side by side, one per core;
# CORE "both" judges one candidate on both, the classic read on core 0 beside the calibration on core 1 (a round
# with a single candidate; since 2026-12-07).
# (From the marathon round, 2026-12-06, to the epoxy round this was that round's log folder's eval.sh.)
set -e
cd "$(dirname "$0")/.."
NAME=$1; SRC=$2; CORE=$3; SUF=$4; L=$5
[ -n "$L" ] || { echo "usage: $0 NAME SOURCE.pt CORE|both SUFFIX LOGDIR" >&2; exit 2; }
export OMP_NUM_THREADS=1
mkdir -p runs/candidates
if [ "$CORE" = both ]; then READ=0; CAL=1; else READ=$CORE; CAL=$CORE; fi
taskset -c $READ .venv/bin/python benchmarks/pack_checkpoint.py $SRC runs/candidates/$NAME.pt --half
classic() {
    taskset -c $READ .venv/bin/python benchmarks/generalization.py --models runs/candidates/$NAME.pt --styles classic --seeds 2 --first-seed 100 --size 2048 --workdir benchmarks/work/classic-2048-$SUF --out $L/classic-$NAME.json > $L/classic-$NAME.log 2>&1
}
calibrate() {
    taskset -c $CAL .venv/bin/bigseg calibrate runs/candidates/$NAME.pt -o runs/candidates/$NAME-cal.pt --workdir benchmarks/work/calibration-$SUF > $L/calibrate-$NAME.log 2>&1
}
if [ "$CORE" = both ]; then
    classic & A=$!
    calibrate & B=$!
    wait $A; wait $B
else
    classic
    calibrate
fi
echo done
