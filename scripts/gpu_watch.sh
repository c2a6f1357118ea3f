#!/usr/bin/env bash
# After N seconds, print each GPU run's progress and copy its latest checkpoint to $OUT.
#   bash scripts/gpu_watch.sh [SECONDS]
: "${OUT:?set OUT to the folder that comes back from the device machine}"
shopt -s nullglob
sleep "${1:-0}"
for log in /tmp/runs/*.log; do
  echo "== $log"; tr '\r' '\n' < "$log" | grep -E "step|rror|note|wrote|loaded|TrainingData" | tail -3
done
for f in /tmp/runs/*/*.safetensors; do
  case $f in *.state.safetensors) ;; *) cp "$f" "$OUT/$(basename "$(dirname "$f")").safetensors";; esac
done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
