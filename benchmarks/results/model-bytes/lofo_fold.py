"""One leave-one-family-out fold of the ort-cpu evaluation, its error with the bundle's overhead
terms and with them refitted as the fold refits them.  Measures nothing.
Usage: python lofo_fold.py BUNDLE FAMILY  (the ground truth of results/layout-context/before)"""
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BENCH))
from eval_lib import dataset, lofo
from nnmeter_tvm.predictors import load_predictor
fam = sys.argv[2]
pred0 = load_predictor(sys.argv[1])
plan = dataset.plan_for("ort-cpu", quick=False)
items = [i for i in plan.items() if i.family == fam]
entries = dataset.prepare(items, progress=False, cache_dir=Path("~/.cache/nnmeter-tvm"))
dataset.load_results(entries, BENCH / "results/layout-context/before/evaluate-ort-cpu.json")
meas = np.array([e.measured_ms for e in entries])
samples, origin, rt, _ = lofo.attributed_samples(pred0)
keep = {id(s) for s, o in zip(samples, origin) if fam not in o}
p, kept = rt.predictor(lambda s: id(s) in keep)
base_oh = dict(p.overhead)
reps = p.predict_many([e.graph for e in entries])
tot0 = np.array([r.total_ms for r in reps])
fit = rt.refit_overhead(p, exclude_family=fam)
tot1 = np.array([r.total_ms for r in p.predict_many([e.graph for e in entries])])
e0, e1 = tot0 / meas - 1, tot1 / meas - 1
print(sys.argv[1], fam, "bundle overhead", {k: round(v, 5) for k, v in base_oh.items()}, "refit", {k: round(fit[k], 5) for k in ("fixed_ms", "per_kernel_ms", "scale")})
print(f"  with bundle overhead: mean {100*e0.mean():+.2f} ±10 {100*(abs(e0)<=.1).mean():.1f}; refit: mean {100*e1.mean():+.2f} ±10 {100*(abs(e1)<=.1).mean():.1f}")
