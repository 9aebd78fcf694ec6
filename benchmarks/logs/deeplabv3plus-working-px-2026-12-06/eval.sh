#!/bin/bash
# usage: eval.sh NAME SOURCE.pt CORE SUFFIX -- the marathon round's evaluation (pack, classic 100/101, calibrate on
# the 16 validation slabs, pinned to CORE), its logs written here.
exec bash /work/main/benchmarks/logs/deeplabv3plus-marathon-fit-2026-12-06/eval.sh "$1" "$2" "$3" "$4" \
  benchmarks/logs/deeplabv3plus-working-px-2026-12-06
