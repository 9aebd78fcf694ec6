#!/bin/bash
# The 85/15 soup (RESULTS.md, "Soups of round two and the epoxy candidate", the third soup), unattended. Core 0: its
# classic 100/101 and 8192² slabs 300-303 reads; core 1 meanwhile: the 75/25 soup's calibration (information only)
# and the 85/15 soup's (used only if the rule reaches part two). Then the rounds' rule on 300-303; if met, the
# confirmation on fresh 8192² slabs 304-307 (never read before; within 20 % of their truth's count, air within
# +-0.30); if met, parts one and two (judge); if passed, the held-out half once.
cd "$(dirname "$0")/../../../.."
D=benchmarks/logs/entrapped-voids-2026-12-07/soups; L=$D/s85; N=dlv3p-soup85
mkdir -p $L
export OMP_NUM_THREADS=1
date
G=".venv/bin/python benchmarks/generalization.py --models runs/candidates/$N.pt --styles classic"
(taskset -c 0 $G --seeds 2 --first-seed 100 --size 2048 --workdir benchmarks/work/classic-2048-a --out $L/classic-$N.json > $L/classic-$N.log 2>&1
 taskset -c 0 $G --seeds 2 --first-seed 300 --size 8192 --workdir benchmarks/work/classic-8192 --out $L/large-a.json > $L/large-a.log 2>&1
 taskset -c 0 $G --seeds 2 --first-seed 302 --size 8192 --workdir benchmarks/work/classic-8192 --out $L/large-b.json > $L/large-b.log 2>&1) &
(taskset -c 1 .venv/bin/bigseg calibrate runs/candidates/dlv3p-soup75.pt -o runs/candidates/dlv3p-soup75-cal.pt --workdir benchmarks/work/calibration-b > $D/s75/calibrate-dlv3p-soup75.log 2>&1
 taskset -c 1 .venv/bin/bigseg calibrate runs/candidates/$N.pt -o runs/candidates/$N-cal.pt --workdir benchmarks/work/calibration-b > $L/calibrate-$N.log 2>&1) &
wait
date
.venv/bin/python benchmarks/shipping_rule.py entrapped $L $N > $L/rule.out 2>&1; ok=$?
cat $L/rule.out
[ $ok = 0 ] || { echo "round rule not met on 300-303: no confirmation, no shipping judge"; exit 0; }
taskset -c 0 $G --seeds 2 --first-seed 304 --size 8192 --workdir benchmarks/work/classic-8192 --out $L/fresh-a.json > $L/fresh-a.log 2>&1 &
taskset -c 1 $G --seeds 2 --first-seed 306 --size 8192 --workdir benchmarks/work/classic-8192 --out $L/fresh-b.json > $L/fresh-b.log 2>&1 &
wait
date
.venv/bin/python benchmarks/shipping_rule.py entrapped $L $N --parts fresh-a fresh-b > $L/fresh.out 2>&1; ok=$?
cat $L/fresh.out
[ $ok = 0 ] || { echo "not confirmed on fresh slabs 304-307: no shipping judge"; exit 0; }
.venv/bin/python benchmarks/shipping_rule.py judge $L $N | tee $L/judge.out
[ "$(tail -1 $L/judge.out)" = $N ] || { echo "parts one and two not passed: no held-out look"; exit 0; }
bash benchmarks/shipping_rule_heldout.sh $L runs/candidates/$N-cal.pt
date
