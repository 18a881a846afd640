"""The baselines the kernel-level predictor is compared with, all on the same test models.

Model-level baselines are trained on the *train split* of the measured models (whole-model
latencies); the kernel-level predictor never sees a model, only its kernel samples.

- ``flops``: ``ms = c0 + c1 * FLOPs``
- ``flops+mac``: ``ms = c0 + c1 * FLOPs + c2 * MAC``
  (both least squares on the *relative* error, i.e. rows weighted by 1 / ms, because the
  figures we report are relative; nn-Meter's were plain linear regressions)
- ``xgboost-model``: an XGBoost regressor on ``log(ms)`` over whole-graph features
  (:mod:`.graph_stats`), the model-level learned predictor
- ``op-sum``: the kernel-level predictor's own cost models applied to one kernel per graph node,
  i.e. the partition with no fusion rules (nn-Meter's "no fusion awareness" ablation)
"""
from __future__ import annotations

import numpy as np

from .graph_stats import FEATURES


def feature_matrix(rows, names=FEATURES) -> np.ndarray:
    """rows: dicts of graph features -> an (n, len(names)) float array in ``names`` order."""
    return np.array([[float(r[n]) for n in names] for r in rows], dtype=np.float64).reshape(
        len(rows), len(names))


class LinearBaseline:
    """Linear regression with intercept on the named whole-graph features.

    ``relative=True`` minimises the squared relative error (rows weighted by 1 / ms).
    Learned state: ``coef_`` (intercept first).
    """

    def __init__(self, features=("flops",), relative: bool = True):
        self.features = tuple(features)
        self.relative = relative

    def fit(self, rows, ms) -> "LinearBaseline":
        x, y = feature_matrix(rows, self.features), np.asarray(ms, dtype=np.float64)
        if len(y) < len(self.features) + 1:
            raise ValueError(f"LinearBaseline{self.features}: needs at least "
                             f"{len(self.features) + 1} training models, got {len(y)}")
        design = np.column_stack([np.ones(len(y)), x])
        w = 1.0 / y if self.relative else np.ones_like(y)
        a = design * w[:, None]
        scale = np.maximum(np.abs(a).max(axis=0), 1e-300)  # conditioning: FLOPs are ~1e9
        sol, *_ = np.linalg.lstsq(a / scale, y * w, rcond=None)
        self.coef_ = sol / scale
        return self

    def predict(self, rows) -> np.ndarray:
        x = feature_matrix(rows, self.features)
        return self.coef_[0] + x @ self.coef_[1:]


class ModelXGBoost:
    """XGBoost on ``log(ms)`` over every whole-graph feature; seeded, deterministic."""

    def __init__(self, features=FEATURES, rounds: int = 400, max_depth: int = 5,
                 learning_rate: float = 0.05, seed: int = 0, nthread: int = 1):
        self.features = tuple(features)
        self.rounds = rounds
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.seed = seed
        self.nthread = nthread

    def fit(self, rows, ms) -> "ModelXGBoost":
        import xgboost as xgb

        x, y = feature_matrix(rows, self.features), np.asarray(ms, dtype=np.float64)
        if len(y) < 2:
            raise ValueError(f"ModelXGBoost: needs at least 2 training models, got {len(y)}")
        params = {"objective": "reg:squarederror", "max_depth": self.max_depth,
                  "eta": self.learning_rate, "subsample": 0.8, "colsample_bytree": 0.8,
                  "min_child_weight": 1, "seed": self.seed, "nthread": self.nthread}
        self.booster_ = xgb.train(params, xgb.DMatrix(x, label=np.log(y)),
                                  num_boost_round=self.rounds)
        return self

    def predict(self, rows) -> np.ndarray:
        import xgboost as xgb

        x = feature_matrix(rows, self.features)
        return np.exp(self.booster_.predict(xgb.DMatrix(x)))


MODEL_LEVEL = {
    "flops": lambda: LinearBaseline(("flops",)),
    "flops+mac": lambda: LinearBaseline(("flops", "mac")),
    "xgboost-model": lambda: ModelXGBoost(),
}


def fit_predict(train_rows, train_ms, test_rows) -> dict[str, np.ndarray]:
    """Every model-level baseline fitted on the train rows, predicting the test rows."""
    return {name: make().fit(train_rows, train_ms).predict(test_rows)
            for name, make in MODEL_LEVEL.items()}


# ---- operator-level sum ---------------------------------------------------------------------
def singleton_kernels(graph) -> list:
    """One kernel per graph node: the partition a backend with no fusions would make."""
    from nnmeter_tvm.kernels.kernel import Kernel

    return [Kernel(name=f"op:{n.name}", type=n.op, nodes=(n.name,), anchor=n.name, ops=(n.op,))
            for n in graph]


def no_fusion_rules(rules):
    """The backend's rules with every fusion rule dropped; its layout model (the reorder
    kernels onnxruntime inserts around NCHWc ops) is kept, so only fusion awareness differs."""
    import dataclasses

    return dataclasses.replace(rules, rules=(), _index={})


def operator_sum(predictor, graphs) -> np.ndarray:
    """Predicted ms of each graph with one kernel per op (no fusion), same cost models.

    With the predictor's rules available, the partition runs with :func:`no_fusion_rules`
    (inserted layout kernels kept); otherwise one kernel per graph node."""
    rules = getattr(predictor, "rules", None)
    if rules is None:
        split = singleton_kernels
    else:
        from nnmeter_tvm.kernels import partition

        plain = no_fusion_rules(rules)
        split = lambda g: partition(g, plain)  # noqa: E731
    return np.array([predictor.predict_kernels(g, split(g)).total_ms for g in graphs])


def fit_predict_leave_one_out(groups, rows, ms) -> dict[str, dict[str, np.ndarray]]:
    """Per group G: every model-level baseline fitted on the other groups' models, predicting
    G's models.  Returns ``{method: {group: predictions in G's row order}}``."""
    groups = np.asarray(groups)
    ms = np.asarray(ms, dtype=np.float64)
    out = {name: {} for name in MODEL_LEVEL}
    for g in sorted(set(groups.tolist())):
        tr, te = np.flatnonzero(groups != g), np.flatnonzero(groups == g)
        preds = fit_predict([rows[i] for i in tr], ms[tr], [rows[i] for i in te])
        for name, p in preds.items():
            out[name][g] = p
    return out
