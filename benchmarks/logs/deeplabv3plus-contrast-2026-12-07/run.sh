#!/bin/bash
# The contrast round's evaluation, unattended, by the shipping rule (RESULTS.md). It ran as a script of its own here, with
# the steps that are now benchmarks/shipping_rule_round.sh (and the judge.py / veto.py that are now
# benchmarks/shipping_rule.py, which give its judge.out and veto.out again byte for byte).
cd "$(dirname "$0")/../../.."
exec bash benchmarks/shipping_rule_round.sh benchmarks/logs/deeplabv3plus-contrast-2026-12-07 \
    runs/generalization-deeplabv3plus-mobilenet-cpu-contrast dlv3p-contrast
