#!/bin/bash
# usage: shipping_rule_heldout.sh LOGDIR CANDIDATE-cal.pt -- the shipping rule's held-out parts, once, for a
# candidate that passed parts one and two: the veto's eight styles and the two UV looks added on 2026-12-07, four
# 3072² slabs each (seeds 3000-3003), five styles a core (LOGDIR/heldout-{a,b}.log); then the bundled light U-Net on
# the two UV looks, part four's bar (LOGDIR/uv-light-unet-{a,b}.log); and the verdicts (LOGDIR/veto.out, uv.out).
# Split out of shipping_rule_round.sh on 2026-12-07, so that a round judged its own way can call it.
cd "$(dirname "$0")/.."
L=$1; C=$2
[ -n "$C" ] || { echo "usage: $0 LOGDIR CANDIDATE-cal.pt" >&2; exit 2; }
export OMP_NUM_THREADS=1
G=".venv/bin/python benchmarks/generalization.py --seeds 4 --first-seed 3000 --size 3072"
date
taskset -c 0 $G --models $C --styles probe-angular granite-fine basalt-dark limestone-pastelike uv-yellow-dim --out $L/heldout-a.json > $L/heldout-a.log 2>&1 &
taskset -c 1 $G --models $C --styles mosaic-scan contrast-ink blue-epoxy uv-fluorescent uv-green-mosaic --out $L/heldout-b.json > $L/heldout-b.log 2>&1 &
wait
date
echo "held-out done for $C"
taskset -c 0 $G --models light_unet --styles uv-yellow-dim --out $L/uv-light-unet-a.json > $L/uv-light-unet-a.log 2>&1 &
taskset -c 1 $G --models light_unet --styles uv-green-mosaic --out $L/uv-light-unet-b.json > $L/uv-light-unet-b.log 2>&1 &
wait
date
.venv/bin/python benchmarks/shipping_rule.py veto $L/heldout-a.log $L/heldout-b.log > $L/veto.out
.venv/bin/python benchmarks/shipping_rule.py uv $L/heldout-a.log $L/heldout-b.log \
    --light-unet $L/uv-light-unet-a.log $L/uv-light-unet-b.log > $L/uv.out
cat $L/veto.out $L/uv.out
