"""Retrain a bundle's cost models from its own samples with a given target set, then score
in-family (all samples) and leave-one-family-out on a ground truth: level, ±10 % as scored and
with the level out, LOFO the same, and each family's shift.  Nothing is measured.

    [XGB_OVERRIDE='{"max_depth": 4}'] python retrain_score.py BUNDLE TRUTH.json TARGETS OUT.json

TARGETS: comma-separated (log,relerr,logratio is the builder's choice); XGB_OVERRIDE: settings
of training.XGB_PARAMS to change (and "rounds").
"""
import sys, json, time
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3]))  # benchmarks/
import numpy as np
from eval_lib import dataset, lofo
from nnmeter_tvm.builder import training
from nnmeter_tvm.predictors import load_predictor

bundle, truth, targets, out = sys.argv[1], sys.argv[2], tuple(sys.argv[3].split(",")), sys.argv[4]
t0 = time.time()
training.TARGETS = targets
import os
over = json.loads(os.environ.get("XGB_OVERRIDE", "{}"))
rounds = over.pop("rounds", None)
training.XGB_PARAMS = dict(training.XGB_PARAMS, **over)
if rounds:
    training.ROUNDS = rounds
P = load_predictor(bundle)
res = {m["model"]: m for m in json.load(open(truth))["models"]}
items = [it for it in dataset.plan_for("ort-cpu", quick=False).items() if it.name in res]
fams = sorted({it.family for it in items})
entries = dataset.prepare(items, progress=False)
meas = np.array([res[e.item.name]["measured_ms"] for e in entries])
fam_of = np.array([e.item.family for e in entries])
samples, origin, rt, _ = lofo.attributed_samples(P)
pa, _ = rt.predictor(lambda s: True); rt.refit_overhead(pa, None)
pred = np.array([r.total_ms for r in pa.predict_many([e.graph for e in entries])])
lofo_p = np.full(len(entries), np.nan)
for f in fams:
    idx = np.flatnonzero(fam_of == f)
    keep = {id(s) for s, o in zip(samples, origin) if f not in o}
    pl, _ = rt.predictor(lambda s: id(s) in keep); rt.refit_overhead(pl, f)
    lofo_p[idx] = [r.total_ms for r in pl.predict_many([entries[i].graph for i in idx])]
r, l = pred / meas, lofo_p / meas
level = float(np.median(r))
acc = lambda x: float(100 * np.mean(np.abs(x - 1) <= 0.10))
fam_tab = {f: {"acc10": acc(r[fam_of == f]), "acc10_level_out": acc(r[fam_of == f] / level),
               "lofo_acc10": acc(l[fam_of == f]), "lofo_level_out": acc(l[fam_of == f] / level),
               "shift_pct": float(100 * np.mean(l[fam_of == f] / r[fam_of == f] - 1))}
           for f in fams}
summary = {"override": os.environ.get("XGB_OVERRIDE"), "bundle": bundle, "truth": truth,
           "targets": targets, "models": int(len(entries)),
           "level_pct": 100 * (level - 1), "acc10": acc(r), "acc10_level_out": acc(r / level),
           "lofo_acc10": acc(l), "lofo_level_out": acc(l / level),
           "mean_abs_shift_pct": float(np.mean([abs(v["shift_pct"]) for v in fam_tab.values()])),
           "chosen": {k: m.target for k, m in pa.models.items()},
           "families": fam_tab, "seconds": round(time.time() - t0)}
json.dump(summary, open(out, "w"), indent=1)
print(json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in summary.items()
                  if k not in ("families",)}))
