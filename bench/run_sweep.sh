#!/usr/bin/env bash
# Runs one sweep and writes bench/results/<name>.{json.gz,md} + PNG plots (the raw JSON gzipped:
# a full sweep's per-round times are over 1 MiB).
# usage: bench/run_sweep.sh [quick|targets|full] [devices, e.g. cpu or cuda or cpu,cuda] [name]
set -euo pipefail
sweep=${1:-full}
devices=${2:-cpu}
name=${3:-${devices//,/_}_${sweep}}
cd "$(dirname "$0")/.."
python -m pytest bench/ -q --sweep "$sweep" --devices "$devices" \
    --benchmark-json="bench/results/${name}.json"
gzip -9f "bench/results/${name}.json"
python bench/report.py "bench/results/${name}.json.gz"
