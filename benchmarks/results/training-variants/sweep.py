"""Held-out accuracy of every cost model on the shipped ort-cpu bundle's own samples, under
several XGBoost settings.  Measures nothing.

The builder's own held-out protocol (``training.train_family``: 20 % held out, the largest
and smallest 5 % always among them, five splits, the target chosen per family), so the choice
of a setting uses no evaluation model.  Pooled over families, weighted by held-out rows.
Usage: python sweep.py > sweep.txt"""
import sys

import numpy as np

import nnmeter_tvm
from nnmeter_tvm import features
from nnmeter_tvm.builder import training as T
from nnmeter_tvm.builder.build import bundle_builder

SETTINGS = {
    "shipped (depth 6, child 1, eta 0.1)": {},
    "depth 4": {"max_depth": 4},
    "depth 8": {"max_depth": 8},
    "min_child_weight 3": {"min_child_weight": 3.0},
    "min_child_weight 10": {"min_child_weight": 10.0},
    "lambda 10": {"lambda": 10.0},
    "subsample 0.7, colsample 0.7": {"subsample": 0.7, "colsample_bytree": 0.7},
    "eta 0.05": {"eta": 0.05},
}
SHIPPED = dict(T.XGB_PARAMS)

rows = bundle_builder(nnmeter_tvm.load_predictor(sys.argv[1] if len(sys.argv) > 1
                                                 else "ort-cpu")).samples()
by_family = {}
for r in rows:
    by_family.setdefault(r["family"], []).append(r)

print("| setting | held-out ±10 % | ±5 % | RMSPE | conv ±10 % | dwconv | gemm | layout |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for label, change in SETTINGS.items():
    T.XGB_PARAMS = dict(SHIPPED, **change)
    n = a10 = a5 = sq = 0.0
    fam = {}
    for family, rs in sorted(by_family.items()):
        x = features.encode(family, np.array([r["raw"] for r in rs]))
        res = T.train_family(family, x, np.array([r["ms"] for r in rs]), seed=0)
        if not res.model:
            continue
        h = res.heldout
        n += h["n"]
        a10 += h["acc10"] * h["n"]
        a5 += h["acc5"] * h["n"]
        sq += (h["rmspe"] ** 2) * h["n"]
        fam[family] = h["acc10"]
    print(f"| {label} | {100 * a10 / n:.1f} % | {100 * a5 / n:.1f} % | {np.sqrt(sq / n):.1f} % | "
          + " | ".join(f"{100 * fam.get(f, float('nan')):.1f} %"
                       for f in ("conv", "dwconv", "gemm", "layout")) + " |", flush=True)
