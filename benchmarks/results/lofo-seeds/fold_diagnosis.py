"""One leave-one-family-out fold of the shipped ort-cpu bundle taken apart (offline, on the
evaluation's ground truth): the fold's cost models and the fold's overhead (refitted without
the family's calibration models) swapped in one at a time, and the kernels' summed price per
cost-model family, the fold's over all samples'.  Usage: python fold_diagnosis.py FAMILY
(the three weakest folds: ``fold_diagnosis.txt``)."""
import sys
from collections import defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BENCH))
import numpy as np  # noqa: E402
from eval_lib import dataset, lofo  # noqa: E402

from nnmeter_tvm import load_predictor  # noqa: E402

FAM = sys.argv[1] if len(sys.argv) > 1 else "nasbench201"
plan = dataset.plan_for("ort-cpu", False)
entries = dataset.prepare(plan.items(), cache_dir=Path("~/.cache/nnmeter-tvm").expanduser())
dataset.load_results(entries, str(BENCH / "results/layout-context/before/evaluate-ort-cpu.json"))
done = [e for e in entries if e.complete and e.item.family == FAM]
meas = np.array([e.measured_ms for e in done])
pred0 = load_predictor("ort-cpu")
samples, origin, rt, _ = lofo.attributed_samples(pred0)
keep = {id(s) for s, o in zip(samples, origin) if FAM not in o}
p_out, kept = rt.predictor(lambda s: id(s) in keep)
p_all, _ = rt.predictor(lambda s: True)
full_oh = dict(pred0.overhead)
rt.refit_overhead(p_out, exclude_family=FAM)
oh_out = dict(p_out.overhead)
graphs = [e.graph for e in done]


def acc(p, oh):
    p.overhead = oh
    pr = np.array([r.total_ms for r in p.predict_many(graphs)])
    e = pr / meas - 1
    return f"±10 {100*np.mean(np.abs(e) <= 0.1):5.1f} %  mean {100*e.mean():+5.1f} %"
print(FAM, "samples kept", kept, "| per-kernel overhead, all / fold (µs):",
      round(1000 * full_oh["per_kernel_ms"], 2), "/", round(1000 * oh_out["per_kernel_ms"], 2))
print("all samples, full overhead:      ", acc(p_all, full_oh))
print("all samples, fold's overhead:    ", acc(p_all, oh_out))
print("fold's samples, full overhead:   ", acc(p_out, full_oh))
print("fold's samples, fold's overhead: ", acc(p_out, oh_out))


def by_family(p):
    out = defaultdict(float)
    for r in p.predict_many(graphs):
        for k in r.kernels:
            out[k.cost_model] += k.ms
    return out


a, b = by_family(p_all), by_family(p_out)
tot = sum(a.values())
for f in sorted(a, key=lambda f: -a[f])[:8]:
    print(f"  {f:12s} share {100*a[f]/tot:5.1f} %  fold/all {b[f]/a[f]:.3f}")
