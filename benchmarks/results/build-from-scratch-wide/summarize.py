"""This folder's builds side by side -> summary.json: per build the grid, the sampling seed,
the zoo score, NAS-Bench-201's, leave-one-family-out (overall and NAS-Bench-201's fold) and
the transformer encoders' (each build's own evaluate-ort-cpu.json and beyond_zoo json).
Usage: python summarize.py > summary.json"""
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
out = {}
for d in sorted(p for p in HERE.iterdir() if (p / "evaluate-ort-cpu.json").is_file()
                and (p / "build-from-scratch-ort-cpu.json").is_file()):  # not widetop-pooled
    build = json.loads((d / "build-from-scratch-ort-cpu.json").read_text())
    ev = json.loads((d / "evaluate-ort-cpu.json").read_text())
    rows = ev["models"]
    fam = np.array([r["family"] for r in rows])
    meas = np.array([r["measured_ms"] for r in rows])
    hit = lambda p, m=None: float(100 * np.mean(np.abs(p[m] / meas[m] - 1) <= 0.10))  # noqa: E731
    pred = np.array([r["predicted_ms"] for r in rows])
    lofo = np.array([r.get("lofo_ms", np.nan) for r in rows])
    nb = fam == "nasbench201"
    bz = next(iter(d.glob("beyond_zoo*.json")), None)
    bz = json.loads(bz.read_text()) if bz else None
    run = build["runs"][0]
    out[d.name] = {
        "grid": build.get("grid", "wide" if d.name.startswith("wide") else "cnn"),
        "seed": build.get("seed", 0), "date": build["date"], "wall_s": run["wall_s"],
        "kernels_timed": run["kernels_timed"], "acc10": round(hit(pred), 1),
        "nasbench201_acc10": round(hit(pred, nb), 1),
        "lofo_acc10": round(hit(lofo), 1), "lofo_nasbench201_acc10": round(hit(lofo, nb), 1),
        "encoders_acc10": None if bz is None else round(100 * bz["within_10pct"], 1),
        "encoders_median_error": None if bz is None else round(100 * bz["median_error"], 1)}
print(json.dumps(out, indent=1))
