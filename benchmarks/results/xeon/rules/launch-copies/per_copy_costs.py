"""Whole-run times of a pair's launch-probe models (op A alone, op B alone, A -> B, and their
T0), with one copy of the pattern per model and with eight, each in 7 fresh sessions of 3 x
1,000 runs (a plain loop, not the measuring protocol).  Net per copy = (model - T0) / copies;
saving = A + B - AB, against nn-Meter's threshold 0.5 * min(A, B).

    python per_copy_costs.py relu maxpool        # needs nnmeter_tvm at commit 3dbfa8b (replicate)
"""
import sys, time
import numpy as np, onnxruntime as ort
from nnmeter_tvm.builder.testcases import build_case, replicate, CaseShape, Step, default_template, trivial_case
def run(model):
    so = ort.SessionOptions(); so.intra_op_num_threads = 1; so.inter_op_num_threads=1
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.random.rand(*i.shape).astype(np.float32) for i in s.get_inputs()}
    for _ in range(300): s.run(None, feeds)
    best=[]
    for rep in range(3):
        t=time.perf_counter()
        for _ in range(1000): s.run(None, feeds)
        best.append((time.perf_counter()-t)/1000*1e6)
    return float(np.median(best))
sh = CaseShape(16, 2, launch=True)
a, b = default_template(sys.argv[1]), default_template(sys.argv[2])
m = {"A": build_case([Step("a", a)], sh, prefix="maxpool1", suffix="slice1"),
     "B": build_case([Step("a", b)], sh, prefix="maxpool1", suffix="slice1"),
     "AB": build_case([Step("a", a), Step("b", b, ("a",))], sh, prefix="maxpool1", suffix="slice1")}
m["T0"] = trivial_case(m["A"], per_output=True)
for k in (1, 8):
    res = {n: [] for n in m}
    for sess in range(7):
        for n, x in m.items():
            res[n].append(run(replicate(x, k)))
    med = {n: np.median(v) for n, v in res.items()}
    net = {n: (med[n]-med["T0"])/k for n in ("A","B","AB")}
    spread = {n: np.median(np.abs(np.array(v)-med[n]))/k for n, v in res.items()}
    print(k, "T0/copy", round(med["T0"]/k,2), "net/copy", {n: round(v,3) for n,v in net.items()}, "saving", round(net["A"]+net["B"]-net["AB"],3), "mad/copy", {n: round(v,3) for n,v in spread.items()}, flush=True)
