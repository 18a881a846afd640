"""Held-out accuracy of the conv cost model on the shipped ort-cpu bundle's own samples, with
and without the FLOPs of blocked channels (schema 3's ``flops_blocked``).  Measures nothing.

The builder's held-out protocol (``training.split``: 20 % held out, the largest and smallest
5 % always among them, five splits, target ``logratio``).  Variants: the FLOPs/bytes line and
the trees as in schema 2 (plain FLOPs, no context block beyond the layout); the trees given
``flops_blocked`` as a feature, the line still on plain FLOPs; and the line on
``flops_blocked`` (schema 3, shipped).
Usage: python kernel_level.py > kernel_level.txt"""
import numpy as np
import xgboost as xgb

import nnmeter_tvm
from nnmeter_tvm import features
from nnmeter_tvm.builder import training as T
from nnmeter_tvm.builder.build import bundle_builder
from nnmeter_tvm.predictors.fallback import GenericModel

FAM = "conv"
rows = [r for r in bundle_builder(nnmeter_tvm.load_predictor("ort-cpu")).samples()
        if r["family"] == FAM]
names = list(features.feature_names(FAM))
x0 = features.encode(FAM, np.array([r["raw"] for r in rows]), exact=True)
ms0 = np.array([r["ms"] for r in rows])
x, ms, _, _ = T.merge_duplicates(x0, ms0)
col = lambda n: x[:, names.index(n)].astype(np.float64)  # noqa: E731
moved = col("bytes_in") + col("bytes_weight") + col("bytes_out")
schema2 = [i for i, n in enumerate(names) if n not in ("channel_block", "flops_blocked")]
blocked = col("layout") == features.schema.LAYOUT_CODES.index("blocked")


def line(work):
    stats = np.column_stack([col(work), moved])
    return lambda tr: GenericModel().fit(stats[tr], ms[tr]).predict(stats)


rng = np.random.default_rng(0)
splits = [T.split(len(ms), rng, 0.2, size=line("flops")(np.arange(len(ms)))) for _ in range(5)]


def run(label, cols, work):
    errs, held = [], []
    for tr, ho in splits:
        base = np.maximum(line(work)(tr), 1e-6)
        label_ = np.log(ms[tr] / base[tr])
        params = dict(T.XGB_PARAMS, seed=0, base_score=float(np.mean(label_)))
        booster = xgb.train(params, xgb.DMatrix(x[tr][:, cols].astype(np.float32), label=label_),
                            T.ROUNDS)
        errs.append(base[ho] * np.exp(booster.inplace_predict(x[ho][:, cols].astype(np.float32)))
                    / ms[ho] - 1)
        held.append(ho)
    e, h = np.concatenate(errs), np.concatenate(held)
    hit, big = np.abs(e) <= 0.10, ms[h] >= 0.02
    nb = np.isin(col("hin")[h], (8, 16, 32)) & big
    blk = blocked[h] & big
    print(f"| {label} | {100 * hit.mean():.1f} % | {100 * hit[big].mean():.1f} % | "
          f"{100 * hit[ms[h] >= 1].mean():.1f} % | {100 * hit[blk].mean():.1f} % (n={blk.sum()}) | "
          f"{100 * hit[nb].mean():.1f} % (n={nb.sum()}) | {100 * np.median(e[nb]):+.1f} % |")


print(f"conv samples: {len(rows)}; distinct rows: {len(ms)}; blocked: {int(blocked.sum())}")
print()
print("| variant | held-out ±10 % | ≥ 20 µs | ≥ 1 ms | blocked, ≥ 20 µs | HW 8/16/32, ≥ 20 µs "
      "| median error there |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
every = list(range(len(names)))
run("schema 2: line and trees on plain FLOPs", schema2, "flops")
run("trees given flops_blocked, line on plain FLOPs", every, "flops")
run("line on flops_blocked (schema 3, shipped)", every, "flops_blocked")
