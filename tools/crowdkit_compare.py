#!/usr/bin/env python3
"""Emofy's online consensus vs Toloka crowd-kit on the same simulated crowds.

Runs `emofy-simulate` for each scenario and seed, then crowd-kit's
MajorityVote, Wawa and DawidSkene on its labels.csv (the labels Emofy's
routing collected), and MajorityVote and DawidSkene on fixed5.csv (the same
crowd with a fixed overlap of 5 random players per image, the usual
baseline). Prints accuracy on the scored (non-gold) images, averaged over the
seeds, with labels spent per scored image (gold rounds included). Dev tool,
not run in CI:

    python3 -m venv /tmp/ck && /tmp/ck/bin/pip install crowd-kit "scikit-learn<1.6"
    (crowd-kit 1.4.2 predates scikit-learn 1.6's estimator tags)
    cargo build --release --bin emofy-simulate
    /tmp/ck/bin/python tools/crowdkit_compare.py target/release/emofy-simulate [--gold N]
"""
import json
import statistics
import subprocess
import sys
import tempfile

import pandas as pd
from crowdkit.aggregation import DawidSkene, MajorityVote, Wawa

SEEDS = (1, 2, 3, 4, 5)


def accuracy(algo, labels, truth):
    pred = algo.fit_predict(labels[["worker", "task", "label"]])
    return (pred.reindex(truth.index) == truth).mean()


def run(binary, copy_p, seed, extra):
    out = tempfile.mkdtemp()
    res = subprocess.run([binary, "--out", out, "--copy-p", str(copy_p), "--seed", str(seed), *extra],
                         check=True, capture_output=True, text=True)
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    labels = pd.read_csv(f"{out}/labels.csv")
    fixed = pd.read_csv(f"{out}/fixed5.csv")
    truth = pd.read_csv(f"{out}/truth.csv").set_index("task")["truth"]
    emofy = pd.read_csv(f"{out}/emofy.csv").set_index("task")["consensus"]
    return {
        "labels/image": summary["labels_per_image"],
        "Emofy": (emofy.reindex(truth.index) == truth).mean(),
        "MV": accuracy(MajorityVote(), labels, truth),
        "Wawa": accuracy(Wawa(), labels, truth),
        "DS": accuracy(DawidSkene(n_iter=100), labels, truth),
        "MV@5": accuracy(MajorityVote(), fixed, truth),
        "DS@5": accuracy(DawidSkene(n_iter=100), fixed, truth),
    }


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/emofy-simulate"
    extra = sys.argv[2:]
    cols = ["labels/image", "Emofy", "MV", "Wawa", "DS", "MV@5", "DS@5"]
    print(f"seeds {SEEDS}, extra args {extra}")
    print("| copiers' p | " + " | ".join(cols) + " |")
    print("| ---: " * (len(cols) + 1) + "|")
    for copy_p in (0.0, 0.5, 0.7, 0.9):
        rows = [run(binary, copy_p, s, extra) for s in SEEDS]
        mean = {c: statistics.mean(r[c] for r in rows) for c in cols}
        cells = [f"{mean['labels/image']:.2f}"] + [f"{mean[c]:.3f}" for c in cols[1:]]
        print(f"| {copy_p} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
