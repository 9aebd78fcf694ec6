#!/bin/bash
# usage: shipping_rule_single.sh LOGDIR SOURCE.pt NAME SUFFIX -- the deeplabv3 shipping rule for one candidate whose
# round has already met its own rule: parts one and two on both cores (shipping_rule_eval.sh ... both: pack to
# runs/candidates/NAME.pt, classic 100/101, calibrate to runs/candidates/NAME-cal.pt, work folders *-SUFFIX), the
# verdict (LOGDIR/judge.out), and -- only if both parts pass -- the held-out half once (shipping_rule_heldout.sh).
# (Entrapped round two's round2/ship.sh, 2026-12-07, was this written out for that round.)
cd "$(dirname "$0")/.."
L=$1; SRC=$2; N=$3; SUF=$4
[ -n "$SUF" ] || { echo "usage: $0 LOGDIR SOURCE.pt NAME SUFFIX" >&2; exit 2; }
date
bash benchmarks/shipping_rule_eval.sh $N $SRC both $SUF $L
.venv/bin/python benchmarks/shipping_rule.py judge $L $N | tee $L/judge.out
[ "$(tail -1 $L/judge.out)" = "$N" ] || { echo "parts one and two not passed: no held-out look"; exit 0; }
bash benchmarks/shipping_rule_heldout.sh $L runs/candidates/$N-cal.pt
date
