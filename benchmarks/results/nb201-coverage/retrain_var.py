"""Retrain the shipped ort-cpu bundle with a training variant (experiment)."""
import sys, numpy as np
import nnmeter_tvm.builder.training as T
from nnmeter_tvm.predictors.cost_model import to_target
variant, out = sys.argv[1], sys.argv[2]
W = {"none": None, "tiny": lambda m: np.clip(m / 0.02, 0.1, 1), "sqrt": np.sqrt}
wname, depth = variant.split("-")
T.XGB_PARAMS["max_depth"] = int(depth)
wf = W[wname]
def fit_booster(x, ms, target, seed=0, rounds=T.ROUNDS, base=None):
    import xgboost as xgb
    label, weight = to_target(target, ms, base)
    if wf is not None:
        weight = weight * wf(np.asarray(ms, float))
    d = xgb.DMatrix(np.asarray(x, np.float32), label=label, weight=weight / weight.mean())
    params = dict(T.XGB_PARAMS, seed=int(seed))
    if target in ("log", "logratio"):
        params["base_score"] = float(np.mean(label))
    b = xgb.train(params, d, num_boost_round=rounds); b.set_param({"nthread": 1}); return b
T.fit_booster = fit_booster
from nnmeter_tvm.builder.build import retrain
retrain(["ort-cpu"], out, progress=False)
