"""Mean of the predictions of the three training seeds of the shipped samples, scored on the
same ground truth (``../blocked-flops/eval-<backend>-new-<seed>/``).  Measures nothing.
Usage: python ensemble.py > ensemble.txt"""
import gzip
import json

import numpy as np

for backend in ("ort-cpu", "tvm-llvm"):
    runs = []
    for seed in range(3):
        path = f"../blocked-flops/eval-{backend}-new-{seed}/evaluate-{backend}.json.gz"
        with gzip.open(path, "rt") as f:
            runs.append({m["model"]: m for m in json.load(f)["models"]})
    names = [k for k, m in runs[0].items() if m.get("measured_ms") and m.get("predicted_ms")]
    truth = np.array([runs[0][k]["measured_ms"] for k in names])
    preds = np.array([[r[k]["predicted_ms"] for k in names] for r in runs])

    def acc(p):
        return 100 * np.mean(np.abs(p / truth - 1) <= 0.10)

    seeds = " / ".join(f"{acc(p):.1f}" for p in preds)
    print(f"{backend}: {len(names)} models; within ±10 %: seeds {seeds} %, "
          f"mean of the three {acc(preds.mean(axis=0)):.1f} %")
