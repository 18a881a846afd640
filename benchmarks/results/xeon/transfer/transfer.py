"""A new CPU's predictor from few kernel samples, with and without another CPU's samples.

Offline: the Xeon bundle's samples (measured on this Xeon) are the new device's; a random
N of them stand for a small build there.  Arms, each scored on the Xeon's 680-model truth with
the overhead refitted on the Xeon bundle's calibration models:
  scratch   cost models trained on the N Xeon samples alone
  scaled    trained on the AMD samples alone, each one's time times its family's median
            Xeon/AMD ratio over the N samples (the AMD cost model's prediction against the
            Xeon time): the AMD models rescaled
  pooled    trained on the N Xeon samples plus every AMD sample, each AMD sample's time
            times its family's ratio (as in scaled)
  pooled-w10  the same with each of the N Xeon samples counted ten times
  ratio-w10   as pooled-w10, but each AMD sample's time times a per-kernel ratio: a small
              XGBoost model of log(Xeon time / AMD cost-model time) per family, fitted on the
              N samples (the family's median ratio where it has fewer than 10)

    [ARMS=scratch,scaled,pooled] python transfer.py XEON_BUNDLE ort-cpu TRUTH.json OUT.json [N ...]
"""
import json
import sys
import time
from collections import defaultdict

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3]))  # benchmarks/
import warnings
warnings.simplefilter("ignore")
import numpy as np
from eval_lib import dataset, lofo
from nnmeter_tvm import features
from nnmeter_tvm.predictors import load_predictor

new_name, old_name, truth, out = sys.argv[1:5]
sizes = [int(n) for n in sys.argv[5:]] or [100, 300, 1000]
ARMS = [a for a in __import__("os").environ.get("ARMS", "scratch,scaled,pooled").split(",")]
seeds = (0, 1, 2)
PX, PA = load_predictor(new_name), load_predictor(old_name)
sx, cfg_x, bx = lofo.read_samples(PX)
sa, _, _ = lofo.read_samples(PA)
res = {m["model"]: m for m in json.load(open(truth))["models"]}
items = [it for it in dataset.plan_for("ort-cpu", quick=False).items() if it.name in res]
entries = dataset.prepare(items, progress=False)
graphs = [e.graph for e in entries]
meas = np.array([res[e.item.name]["measured_ms"] for e in entries])


def amd_pred(rows):
    """The AMD bundle's cost-model time for each sample (ms), by family."""
    out = np.full(len(rows), np.nan)
    by = defaultdict(list)
    for i, r in enumerate(rows):
        by[r["family"]].append(i)
    for fam, idx in by.items():
        m = PA.models.get(fam)
        if m is None:
            continue
        x = features.encode(fam, np.array([rows[i]["raw"] for i in idx], dtype=np.float64))
        out[idx] = m.predict(x)
    return out


def ratios(rows):
    """Per family: median of Xeon time / AMD cost-model time over ``rows``."""
    p = amd_pred(rows)
    by = defaultdict(list)
    for r, q in zip(rows, p):
        if np.isfinite(q) and q > 0:
            by[r["family"]].append(r["ms"] / q)
    return {f: float(np.median(v)) for f, v in by.items()}


def ratio_models(rows):
    """Per family: a small XGBoost model of log(Xeon time / AMD cost-model time) over ``rows``
    (the per-kernel ratio), or None where a family has too few rows."""
    import xgboost as xgb
    p = amd_pred(rows)
    by = defaultdict(list)
    for r, q in zip(rows, p):
        if np.isfinite(q) and q > 0:
            by[r["family"]].append((r["raw"], np.log(r["ms"] / q)))
    out = {}
    for fam, pairs in by.items():
        if len(pairs) < 10:
            continue
        x = features.encode(fam, np.array([a for a, _ in pairs], dtype=np.float64))
        y = np.array([b for _, b in pairs])
        out[fam] = xgb.train({"max_depth": 3, "eta": 0.1, "subsample": 0.8, "nthread": 1,
                              "min_child_weight": 3}, xgb.DMatrix(x, label=y), 100)
    return out


def ratio_scaled(rows, models, fallback):
    """``rows`` (AMD samples) with each time times its predicted Xeon/AMD ratio."""
    import xgboost as xgb
    out = [dict(r) for r in rows]
    by = defaultdict(list)
    for i, r in enumerate(rows):
        by[r["family"]].append(i)
    for fam, idx in by.items():
        m = models.get(fam)
        if m is None:
            f = np.full(len(idx), fallback.get(fam, float(np.median(list(fallback.values())))))
        else:
            x = features.encode(fam, np.array([rows[i]["raw"] for i in idx], dtype=np.float64))
            f = np.exp(m.predict(xgb.DMatrix(x)))
        for i, k in zip(idx, f):
            out[i]["ms"] = rows[i]["ms"] * float(k)
    return out


def score(pred):
    r = pred / meas
    level = float(np.median(r))
    acc = lambda x: float(100 * np.mean(np.abs(x - 1) <= 0.10))
    return {"acc10": acc(r), "acc10_level_out": acc(r / level), "level_pct": 100 * (level - 1)}


def with_overhead(rt, p):
    rt.refit_overhead(p, None)
    return np.array([x.total_ms for x in p.predict_many(graphs)])


results = []
t0 = time.time()
if "scratch" in ARMS:
    full_rt = lofo.Retrainer(PX, sx, cfg_x, bx)
    p, _ = full_rt.predictor(lambda s: True)
    results.append({"arm": "scratch", "n": len(sx), "seed": 0,
                    **score(with_overhead(full_rt, p))})
    print(results[-1], round(time.time() - t0), flush=True)
for n in sizes:
    for seed in seeds:
        rng = np.random.default_rng(seed)
        pick = [sx[i] for i in sorted(rng.choice(len(sx), size=min(n, len(sx)), replace=False))]
        k = ratios(pick)
        if "scratch" in ARMS:
            rt = lofo.Retrainer(PX, pick, cfg_x, bx)
            p, _ = rt.predictor(lambda s: True)
            results.append({"arm": "scratch", "n": n, "seed": seed,
                            **score(with_overhead(rt, p))})
            print(results[-1], round(time.time() - t0), flush=True)
        ARMS_T = [a for a in ARMS if a != "scratch"]
        med = float(np.median(list(k.values())))
        scaled = [dict(s, ms=s["ms"] * k.get(s["family"], med)) for s in sa]
        arms = {"scaled": scaled, "pooled": pick + scaled,
                "pooled-w10": pick * 10 + scaled}
        if "ratio-w10" in ARMS:
            arms["ratio-w10"] = pick * 10 + ratio_scaled(sa, ratio_models(pick), k)
        for arm in ARMS_T:
            rows = arms[arm]
            rt2 = lofo.Retrainer(PX, rows, cfg_x, bx)
            p2, _ = rt2.predictor(lambda s: True)
            results.append({"arm": arm, "n": n, "seed": seed, "ratios": k,
                            **score(with_overhead(rt2, p2))})
            print({a: b for a, b in results[-1].items() if a != "ratios"}, round(time.time() - t0),
                  flush=True)
        json.dump(results, open(out, "w"), indent=1)
