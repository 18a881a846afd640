"""One trained cost model per kernel family: an XGBoost regressor and the target it was fit on.

Targets (the builder chooses per family by held-out ±10 % accuracy):

- ``log``: the booster predicts ``log(ms)``; ``ms = exp(prediction)``.
- ``relerr``: the booster predicts ``ms`` and was trained with weights ``1 / ms**2``, so its
  squared error is the squared relative error; predictions are clipped at a tiny positive time.

Stored as XGBoost's own JSON (``Booster.save_model("x.json")``), never a pickle.
"""
from __future__ import annotations

import numpy as np

TARGETS = ("log", "relerr")
_MIN_MS = 1e-5


def to_target(target: str, ms):
    """(label, weight) arrays for training on ``target``."""
    ms = np.asarray(ms, dtype=np.float64)
    if target == "log":
        return np.log(ms), np.ones_like(ms)
    if target == "relerr":
        return ms, 1.0 / ms ** 2
    raise ValueError(f"unknown target {target!r}; valid: {', '.join(TARGETS)}")


def from_target(target: str, raw) -> np.ndarray:
    raw = np.asarray(raw, dtype=np.float64)
    if target == "log":
        return np.exp(raw)
    return np.maximum(raw, _MIN_MS)


class FamilyModel:
    """A trained model for one kernel family (``conv``, ``dwconv``, ...)."""

    def __init__(self, family: str, booster, target: str, feature_names=(), info=None):
        if target not in TARGETS:
            raise ValueError(f"FamilyModel {family!r}: target must be one of {TARGETS}, got {target!r}")
        self.family = family
        self.booster = booster
        self.target = target
        self.feature_names = tuple(feature_names)
        self.info = dict(info or {})

    def predict(self, features) -> np.ndarray:
        x = np.ascontiguousarray(features, dtype=np.float32)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if len(x) == 0:
            return np.zeros(0)
        raw = self.booster.inplace_predict(x, validate_features=False)
        return from_target(self.target, raw)

    def save(self, path) -> None:
        self.booster.save_model(str(path))

    @classmethod
    def load(cls, family: str, path, target: str, feature_names=(), info=None) -> "FamilyModel":
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(str(path))
        booster.set_param({"nthread": 1})
        return cls(family, booster, target, feature_names, info)
