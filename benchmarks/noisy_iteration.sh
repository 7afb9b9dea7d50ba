#!/usr/bin/env bash
# Training iteration cost under noise vs noiseless: the default hybrid (hea8x6, batch 256, both
# regularizers), one thread, 300 iterations on 20,000 samples, trained on `trajectories` (one trajectory per
# row) under each noise model and on `torch` without noise; alternating, ROUNDS times (default 2).
# Prints each run's training wall time (metrics.json's wall_time_s) and the ratio to the noiseless run of
# the same round, with the machine's load.
#
#   bash benchmarks/noisy_iteration.sh [OUT_DIR] [ROUNDS]
set -euo pipefail
out=${1:-runs/noisy-iteration}
rounds=${2:-2}
mkdir -p "$out"
for round in $(seq 1 "$rounds"); do
  base=""
  for noise in none depolarizing=0.02 amplitude_damping=0.01; do
    dir="$out/$noise-$round"
    rm -rf "$dir"
    args=(--samples 20000 --threads 1 --set max_iterations=300 --out "$dir")
    [ "$noise" != none ] && args+=(--noise "$noise")
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    hqf run "${args[@]}" > "$dir.log" 2>&1
    wall=$(python -c "import json; print(json.load(open('$dir/metrics.json'))['wall_time_s'])")
    [ -z "$base" ] && base=$wall
    python -c "print(f'round $round  noise $noise  trained on', __import__('json').load(open('$dir/metrics.json'))['train_backend'], f' {$wall:.2f} s  ratio {$wall / $base:.2f}  load $load')"
  done
done
