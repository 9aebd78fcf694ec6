#!/bin/bash
# The large-voids round's evaluation (RESULTS.md, "Entrapped voids"). It ran with these commands inline on
# 2026-12-07; they became benchmarks/entrapped_round.sh, word for word, for the second round.
cd "$(dirname "$0")/../../.."
bash benchmarks/entrapped_round.sh benchmarks/logs/large-voids-2026-12-07 \
    runs/generalization-deeplabv3plus-mobilenet-cpu-large-voids dlv3p-large-voids
