#!/usr/bin/env python3
"""Emofy's online consensus vs Toloka crowd-kit on the same simulated labels.

Runs `emofy-simulate` for each scenario, then crowd-kit's MajorityVote, Wawa
and DawidSkene on its labels.csv, and prints accuracy against the known
truth side by side, with labels spent per image (Emofy routes adaptively; a
fixed overlap would spend 5). Dev tool, not run in CI:

    python3 -m venv /tmp/ck && /tmp/ck/bin/pip install crowd-kit "scikit-learn<1.6"
    (crowd-kit 1.4.2 predates scikit-learn 1.6's estimator tags)
    cargo build --release --bin emofy-simulate
    /tmp/ck/bin/python tools/crowdkit_compare.py target/release/emofy-simulate
"""
import json
import subprocess
import sys
import tempfile

import pandas as pd
from crowdkit.aggregation import DawidSkene, MajorityVote, Wawa


def run(binary, copy_p, seed):
    out = tempfile.mkdtemp()
    res = subprocess.run([binary, "--out", out, "--copy-p", str(copy_p), "--seed", str(seed)],
                         check=True, capture_output=True, text=True)
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    labels = pd.read_csv(f"{out}/labels.csv")[["worker", "task", "label"]]
    truth = pd.read_csv(f"{out}/truth.csv").set_index("task")["truth"]
    emofy = pd.read_csv(f"{out}/emofy.csv").set_index("task")["consensus"]
    row = {"copy_p": copy_p, "labels/image": summary["labels_per_image"],
           "emofy": (emofy == truth).mean()}
    for name, algo in [("MajorityVote", MajorityVote()), ("Wawa", Wawa()),
                       ("DawidSkene", DawidSkene(n_iter=100))]:
        pred = algo.fit_predict(labels)
        row[name] = (pred.reindex(truth.index) == truth).mean()
    return row


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/emofy-simulate"
    print("| copiers' p | labels/image | Emofy | MajorityVote | Wawa | DawidSkene |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for copy_p in (0.0, 0.5, 0.7, 0.9):
        r = run(binary, copy_p, 7)
        print(f"| {copy_p} | {r['labels/image']:.2f} | {r['emofy']:.3f} | {r['MajorityVote']:.3f} "
              f"| {r['Wawa']:.3f} | {r['DawidSkene']:.3f} |")


if __name__ == "__main__":
    main()
