#!/usr/bin/env bash
# The GPU checks of issue 6 in one call on a lent GPU machine (its python3 has torch,
# torchvision and timm; cnnkit runs from the checkout). Writes everything under $OUT.
set -u
OUT=${OUT:-/tmp/cnnkit-gpu}
mkdir -p "$OUT"
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/card.txt"
python3 -c "import torch, sys; print('torch', torch.__version__, 'python', sys.version.split()[0])"
timeout 330 python3 bench/gpu_resnet50.py --batch 256 --steps 20 --out "$OUT/resnet50.json" 2>&1 | tee "$OUT/resnet50.txt"
timeout 90 python3 -m cnnkit profile resnet50 --device cuda --batch 256 --mode train --dtype bf16 \
  --channels-last --layers --warmup 5 --iters 10 --json > "$OUT/profile_layers.json" 2> "$OUT/profile_layers.err"
python3 - "$OUT/profile_layers.json" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print("profile --layers failed:", e); sys.exit()
l = d["layers"]
print(f"per-layer sum {l['sum_ms']:.1f} ms vs end to end {l['end_to_end_ms']:.1f} ms; slowest {l['slowest']}")
PY
timeout 90 python3 bench/train_overhead.py recipes/lenet.yaml --device cuda --epochs 3 --repeats 3 2>&1 | tail -8 | tee "$OUT/train_overhead.txt"
