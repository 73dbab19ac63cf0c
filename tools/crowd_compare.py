#!/usr/bin/env python3
"""Emofy's truth inference vs Toloka crowd-kit 1.4.2 on the same labels.

For each label set: crowd-kit's MajorityVote, Wawa, DawidSkene, GLAD and
MACE, then `emofy aggregate --method mv|em|online`, and the online method
again on 5 shuffles of the rows. Accuracy is measured on the tasks with a
known truth. Label sets:

* the real crowds in ../shared/data/crowd/<name>/{answer,truth}.csv
  (read in place, never copied);
* with --simulate BIN, the simulated crowds of `emofy-simulate` (labels
  the game's routing collected), seeds 1-5 of each scenario (`base` at
  copiers' p = 0.0 and 0.7, `skewed`, `confused`, `prolific`, `k4`,
  `realistic`: see `emofy_game::sim::CrowdSpec::scenario`). On these the
  column "emofy game" is the game's own answer: the server's truth pass
  over the same labels, which also knows the shown suggestions, decoys and
  gold rounds (crowd-kit and `emofy aggregate` see only task, worker, label).

Dev tool, not run in CI:

    python3 -m venv /tmp/ck && /tmp/ck/bin/pip install crowd-kit==1.4.2 "scikit-learn<1.6" "pandas<2.3"
    cargo build --release --bin emofy --bin emofy-simulate
    /tmp/ck/bin/python tools/crowd_compare.py --emofy target/release/emofy \\
        [--data ../shared/data/crowd] [--simulate target/release/emofy-simulate]
"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile

import pandas as pd
from crowdkit.aggregation import GLAD, MACE, DawidSkene, MajorityVote, Wawa

METHODS = ["MV", "Wawa", "DS", "GLAD", "MACE", "emofy mv", "emofy em", "emofy online", "online x5",
           "emofy game"]


def crowdkit(labels, truth):
    df = labels[["worker", "task", "label"]]
    out = {}
    for name, algo in [
        ("MV", MajorityVote()),
        ("Wawa", Wawa()),
        ("DS", DawidSkene(n_iter=100)),
        ("GLAD", GLAD(n_iter=100)),
        ("MACE", MACE(n_iter=100, random_state=0)),
    ]:
        try:
            pred = algo.fit_predict(df)
            out[name] = (pred.reindex(truth.index) == truth).mean()
        except Exception as e:  # a method that fails on a set is reported, not fatal
            print(f"  {name}: {e}", file=sys.stderr)
            out[name] = float("nan")
    return out


def emofy(binary, labels_csv, truth, method, workdir):
    out = os.path.join(workdir, f"tasks-{method}.csv")
    subprocess.run([binary, "aggregate", labels_csv, "--method", method, "--out", out],
                   check=True, capture_output=True, text=True)
    pred = pd.read_csv(out, dtype={"task": str, "label": str}).set_index("task")["label"]
    return (pred.reindex(truth.index) == truth).mean()


def evaluate(binary, labels, truth, workdir):
    """labels: DataFrame task/worker/label (strings); truth: Series task -> label."""
    path = os.path.join(workdir, "labels.csv")
    labels[["task", "worker", "label"]].to_csv(path, index=False)
    row = crowdkit(labels, truth)
    for m in ("mv", "em", "online"):
        row[f"emofy {m}"] = emofy(binary, path, truth, m, workdir)
    shuffled = []
    for seed in range(5):
        order = list(range(len(labels)))
        random.Random(seed).shuffle(order)
        p = os.path.join(workdir, f"shuffled-{seed}.csv")
        labels.iloc[order][["task", "worker", "label"]].to_csv(p, index=False)
        shuffled.append(emofy(binary, p, truth, "online", workdir))
    row["online x5"] = statistics.mean(shuffled)
    row["emofy game"] = float("nan")
    return row


def real(binary, folder):
    labels = pd.read_csv(os.path.join(folder, "answer.csv"), dtype=str)
    labels = labels.rename(columns={"question": "task", "answer": "label"})
    truth = pd.read_csv(os.path.join(folder, "truth.csv"), dtype=str)
    truth = truth.rename(columns={"question": "task", "truth": "label"}).set_index("task")["label"]
    with tempfile.TemporaryDirectory() as d:
        return evaluate(binary, labels, truth, d)


def simulated(binary, simulate, scenario, copy_p, seed):
    with tempfile.TemporaryDirectory() as d:
        args = [simulate, "--out", d, "--scenario", scenario, "--seed", str(seed)]
        if copy_p is not None:
            args += ["--copy-p", str(copy_p)]
        subprocess.run(args, check=True, capture_output=True, text=True)
        labels = pd.read_csv(os.path.join(d, "labels.csv"), dtype=str)
        truth = pd.read_csv(os.path.join(d, "truth.csv"), dtype=str).set_index("task")["truth"]
        row = evaluate(binary, labels, truth, d)
        game = pd.read_csv(os.path.join(d, "emofy.csv"), dtype=str).set_index("task")["consensus"]
        row["emofy game"] = (game.reindex(truth.index) == truth).mean()
        return row


def show(name, row):
    print(f"| {name} | " + " | ".join(f"{row[m]:.4f}" for m in METHODS) + " |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--emofy", default="target/release/emofy")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data", "crowd"))
    ap.add_argument("--simulate")
    ap.add_argument("--scenarios", default="skewed,confused,prolific,k4,realistic")
    a = ap.parse_args()
    print("| label set | " + " | ".join(METHODS) + " |")
    print("| --- " + "| ---: " * len(METHODS) + "|")
    if os.path.isdir(a.data):
        for name in sorted(os.listdir(a.data)):
            folder = os.path.join(a.data, name)
            if os.path.isfile(os.path.join(folder, "answer.csv")):
                show(f"{name} (real)", real(a.emofy, folder))
    if a.simulate:
        runs = [("base", 0.0), ("base", 0.7)] + [(s, None) for s in a.scenarios.split(",") if s]
        for scenario, copy_p in runs:
            rows = [simulated(a.emofy, a.simulate, scenario, copy_p, s) for s in (1, 2, 3, 4, 5)]
            mean = {m: statistics.mean(r[m] for r in rows) for m in METHODS}
            p = f", copiers' p = {copy_p}" if copy_p is not None else ""
            show(f"simulated {scenario}{p} (5 seeds)", mean)


if __name__ == "__main__":
    main()
