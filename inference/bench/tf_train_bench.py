#!/usr/bin/env python3
"""Times training the original Keras mini-Xception on TensorFlow (CPU): the
same architecture, weights and batch as train-bench, Adam, cross-entropy,
batch norm in training mode. Prints one JSON line like train-bench.

Usage: tf_train_bench.py EMOTION_MODEL_HDF5 BATCH STEPS THREADS
"""
import json
import sys
import time

import numpy as np
import tensorflow as tf

src, batch, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
model = tf.keras.models.load_model(src, compile=False)
model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
rng = np.random.default_rng(1)
x = rng.uniform(-1.0, 1.0, (batch, 64, 64, 1)).astype(np.float32)
y = rng.integers(0, 7, (batch,)).astype(np.int32)
for _ in range(3):
    model.train_on_batch(x, y)
start = time.perf_counter()
for _ in range(steps):
    model.train_on_batch(x, y)
total = time.perf_counter() - start
print(json.dumps({"runtime": f"tensorflow {tf.__version__}", "batch": batch,
                  "images_per_s": round(batch * steps / total, 1)}))
