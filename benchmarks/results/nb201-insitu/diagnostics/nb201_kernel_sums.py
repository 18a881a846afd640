import sys, json, numpy as np
from nnmeter_tvm import zoo
from nnmeter_tvm.predictors import load_predictor
from nnmeter_tvm.backends import get_backend
from nnmeter_tvm.onnx_import import graph_from_proto
P = load_predictor(sys.argv[1]); be = get_backend("ort-cpu")
truth = {m["model"]: m for m in json.load(open("/work/main/benchmarks/results/layout-context/before/evaluate-ort-cpu.json"))["models"]}
ov = P.overhead
for i in range(1, 25, 2):
    proto = zoo.generate("nasbench201", 0, i, None); g = graph_from_proto(proto)
    ks = [k for k in P.partition(g) if not k.attrs.get("view")]
    raw, _ = P.kernel_ms(g, ks)
    adj = np.maximum(ov["scale"] * raw + ov["per_kernel_ms"], 0.25 * raw)
    tk = be.kernels(proto)
    tset = {frozenset(t.nodes) for t in tk if t.nodes}
    unmatched = [(k.type, r) for k, r in zip(ks, raw) if not k.inserted and frozenset(k.nodes) not in tset]
    w = truth[f"nasbench201_s0_i{i}"]["measured_ms"]
    print(i, f"ours {len(ks)} truth {len(tk)} (inserted ours {sum(k.inserted for k in ks)} truth {sum(not t.nodes for t in tk)}) whole {w:.3f} pred {ov['fixed_ms'] + adj.sum():.3f} ({100*((ov['fixed_ms'] + adj.sum())/w-1):+.1f}%) raw {raw.sum():.3f} prof {sum(t.ms for t in tk):.3f} corr {1000*(adj.sum()-raw.sum())/len(ks):+.2f}us/k unmatched {len(unmatched)} {sum(r for _, r in unmatched)*1000:.0f}us", flush=True)
