"""Standalone zero pads (drawn like the wide grid's, another seed): the pad cost model of the
default bundle against the generic fallback it replaced, both against onnxruntime's profiled
kernel time.  Usage: python pad_check.py > pad_check.txt"""
import numpy as np

from nnmeter_tvm.backends import get_backend
from nnmeter_tvm.builder.kernel_models import build_model
from nnmeter_tvm.builder.sampler import wide_spec
from nnmeter_tvm.onnx_import import load_graph
from nnmeter_tvm.predictors import Predictor, load_predictor

bundle = load_predictor("ort-cpu")
without = Predictor(bundle.backend, rules_file=bundle.rules_file, fallback=bundle.fallback,
                    models={f: m for f, m in bundle.models.items() if f != "pad"})
backend = get_backend("ort-cpu")
rng = np.random.default_rng(2026)
rows = []
for i in range(16):
    spec = wide_spec(rng, "pad")
    model = build_model([spec], seed=i, name=f"pad{i}")
    graph = load_graph(model)
    kernels = [k for k in bundle.partition(graph) if k.type == "pad"]
    timed = {frozenset(t.nodes): t.ms for t in backend.truth(model, timed=True).kernels}
    ms = timed.get(frozenset(kernels[0].nodes))
    if ms is None:
        continue
    rows.append((spec, ms, bundle.kernel_ms(graph, kernels)[0][0],
                 without.kernel_ms(graph, kernels)[0][0]))
print("c h=w pads | profiled ms | pad model ms (ratio) | fallback ms (ratio)")
for spec, ms, model_ms, fallback_ms in rows:
    print(f"{spec['c']} {spec['h']} {spec['pads']} | {ms:.4f} | {model_ms:.4f} ({model_ms / ms:.2f}) "
          f"| {fallback_ms:.4f} ({fallback_ms / ms:.2f})")
for name, col in (("pad model", 2), ("fallback", 3)):
    ratio = np.array([r[col] / r[1] for r in rows])
    print(f"{name}: within ±10 % {np.mean(np.abs(ratio - 1) <= 0.1):.0%} of {len(rows)}, "
          f"median |log ratio| {np.median(np.abs(np.log(ratio))):.2f}")
