#!/bin/bash
# usage: shipping_rule_round.sh LOGDIR RUNDIR NAME -- a DeepLabV3+ round's evaluation by the shipping rule,
# unattended: waits for training (LOGDIR/train.out ends with "real"), judges raw (RUNDIR/last.pt, as NAME-raw) and
# average (RUNDIR/model.pt, as NAME) side by side (shipping_rule_eval.sh: pack, classic 100/101, calibrate; one
# pinned core each), then -- only for the candidate that passes the rule's first two parts (shipping_rule.py
# judge) -- the held-out veto, once, five styles a core: the veto's eight (LOGDIR/veto.out) and, since 2026-12-07,
# the two UV looks added that day, beside the bundled light U-Net's figures on them (LOGDIR/uv.out).
cd "$(dirname "$0")/.."
L=$1; R=$2; N=$3
E=benchmarks/shipping_rule_eval.sh
while ! grep -q "^real" $L/train.out; do sleep 30; done
date
bash $E $N-raw $R/last.pt 0 a $L > $L/eval-a.out 2>&1 &
bash $E $N $R/model.pt 1 b $L > $L/eval-b.out 2>&1 &
wait
date
.venv/bin/python benchmarks/shipping_rule.py judge $L $N-raw $N | tee $L/judge.out
WIN=$(tail -1 $L/judge.out)
[ "$WIN" = none ] && { echo "no candidate passes parts one and two: the held-out veto is not run"; exit 0; }
export OMP_NUM_THREADS=1
G=".venv/bin/python benchmarks/generalization.py --seeds 4 --first-seed 3000 --size 3072"
taskset -c 0 $G --models runs/candidates/$WIN-cal.pt --styles probe-angular granite-fine basalt-dark limestone-pastelike uv-yellow-dim --out $L/heldout-a.json > $L/heldout-a.log 2>&1 &
taskset -c 1 $G --models runs/candidates/$WIN-cal.pt --styles mosaic-scan contrast-ink blue-epoxy uv-fluorescent uv-green-mosaic --out $L/heldout-b.json > $L/heldout-b.log 2>&1 &
wait
date
echo "held-out done for $WIN"
# part four (2026-12-07): the light U-Net's own figures on the two UV looks added that day, the bar beside the veto's
taskset -c 0 $G --models light_unet --styles uv-yellow-dim --out $L/uv-light-unet-a.json > $L/uv-light-unet-a.log 2>&1 &
taskset -c 1 $G --models light_unet --styles uv-green-mosaic --out $L/uv-light-unet-b.json > $L/uv-light-unet-b.log 2>&1 &
wait
date
.venv/bin/python benchmarks/shipping_rule.py veto $L/heldout-a.log $L/heldout-b.log > $L/veto.out
.venv/bin/python benchmarks/shipping_rule.py uv $L/heldout-a.log $L/heldout-b.log \
    --light-unet $L/uv-light-unet-a.log $L/uv-light-unet-b.log > $L/uv.out
cat $L/veto.out $L/uv.out
