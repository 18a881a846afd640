"""The reference workload's session baselines against the models' times, between two stores.

    python reference_baselines.py EARLIER.sqlite LATER.sqlite   (writes reference_baselines.json)

Each measurement keeps its session's reference baseline (``reference_ms``); the models timed in
both stores give the models' move, the baselines the reference's.  If the reference followed the
host's speed, the two would move together.
"""
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def read(path: str) -> dict:
    rows = sqlite3.connect(path).execute(
        "select key, median_ms, reference_ms, timestamp from measurements where status = 'ok'")
    out = {}
    for key, ms, ref, when in rows:
        out.setdefault(key, []).append((ms, ref, when))
    return out


def main() -> None:
    a, b = read(sys.argv[1]), read(sys.argv[2])
    common = [k for k in a if k in b]
    ratio = np.array([np.median([r[0] for r in b[k]]) / np.median([r[0] for r in a[k]])
                      for k in common])

    def refs(d):  # each session baseline weighted by the measurements it served
        values = [r[1] for rows in d.values() for r in rows if r[1]]
        return {"median_ms": float(np.median(values)), "distinct": sorted(set(values)),
                "from": min(r[2] for rows in d.values() for r in rows),
                "to": max(r[2] for rows in d.values() for r in rows)}

    out = {"earlier": refs(a), "later": refs(b), "model_measurements_in_both": len(common),
           "models_later_over_earlier": {"median": float(np.median(ratio)),
                                         "p10": float(np.percentile(ratio, 10)),
                                         "p90": float(np.percentile(ratio, 90))}}
    out["reference_later_over_earlier"] = out["later"]["median_ms"] / out["earlier"]["median_ms"]
    (HERE / "reference_baselines.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
