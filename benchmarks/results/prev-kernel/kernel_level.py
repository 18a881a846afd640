"""Does the kernel that ran before a kernel explain part of its time?  Held-out accuracy of
the cost models on the shipped ort-cpu bundle's own samples, with and without the bytes the
previous kernel of the same profiled model touched (weights, inputs and outputs: what it
leaves in the cache).  Measures nothing.

The previous kernel is the one before in the profiler's order of its unit (a pack or an
in-situ model); the first kernel of a unit has 0.  The builder's held-out protocol
(``training.split``: 20 % held out, the largest and smallest 5 % always among them, five
splits), target ``logratio`` on the family's own line, identical rows merged only when the
new column is equal too.
Usage: python kernel_level.py > kernel_level.txt"""
import numpy as np
import xgboost as xgb

import nnmeter_tvm
from nnmeter_tvm import features
from nnmeter_tvm.builder import training as T
from nnmeter_tvm.builder.build import bundle_builder
from nnmeter_tvm.predictors.fallback import GenericModel

builder = bundle_builder(nnmeter_tvm.load_predictor("ort-cpu"))
rows = []
for unit in builder.log.units.values():
    prev = 0.0
    for r in builder.rows(unit):
        x = features.encode(r["family"], np.array([r["raw"]]))[0]
        names = features.feature_names(r["family"])
        moved = sum(float(x[names.index(f)]) for f in ("bytes_in", "bytes_weight", "bytes_out")
                    if f in names)
        rows.append((r, prev, unit["kind"]))
        prev = moved


def evaluate(family):
    rs = [(r, p) for r, p, _ in rows if r["family"] == family]
    names = list(features.feature_names(family))
    x0 = features.encode(family, np.array([r["raw"] for r, _ in rs]))
    prev = np.log1p(np.array([p for _, p in rs]))[:, None].astype(np.float32)
    ms0 = np.array([r["ms"] for r, _ in rs])
    x1, ms, _, _ = T.merge_duplicates(np.hstack([x0, prev]), ms0)
    col = lambda n: x1[:, names.index(n)].astype(np.float64)  # noqa: E731
    work = "flops_blocked" if "flops_blocked" in names else "flops"
    moved = sum(col(f) for f in ("bytes_in", "bytes_weight", "bytes_out") if f in names)
    stats = np.column_stack([col(work), moved])
    line = lambda tr: GenericModel().fit(stats[tr], ms[tr]).predict(stats)  # noqa: E731
    rng = np.random.default_rng(0)
    splits = [T.split(len(ms), rng, 0.2, size=line(np.arange(len(ms)))) for _ in range(5)]
    out = {}
    for label, cols in (("without", slice(0, -1)), ("with prev bytes", slice(None))):
        errs = []
        for tr, ho in splits:
            base = np.maximum(line(tr), 1e-6)
            lab = np.log(ms[tr] / base[tr])
            params = dict(T.XGB_PARAMS, seed=0, base_score=float(np.mean(lab)))
            booster = xgb.train(params, xgb.DMatrix(x1[tr][:, cols], label=lab), T.ROUNDS)
            errs.append(base[ho] * np.exp(booster.inplace_predict(x1[ho][:, cols])) / ms[ho] - 1)
        e = np.concatenate(errs)
        out[label] = (100 * np.mean(np.abs(e) <= 0.10), 100 * np.sqrt(np.mean(e ** 2)))
    return len(ms), out


print("| family | rows | held-out ±10 % without | with prev bytes | RMSPE without | with |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for fam in ("conv", "dwconv", "binary", "elementwise", "pool", "layout", "gemm", "concat",
            "globalpool"):
    n, o = evaluate(fam)
    a, b = o["without"], o["with prev bytes"]
    print(f"| {fam} | {n} | {a[0]:.1f} % | {b[0]:.1f} % | {a[1]:.1f} % | {b[1]:.1f} % |",
          flush=True)
