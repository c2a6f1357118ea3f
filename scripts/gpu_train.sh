#!/usr/bin/env bash
# Start the equal-budget GPU training runs behind the shipped model (weights/README.md) side by side on one
# GPU: by default diffusion + prior (dp) and the plain regression baseline (rg), seeds 0 and 1.
#
#   bash scripts/gpu_train.sh STEPS [SEEDS] [ARMS]     # on the GPU machine, from the repository root
#
# ARMS (default "dp rg") may add rf: diffusion + prior with a self-refining second step, the from-scratch
# test of docs/EXPERIMENTS.md, with the eighth session's shares (--final-step-share 0.4 --refine-share 0.4,
# where dp has 0.5 and 0). The machine's 16 cores fit four runs at full pace, so add rf with one seed:
#   bash scripts/gpu_train.sh 8000 0 "dp rg rf"
#
# Data is read from .data/ (a git-ignored copy of ../shared/data/sice and ../shared/data/normal), and
# segment-anything from a wheel in .whl/, since that machine has no network. Each run starts in its
# own session (setsid), so it outlives the call that started it; logs and checkpoints go to /tmp/runs.
# Running the script again resumes every run from its last saved state (every 250 steps).
set -u
REPO=$PWD
STEPS=${1:?usage: gpu_train.sh STEPS [SEEDS] [ARMS]}
SEEDS=${2:-"0 1"}
ARMS=${3:-"dp rg"}
for arm in $ARMS; do  # checked before anything starts, so a typo leaves no run half-launched
  case $arm in dp|rg|rf) ;; *) echo "unknown arm $arm (dp, rg or rf)" >&2; exit 2;; esac
done
python3 -m pip install -q --no-index --no-deps --no-compile --no-build-isolation --target /tmp/site .whl/*.whl "$REPO" \
    >/tmp/pip.log 2>&1 || { cat /tmp/pip.log; exit 1; }
export PYTHONPATH=/tmp/site OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1
mkdir -p /tmp/runs && cd /tmp/runs || exit 1
# 16 CPU cores: 4 runs, each 3 batch-making workers (one thread each) plus a training process (2 threads).
COMMON=(--data "$REPO/.data/sice,$REPO/.data/normal" --steps "$STEPS" --batch-size 16 --crop 128 --save-every 250
        --workers 3 --threads 2)
start() {  # NAME ARGS...: start one run unless it is still running (a second one would share its state file)
  local name=$1; shift
  if pgrep -f -- "--out /tmp/runs/$name/" >/dev/null; then echo "$name is still running"; return; fi
  setsid nohup python3 -m lowlight_cli -v train "${COMMON[@]}" "$@" >>"/tmp/runs/$name.log" 2>&1 </dev/null &
}
for seed in $SEEDS; do
  for arm in $ARMS; do
    case $arm in
      dp) start "dp$seed" --seed "$seed" --mean-start --prior-map-scale 8 --out "/tmp/runs/dp$seed/lowlight-default.safetensors";;
      rg) start "rg$seed" --seed "$seed" --no-diffusion --prior none --out "/tmp/runs/rg$seed/regression.safetensors";;
      rf) start "rf$seed" --seed "$seed" --mean-start --prior-map-scale 8 --final-step-share 0.4 --refine-share 0.4 \
            --out "/tmp/runs/rf$seed/refine.safetensors";;
    esac
  done
done
