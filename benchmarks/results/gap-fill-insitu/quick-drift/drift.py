"""Whole-model times measured now (an ``evaluate.py --quick`` run from an empty store) against
the ground truth the shipped bundle is scored on (measured 2026-11-27), model by model.
Usage: python drift.py QUICK.json[.gz] TRUTH.json > drift.txt"""
import gzip
import json
import statistics
import sys


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)["models"]


now, then = load(sys.argv[1]), {m["model"]: m for m in load(sys.argv[2])}
ratios = {}
for m in now:
    old = then.get(m["model"])
    if old and old.get("measured_ms") and m.get("measured_ms"):
        ratios.setdefault(m["family"], []).append(m["measured_ms"] / old["measured_ms"])
every = [r for rs in ratios.values() for r in rs]
print(f"{len(every)} models; median now / then {statistics.median(every):.3f}")
for family, rs in ratios.items():
    print(f"{family}: median {statistics.median(rs):.3f} ({', '.join(f'{r:.3f}' for r in rs)})")
