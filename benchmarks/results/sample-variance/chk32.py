from nnmeter_tvm.predictors import load_predictor
from nnmeter_tvm.builder.build import bundle_builder
b = bundle_builder(load_predictor("ort-cpu"))
for s in b.samples():
    sp = s.get("spec") or {}
    if s["family"] == "conv" and sp.get("k") == 3 and sp.get("h") in (30, 31, 32, 33, 34):
        print(sp["cin"], sp["cout"], sp["h"], sp["s"], sp["epi"], s["origin"], round(s["ms"] * 1e3, 1))
