#!/bin/bash
# The second large-voids round's evaluation (RESULTS.md, "Entrapped voids"), by benchmarks/entrapped_round.sh.
cd "$(dirname "$0")/../../.."
bash benchmarks/entrapped_round.sh benchmarks/logs/large-voids2-2026-12-07 \
    runs/generalization-deeplabv3plus-mobilenet-cpu-large-voids2 dlv3p-large-voids2
