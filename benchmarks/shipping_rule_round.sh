#!/bin/bash
# usage: shipping_rule_round.sh LOGDIR RUNDIR NAME -- a DeepLabV3+ round's evaluation by the shipping rule,
# unattended: waits for training (LOGDIR/train.out ends with "real"), judges raw (RUNDIR/last.pt, as NAME-raw) and
# average (RUNDIR/model.pt, as NAME) side by side (shipping_rule_eval.sh: pack, classic 100/101, calibrate; one
# pinned core each), then -- only for the candidate that passes the rule's first two parts (shipping_rule.py
# judge) -- the held-out veto, once, five styles a core: the veto's eight (LOGDIR/veto.out) and, since 2026-12-07,
# the two UV looks added that day, beside the bundled light U-Net's figures on them (LOGDIR/uv.out), by
# shipping_rule_heldout.sh.
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
bash benchmarks/shipping_rule_heldout.sh $L runs/candidates/$WIN-cal.pt
