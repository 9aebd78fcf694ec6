#!/bin/bash
# usage: entrapped_round.sh LOGDIR RUNDIR NAME -- a round's evaluation on entrapped voids (RESULTS.md, "Entrapped
# voids"), unattended: waits for training (LOGDIR/train.out ends with "real"), packs RUNDIR/model.pt to half
# precision (runs/candidates/NAME.pt); core 0 reads classic 100/101 (2048²) then the 8192² classic slabs 300/301,
# core 1 the 8192² slabs 302/303 (benchmarks/work/classic-8192, 11 entrapped voids in the truth); then the counts
# and the classic bar (pooled void IoU >= 0.875). (The first large-voids round's run.sh did this inline.)
cd "$(dirname "$0")/.."
L=$1; R=$2; N=$3
[ -n "$N" ] || { echo "usage: $0 LOGDIR RUNDIR NAME" >&2; exit 2; }
while ! grep -q "^real" $L/train.out; do sleep 15; done
date
mkdir -p runs/candidates
.venv/bin/python benchmarks/pack_checkpoint.py $R/model.pt runs/candidates/$N.pt --half
export OMP_NUM_THREADS=1
G=".venv/bin/python benchmarks/generalization.py --models runs/candidates/$N.pt --styles classic"
(taskset -c 0 $G --seeds 2 --first-seed 100 --size 2048 --workdir benchmarks/work/classic-2048-a --out $L/classic-$N.json > $L/classic-$N.log 2>&1
 taskset -c 0 $G --seeds 2 --first-seed 300 --size 8192 --workdir benchmarks/work/classic-8192 --out $L/large-a.json > $L/large-a.log 2>&1) &
taskset -c 1 $G --seeds 2 --first-seed 302 --size 8192 --workdir benchmarks/work/classic-8192 --out $L/large-b.json > $L/large-b.log 2>&1 &
wait
date
grep "entrapped" $L/large-a.log $L/large-b.log
.venv/bin/python benchmarks/shipping_rule.py classic $L $N --min 0.875
