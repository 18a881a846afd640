"""Which reference workload moves with a model's speed on this host?

    python track.py [--minutes 10] [--out track.json]

Every ~10 s, pinned to one core like the protocol: the protocol's pure-Python reference
(``protocol.ReferenceWorkload``), a memory-bound reference (numpy sum over a 32 MiB array,
past the L2 and most of the L3) and one fixed zoo model on onnxruntime (resnet, seed 0,
median of 15 runs).  Writes every reading with its time; the summary is each reference's
correlation with the model over the run.
"""
import argparse, json, os, time
import numpy as np
import onnxruntime as ort
from nnmeter_tvm import zoo
from nnmeter_tvm.backends import protocol

p = argparse.ArgumentParser()
p.add_argument("--minutes", type=float, default=10)
p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "track.json"))
a = p.parse_args()
os.sched_setaffinity(0, {1})
opts = ort.SessionOptions(); opts.intra_op_num_threads = opts.inter_op_num_threads = 1
model = zoo.generate("resnet", 0, 0)
sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
feed = {i.name: np.random.rand(*[d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
        for i in sess.get_inputs()}
ref = protocol.ReferenceWorkload()
big = np.ones(32 * 2**20 // 8)

def timed(f, n):
    ts = []
    for _ in range(n):
        t = time.perf_counter_ns(); f(); ts.append(time.perf_counter_ns() - t)
    return float(np.median(ts)) * 1e-6

for _ in range(5): sess.run(None, feed)
rows, t0 = [], time.monotonic()
while time.monotonic() - t0 < a.minutes * 60:
    rows.append({"t_s": round(time.monotonic() - t0, 1), "pyloop_ms": ref.read() * 1e3,
                 "membw_ms": timed(big.sum, 9), "model_ms": timed(lambda: sess.run(None, feed), 15)})
    time.sleep(8)
cols = ("pyloop_ms", "membw_ms", "model_ms")
m = np.array([[r[c] for c in cols] for r in rows])
rel = m / np.median(m, axis=0)
summary = {"readings": len(rows), "spread_p10_p90": {c: [float(np.percentile(rel[:, i], 10)), float(np.percentile(rel[:, i], 90))] for i, c in enumerate(cols)},
           "corr_with_model": {c: float(np.corrcoef(rel[:, i], rel[:, 2])[0, 1]) for i, c in enumerate(cols[:2])}}
json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": "),
           "summary": summary, "rows": rows}, open(a.out, "w"), indent=1)
print(json.dumps(summary, indent=1))
