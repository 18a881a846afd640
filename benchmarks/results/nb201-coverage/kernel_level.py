"""Held-out accuracy of the conv cost model on the shipped ort-cpu bundle's own samples, under
training variants, and the bias on NAS-Bench-201's spatial sizes (HW 8, 16, 32).

The builder's held-out protocol (``training.split``: 20 % held out, the largest and smallest
5 % always among them, five splits, target ``logratio``).  Variants: XGBoost depth, rows
weighted by time (kernels under 20 µs down-weighted: their own noise), output-area alignment
features, and a power-law baseline instead of the FLOPs/bytes line.  Measures nothing.
Usage: python kernel_level.py > kernel_level.txt"""
import collections

import numpy as np
import xgboost as xgb

import nnmeter_tvm
from nnmeter_tvm import features
from nnmeter_tvm.builder import training as T
from nnmeter_tvm.builder.build import bundle_builder
from nnmeter_tvm.predictors.fallback import GenericModel, generic_stats

FAM = "conv"
rows = [r for r in bundle_builder(nnmeter_tvm.load_predictor("ort-cpu")).samples()
        if r["family"] == FAM]
names = list(features.feature_names(FAM))
x0 = features.encode(FAM, np.array([r["raw"] for r in rows]))
ms0 = np.array([r["ms"] for r in rows])
col = lambda n: x0[:, names.index(n)]  # noqa: E731
hw = col("hout") * col("wout")
X_HW = np.column_stack([x0, hw, hw % 16, np.ceil(hw / 16) * 16, hw % 8, np.ceil(hw / 8) * 8])
x, ms, first, _ = T.merge_duplicates(x0, ms0, list(range(len(rows))))
x_hw = X_HW[first]
origin = np.array([rows[i]["origin"] for i in first])


class Line:
    def fit(self, a, b):
        self.m = GenericModel().fit(generic_stats(features, FAM, a[:, :len(names)]), b)
        return self

    def __call__(self, a):
        return self.m.predict_encoded(FAM, a[:, :len(names)])


class Power:
    def design(self, a):
        s = np.maximum(generic_stats(features, FAM, a[:, :len(names)]), 1)
        return np.column_stack([np.ones(len(a)), np.log(s[:, 0]), np.log(s[:, 1])])

    def fit(self, a, b):
        self.c, *_ = np.linalg.lstsq(self.design(a), np.log(b), rcond=None)
        return self

    def __call__(self, a):
        return np.exp(self.design(a) @ self.c)


rng = np.random.default_rng(0)
splits = [T.split(len(ms), rng, 0.2, size=Line().fit(x, ms)(x)) for _ in range(5)]
ones = np.ones_like


def run(label, xs=x, depth=6, weight=ones, baseline=Line):
    errs, held = [], []
    for tr, ho in splits:
        base = np.maximum(baseline().fit(xs[tr], ms[tr])(xs), 1e-6)
        label_ = np.log(ms[tr] / base[tr])
        w = weight(ms[tr])
        params = dict(T.XGB_PARAMS, seed=0, max_depth=depth, base_score=float(np.mean(label_)))
        booster = xgb.train(params, xgb.DMatrix(xs[tr].astype(np.float32), label=label_,
                                                weight=w / w.mean()), T.ROUNDS)
        pred = base[ho] * np.exp(booster.inplace_predict(xs[ho].astype(np.float32)))
        errs.append((pred - ms[ho]) / ms[ho])
        held.append(ho)
    e, h = np.concatenate(errs), np.concatenate(held)
    hit, big = np.abs(e) <= 0.10, ms[h] >= 0.02
    nb = np.isin(x[h, names.index("hin")], (8, 16, 32)) & big
    print(f"| {label} | {100 * hit.mean():.1f} % | {100 * hit[big].mean():.1f} % | "
          f"{100 * hit[ms[h] >= 1].mean():.1f} % | {100 * hit[nb].mean():.1f} % (n={nb.sum()}) | "
          f"{100 * np.median(e[nb]):+.1f} % |")
    return e, h


print(f"conv samples: {len(rows)}; distinct rows: {len(ms)}; by origin (distinct rows): "
      f"{dict(collections.Counter(origin))}")
print("rows by input HW 8/16/32 (distinct):",
      {h: int(np.sum(x[:, names.index('hin')] == h)) for h in (8, 16, 32)})
print()
print("| variant | held-out ±10 % | ≥ 20 µs | ≥ 1 ms | HW 8/16/32, ≥ 20 µs | median error there |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
e, h = run("shipped training (depth 6, FLOPs/bytes line)")
run("depth 8", depth=8)
run("kernels under 20 µs weighted down (to 0.1)", weight=lambda m: np.clip(m / 0.02, 0.1, 1))
run("the same, depth 8", depth=8, weight=lambda m: np.clip(m / 0.02, 0.1, 1))
run("output-area alignment features (HW mod 8/16)", xs=x_hw)
run("power-law baseline (log ms on log FLOPs, log bytes)", baseline=Power)
print()
print("Shipped training, held-out rows by origin and by size:")
for o in sorted(set(origin)):
    m = origin[h] == o
    print(f"  {o}: {m.sum()} rows, ±10 % {100 * np.mean(np.abs(e[m]) <= 0.1):.1f} %, "
          f"median error {100 * np.median(e[m]):+.1f} %, median time "
          f"{1000 * np.median(ms[h][m]):.1f} µs")
for lo, hi in ((0, 0.02), (0.02, 0.1), (0.1, 1), (1, 1e9)):
    m = (ms[h] >= lo) & (ms[h] < hi)
    print(f"  {1000 * lo:g}-{1000 * hi:g} µs: {m.sum()} rows, ±10 % "
          f"{100 * np.mean(np.abs(e[m]) <= 0.1):.1f} %")
