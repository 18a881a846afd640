"""Held-out accuracy of the gemm cost model on a bundle's own samples, with and without
``model_bytes_weight`` (the bytes of the weights of the whole model a kernel ran in).
Measures nothing.
Needs feature schema 4: run it with ``model_bytes_weight.patch`` applied and installed.

Target ``logratio`` on the FLOPs/bytes line, XGBoost as the builder trains it, five splits per
seed and three seeds.  Two ways of holding out: the builder's (``training.split``: 20 % of the
rows, the largest and smallest 5 % always among them) and by unit (20 % of the profiled
models, every row of each: the rows of one pack share its ``model_bytes_weight``, so a row
held out beside its pack-mates could be priced by the pack's own offset).
Usage: python kernel_level.py BUNDLE > kernel_level.txt (BUNDLE: as for gemm_bandwidth.py)"""
import sys

import numpy as np
import xgboost as xgb

import nnmeter_tvm
from nnmeter_tvm import features
from nnmeter_tvm.builder import training as T
from nnmeter_tvm.builder.build import bundle_builder
from nnmeter_tvm.predictors.fallback import GenericModel

FAM = "gemm"
builder = bundle_builder(nnmeter_tvm.load_predictor(sys.argv[1]))
rows, units = [], []
for unit in builder.log.units.values():
    for r in builder.rows(unit):
        if r["family"] == FAM:
            rows.append(r)
            units.append(unit["unit"])
names = list(features.feature_names(FAM))
x = features.encode(FAM, np.array([r["raw"] for r in rows]), exact=True)
ms = np.array([r["ms"] for r in rows])
units = np.array(units)
col = lambda n: x[:, names.index(n)].astype(np.float64)  # noqa: E731
stats = np.column_stack([col("flops_blocked"), col("bytes_in") + col("bytes_weight")
                         + col("bytes_out")])
one_row = col("m") * col("batch") == 1
without = [i for i, n in enumerate(names) if n != "model_bytes_weight"]
every = list(range(len(names)))


def splits(rng, by_unit):
    size = GenericModel().fit(stats, ms).predict(stats)
    for _ in range(5):
        if not by_unit:
            yield T.split(len(ms), rng, 0.2, size=size)
            continue
        distinct = np.unique(units)
        out = np.isin(units, rng.choice(distinct, len(distinct) // 5, replace=False))
        yield np.flatnonzero(~out), np.flatnonzero(out)


def run(label, cols, by_unit):
    errs, held = [], []
    for seed in (0, 1, 2):
        for tr, ho in splits(np.random.default_rng(seed), by_unit):
            base = np.maximum(GenericModel().fit(stats[tr], ms[tr]).predict(stats), 1e-6)
            target = np.log(ms[tr] / base[tr])
            params = dict(T.XGB_PARAMS, seed=seed, base_score=float(np.mean(target)))
            booster = xgb.train(params, xgb.DMatrix(x[tr][:, cols].astype(np.float32),
                                                    label=target), T.ROUNDS)
            pred = base[ho] * np.exp(booster.inplace_predict(x[ho][:, cols].astype(np.float32)))
            errs.append(pred / ms[ho] - 1)
            held.append(ho)
    e, h = np.concatenate(errs), np.concatenate(held)
    hit = np.abs(e) <= 0.10
    fc, big = one_row[h], ms[h] >= 0.05
    print(f"| {label} | {100 * hit.mean():.1f} % | {100 * hit[big].mean():.1f} % | "
          f"{100 * hit[fc].mean():.1f} % | {100 * hit[fc & big].mean():.1f} % | "
          f"{100 * np.median(np.abs(e[fc])):.1f} % |")


print(f"{FAM} samples: {len(rows)} in {len(set(units))} profiled models; of one row: "
      f"{int(one_row.sum())}")
for by_unit in (False, True):
    print()
    print(f"Held out: {'20 % of the profiled models' if by_unit else '20 % of the rows'}")
    print()
    print("| variant | held-out ±10 % | ≥ 50 µs | one row (fc) | one row, ≥ 50 µs "
          "| median abs error, one row |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    run("without model_bytes_weight (schema 3)", without, by_unit)
    run("with model_bytes_weight (schema 4)", every, by_unit)
