#!/bin/bash
# Soups of entrapped round two and the epoxy candidate (RESULTS.md, "Entrapped voids as a second population", the
# soups), unattended: each soup's entrapped read on one core (classic 100/101, then the 8192² slabs 300-303), the
# rounds' three-part rule (shipping_rule.py entrapped); the soups that meet it are calibrated (one per core) and
# judged by parts one and two together (shipping_rule.py judge picks the lower median among those passing); the pick
# alone gets the held-out half once (shipping_rule_heldout.sh).
cd "$(dirname "$0")/../../../.."
D=benchmarks/logs/entrapped-voids-2026-12-07/soups
# wait for round five's informational calibration to finish (both cores)
while ! grep -q "^real" benchmarks/logs/entrapped-voids-2026-12-07/round5/calibrate-dlv3p-entrapped5.log; do sleep 15; done
export OMP_NUM_THREADS=1
date
read_one() {  # CORE ALPHA SUFFIX-2048 SUFFIX-8192: each soup reads its own copies of the slabs (a read writes the store's labels)
    local L=$D/s$2 N=dlv3p-soup$2 G=".venv/bin/python benchmarks/generalization.py --models runs/candidates/dlv3p-soup$2.pt --styles classic"
    mkdir -p $L
    taskset -c $1 $G --seeds 2 --first-seed 100 --size 2048 --workdir benchmarks/work/classic-2048$3 --out $L/classic-$N.json > $L/classic-$N.log 2>&1
    taskset -c $1 $G --seeds 2 --first-seed 300 --size 8192 --workdir benchmarks/work/classic-8192$4 --out $L/large-a.json > $L/large-a.log 2>&1
    taskset -c $1 $G --seeds 2 --first-seed 302 --size 8192 --workdir benchmarks/work/classic-8192$4 --out $L/large-b.json > $L/large-b.log 2>&1
}
read_one 0 75 -a "" & read_one 1 50 -b -b & wait
date
PASS=()
for a in 75 50; do
    .venv/bin/python benchmarks/shipping_rule.py entrapped $D/s$a dlv3p-soup$a > $D/s$a/rule.out 2>&1 && PASS+=($a)
    cat $D/s$a/rule.out
done
[ ${#PASS[@]} -gt 0 ] || { echo "no soup met the round rule: no shipping judge"; exit 0; }
core=0
for a in "${PASS[@]}"; do
    cp $D/s$a/classic-dlv3p-soup$a.json $D/
    taskset -c $core .venv/bin/bigseg calibrate runs/candidates/dlv3p-soup$a.pt -o runs/candidates/dlv3p-soup$a-cal.pt \
        --workdir benchmarks/work/calibration-$([ $core = 0 ] && echo a || echo b) > $D/calibrate-dlv3p-soup$a.log 2>&1 &
    core=1
done
wait
date
.venv/bin/python benchmarks/shipping_rule.py judge $D $(printf "dlv3p-soup%s " "${PASS[@]}") | tee $D/judge.out
PICK=$(tail -1 $D/judge.out)
[ "$PICK" != none ] || { echo "parts one and two not passed: no held-out look"; exit 0; }
bash benchmarks/shipping_rule_heldout.sh $D runs/candidates/$PICK-cal.pt
date
