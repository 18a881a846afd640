"""A bundle's gemm samples of one row (a classifier's fc layer): the rate
they read their weights at, against the bytes of the weights of the whole model each was
profiled in (``model_bytes_weight``).  Measures nothing.
Needs feature schema 4: run it with ``model_bytes_weight.patch`` applied and installed.
Usage: python gemm_bandwidth.py BUNDLE > gemm_bandwidth.txt (BUNDLE: the shipped one retrained
under schema 4, ``nnmeter-tvm build --retrain ort-cpu -o BUNDLE``)"""
import sys

import nnmeter_tvm
from nnmeter_tvm.builder.build import bundle_builder
from nnmeter_tvm.features.schema import raw_fields

builder = bundle_builder(nnmeter_tvm.load_predictor(sys.argv[1]))
fields = raw_fields("gemm")
rows = []
for unit in builder.log.units.values():
    for r in builder.rows(unit):
        d = dict(zip(fields, r["raw"]))
        if r["family"] == "gemm" and d["m"] * d["batch"] == 1 and d["k"] * d["n"] * 4 >= 5e5:
            weights = d["k"] * d["n"] * d["dtype_bytes"]
            rows.append((weights / 1e6, r["ms"], weights / r["ms"] / 1e6,
                         d["model_bytes_weight"] / 1e6, unit["kind"]))
print("| weights (MB) | ms | GB/s | model's weights (MB) | unit |")
print("| ---: | ---: | ---: | ---: | --- |")
for w, ms, rate, model, kind in sorted(rows):
    print(f"| {w:.2f} | {ms:.4f} | {rate:.1f} | {model:.1f} | {kind} |")
fast = [r for r in rows if r[3] <= 5]
slow = [r for r in rows if r[3] >= 10]
med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
print(f"\nmedian GB/s: models of at most 5 MB of weights {med([r[2] for r in fast]):.1f} "
      f"(n={len(fast)}), of 10 MB or more {med([r[2] for r in slow]):.1f} (n={len(slow)})")
