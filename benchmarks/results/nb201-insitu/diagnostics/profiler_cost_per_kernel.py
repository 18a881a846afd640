"""Per model: (sum of profiled kernel times - whole-model time) / kernels = the profiler's cost per kernel."""
import sys, json, numpy as np
from nnmeter_tvm import zoo
from nnmeter_tvm.backends import get_backend
be = get_backend("ort-cpu")
truth = {m["model"]: m for m in json.load(open("/work/main/benchmarks/results/layout-context/before/evaluate-ort-cpu.json"))["models"]}
for fam in sys.argv[1].split(","):
    for i in range(1, 1 + 2 * int(sys.argv[2]), 2):
        proto = zoo.generate(fam, 0, i, None)
        ks = be.kernels(proto)
        s = sum(k.ms for k in ks); n = len(ks)
        w = truth[f"{fam}_s0_i{i}"]["measured_ms"]
        print(fam, i, n, f"whole {w:.3f} prof-sum {s:.3f} implied per-kernel {(w - 0.0054 - s)/n*1000:+.2f} us  small(<10us) {sum(k.ms < 0.01 for k in ks)}", flush=True)
