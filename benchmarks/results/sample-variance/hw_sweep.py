"""Conv kernel time against HW: are aligned widths (8/16/32) faster per FLOP on ort-cpu?"""
import json, sys
import numpy as np
import nnmeter_tvm.builder.kernel_models as km
from nnmeter_tvm.backends import get_backend
from nnmeter_tvm.predictors import load_predictor
from nnmeter_tvm.onnx_import import graph_from_proto

be = get_backend("ort-cpu")
P = load_predictor("ort-cpu")
specs = []
for c in (16, 32, 53, 64):
    for hw in (7, 8, 12, 14, 15, 16, 17, 24, 28, 30, 32, 33):
        for k, epi in ((1, ["bn"]), (3, ["bn", "relu"])):
            specs.append({"kind": "conv", "cin": c, "cout": c, "h": hw, "w": hw, "k": k, "s": 1,
                          "groups": 1, "pad": k // 2, "bias": False, "epi": epi})
res = {km.spec_key(s): [] for s in specs}
for rep in range(2):
    for pack in km.pack_specs(specs, 12, 4e8):
        for t in be.kernels(km.build_model(pack, seed=0)):
            if t.nodes and any(n.endswith(".conv") for n in t.nodes):
                spec = km.specs_by_scope(pack)[km.scope_of(t.nodes[0])]
                res[km.spec_key(spec)].append(t.ms)
# predicted: price each spec alone via a one-spec model
out = []
for s in specs:
    proto = km.build_model([s], seed=0)
    g = graph_from_proto(proto)
    rep = P.predict(g)
    pk = [k for k in rep.kernels if "conv" in k.type]
    pred = pk[0].ms if pk else float("nan")
    meas = float(np.median(res[km.spec_key(s)]))
    fl = km.spec_flops(s)
    out.append(dict(c=s["cin"], hw=s["h"], k=s["k"], meas_us=meas*1e3, pred_us=pred*1e3, gflops_s=fl/meas/1e6))
    print(s["cin"], s["h"], s["k"], f"meas {meas*1e3:.1f} pred {pred*1e3:.1f} err {pred/meas-1:+.2f}  GF/s {fl/meas/1e6:.1f}", flush=True)
json.dump(out, open("hw_sweep.json", "w"))
