#!/usr/bin/env python3
"""Times the original Keras mini-Xception on TensorFlow (CPU), same protocol as inference-bench.

Usage: tf_bench.py EMOTION_MODEL_HDF5 BATCH ITERATIONS THREADS
"""
import json
import sys
import time

import numpy as np
import tensorflow as tf

src, batch, iters, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
model = tf.keras.models.load_model(src, compile=False)
rng = np.random.default_rng(1)
pixels = rng.integers(0, 256, (batch, 64, 64, 1)).astype(np.float32)
x = tf.constant((pixels / 255.0 - 0.5) * 2.0)
run = tf.function(lambda t: model(t, training=False))
for _ in range(10):
    run(x).numpy()
lat = []
start = time.perf_counter()
for _ in range(iters):
    t = time.perf_counter()
    run(x).numpy()
    lat.append((time.perf_counter() - t) * 1000)
total = time.perf_counter() - start
lat.sort()
pct = lambda p: lat[round((len(lat) - 1) * p)]
print(json.dumps({"runtime": f"tensorflow {tf.__version__}", "batch": batch,
                  "images_per_s": round(batch * iters / total, 1), "p50_ms": round(pct(0.5), 3), "p99_ms": round(pct(0.99), 3)}))
