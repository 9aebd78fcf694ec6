#!/bin/bash
# #29: the UV round (configs/generalization-deeplabv3plus-mobilenet-cpu-uv.yaml), trained and then judged unattended
# by the shipping rule with its fourth part (benchmarks/shipping_rule_round.sh).
cd "$(dirname "$0")/../../.."
L=benchmarks/logs/deeplabv3plus-uv-2026-12-07
(date; time .venv/bin/bigseg train --config generalization-deeplabv3plus-mobilenet-cpu-uv) > $L/train.out 2>&1
exec bash benchmarks/shipping_rule_round.sh $L runs/generalization-deeplabv3plus-mobilenet-cpu-uv dlv3p-uv
