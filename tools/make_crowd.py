#!/usr/bin/env python3
"""Writes a large synthetic label file (task,worker,label) with its truth,
for the `emofy aggregate` scale bench (docs/benchmarks.md). Workers are
right with their own accuracy (0.55-0.95), otherwise pick a random wrong
class; the class shares are skewed. Standard library only.

    python3 tools/make_crowd.py --rows 10000000 --out /tmp/big
"""
import argparse
import os
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--per-task", type=int, default=5)
    ap.add_argument("--workers", type=int, default=20_000)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    k = a.classes
    shares = [0.5 ** (c + 1) for c in range(k)]
    shares[-1] *= 2
    acc = [rng.uniform(0.55, 0.95) for _ in range(a.workers)]
    tasks = a.rows // a.per_task
    with open(os.path.join(a.out, "labels.csv"), "w") as f, \
            open(os.path.join(a.out, "truth.csv"), "w") as t:
        f.write("task,worker,label\n")
        t.write("task,label\n")
        for i in range(tasks):
            truth = rng.choices(range(k), shares)[0]
            t.write(f"t{i},{truth}\n")
            lines = []
            for w in rng.sample(range(a.workers), a.per_task):
                if rng.random() < acc[w]:
                    label = truth
                else:
                    label = rng.randrange(k - 1)
                    label += label >= truth
                lines.append(f"t{i},w{w},{label}\n")
            f.write("".join(lines))


if __name__ == "__main__":
    main()
