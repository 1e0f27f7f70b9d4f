#!/usr/bin/env bash
# Issue 14's GPU figures in one call on a lent GPU (its python3 has torch; cnnkit runs from
# the checkout): bench/gpu_streaming.py (stream vs GPU-resident synthetic data, compile vs
# eager), then issue 6's shorter checks while the ~9-minute budget lasts. Writes under $OUT.
set -u
OUT=${OUT:-/tmp/cnnkit-gpu}
BUDGET=${BUDGET:-540}
mkdir -p "$OUT"
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/card.txt"
timeout 420 python3 bench/gpu_streaming.py --out "$OUT/streaming" 2>&1 | tee "$OUT/gpu_streaming.txt"
rm -rf "$OUT/streaming/jpeg" "$OUT"/streaming/run-*/*.pt  # data and weights: not results
left=$((BUDGET - SECONDS))
if [ "$left" -gt 100 ]; then
  timeout 90 python3 -m cnnkit profile resnet50 --device cuda --batch 256 --mode train --dtype bf16 \
    --channels-last --warmup 5 --iters 10 --json > "$OUT/profile_train.json" 2> "$OUT/profile_train.err"
else
  echo "skipped issue 6's profile: ${left} s left" | tee "$OUT/skipped.txt"
fi
echo "session wall: ${SECONDS} s" | tee "$OUT/wall.txt"
