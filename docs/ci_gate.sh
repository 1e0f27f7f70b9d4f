#!/usr/bin/env bash
# Gate a recipe in CI: size and compute first (no training), then train it and gate accuracy.
# usage: docs/ci_gate.sh RECIPE MAX_PARAMS MAX_MACS MIN_ACCURACY [--set KEY=VALUE ...]
# Exit code 0: every gate passed; 1: a gate failed (its one-line reason is on stderr).
set -euo pipefail
recipe=$1 max_params=$2 max_macs=$3 min_accuracy=$4
shift 4
run=${RUN_DIR:-runs/ci-$recipe}

# 1. Size: cnnkit params exits 1 when a budget is exceeded (no torch import, well under 1 s).
counts=$(cnnkit params "$recipe" "$@" --max-params "$max_params" --max-macs "$max_macs" --json)
jq -r '"size ok: \(.totals.params) parameters, \(.totals.macs) MACs"' <<< "$counts"

# 2. Train into a fixed folder; --json keeps stdout to one document.
summary=$(cnnkit train "$recipe" "$@" --out "$run" --overwrite --json)
jq -r '"trained: \(.epochs) epoch(s), best \(.best.metric) \(.best.value * 10000 | round / 100)%"' \
  <<< "$summary"

# 3. Accuracy on the held-out test split; the report is printed either way.
if ! report=$(cnnkit eval "$run" --min-accuracy "$min_accuracy" --json); then
  jq -r '"accuracy FAILED: \(.accuracy * 10000 | round / 100)% on \(.samples) test images"' \
    <<< "$report"
  exit 1
fi
jq -r '"accuracy ok: \(.accuracy * 10000 | round / 100)% on \(.samples) test images"' <<< "$report"
