"""Does a NAS-Bench-201 cell's conv kernel time the same in a builder's pack as in its cell?

For the conv kernels of five test cells (seed 0), the profiled time in the cell against the
same spec packed as the builder packs it (``kernel_models.pack_specs`` / ``build_model``),
twice each way: "cold" is the builder's model (a fused add's outside operand is a graph
input), "warm" writes that operand with a relu just before (as a cell's add reads a tensor
the previous kernel wrote).  Usage: python pack_vs_cell.py > pack_vs_cell.txt"""
import collections
import json

import numpy as np

import nnmeter_tvm.builder.kernel_models as km
from nnmeter_tvm import zoo
from nnmeter_tvm.backends import get_backend
from nnmeter_tvm.onnx_import import graph_from_proto
from nnmeter_tvm.predictors import load_predictor

CELLS = (11, 13, 15, 17, 19)
cold_epi = km._epi


def warm_epi(b, x, epi, inputs, name_of_extra):
    for i, op in enumerate(epi):
        if op == "add":
            extra = b.input(b.shape(x), name=name_of_extra(i))
            inputs.append(extra)
            x = b.add(x, b.act(extra, "relu", name=f"warm{i}"), name=f"add{i}")
        elif op == "bn":
            x = b.bn(x, name=f"bn{i}")
        elif op == "swish":
            x = b.swish(x, name=f"swish{i}")
        else:
            x = b.act(x, op, name=f"{op}{i}")
    return x


P, be = load_predictor("ort-cpu"), get_backend("ort-cpu")
incell = collections.defaultdict(list)
for i in CELLS:
    proto = zoo.generate("nasbench201", 0, i, None)
    g = graph_from_proto(proto)
    times = {frozenset(t.nodes): t.ms for t in be.kernels(proto) if t.nodes}
    for k in P.partition(g):
        s, t = km.spec_from_kernel(k, g), times.get(frozenset(k.nodes))
        if s and t and s["kind"] == "conv":
            incell[km.spec_key(s)].append(t)
specs = [json.loads(k) for k in incell]
packed = collections.defaultdict(lambda: collections.defaultdict(list))
for mode in ("cold", "warm", "cold", "warm"):
    km._epi = warm_epi if mode == "warm" else cold_epi
    for pack in km.pack_specs(specs, 12, 4e8):
        for t in be.kernels(km.build_model(pack, seed=0)):
            if t.nodes and any(n.endswith(".conv") for n in t.nodes):
                spec = km.specs_by_scope(pack)[km.scope_of(t.nodes[0])]
                packed[km.spec_key(spec)][mode].append(t.ms)
km._epi = cold_epi
print(f"cells {CELLS} (nasbench201, seed 0); {len(specs)} distinct conv specs")
print("cin cout hw k s epilogue | in cell (µs) | packed cold / cell | packed warm / cell")
ratios = {"add": [], "no add": []}
for key, by_mode in packed.items():
    s, cell = json.loads(key), float(np.median(incell[key]))
    cold, warm = (float(np.median(by_mode[m])) / cell for m in ("cold", "warm"))
    ratios["add" if "add" in s["epi"] else "no add"].append((cold, warm))
    print(s["cin"], s["cout"], s["h"], s["k"], s["s"], "-".join(s["epi"]) or "-",
          f"| {cell * 1000:.1f} | {cold:.2f} | {warm:.2f}")
for group, r in ratios.items():
    r = np.array(r)
    print(f"median ratio, {group} ({len(r)} specs): cold {np.median(r[:, 0]):.2f}, "
          f"warm {np.median(r[:, 1]):.2f}")
