"""Accuracy metrics of latency predictions, and the noise ceiling of the measurement itself.

Definitions (the same as nn-Meter's and LitePred's, see shared/ANCHORS.md):

- relative error ``e = (predicted - measured) / measured``
- ``acc5`` / ``acc10`` / ``acc15``: percent of models with ``|e|`` <= 5 / 10 / 15 %
- ``rmse_ms``: root mean squared error in milliseconds
- ``rmspe``: root mean squared relative error, in percent

The **noise ceiling** compares the two measurements of each model (pass A and pass B, taken in
different orders): the same figures with pass B as the "prediction" of pass A.  The
ground truth a predictor is scored against is the mean of the two passes.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

THRESHOLDS = (5, 10, 15)  # percent


def relative_errors(predicted, measured) -> np.ndarray:
    """``(predicted - measured) / measured``, element-wise; measured must be positive."""
    p = np.asarray(predicted, dtype=np.float64)
    m = np.asarray(measured, dtype=np.float64)
    if p.shape != m.shape:
        raise ValueError(f"relative_errors: predicted has shape {p.shape}, measured {m.shape}; "
                         "pass one prediction per measurement")
    if (m <= 0).any() or not np.isfinite(m).all():
        raise ValueError("relative_errors: every measured latency must be a positive number, "
                         f"got {m[(m <= 0) | ~np.isfinite(m)][:3].tolist()}")
    return (p - m) / m


def summarize(predicted, measured) -> dict:
    """The metric block for one set of models: n, acc5/10/15 (%), rmse_ms, rmspe (%), mean_err (%)."""
    p = np.asarray(predicted, dtype=np.float64)
    m = np.asarray(measured, dtype=np.float64)
    if p.size == 0:
        return {"n": 0} | {f"acc{t}": None for t in THRESHOLDS} | {
            "rmse_ms": None, "rmspe": None, "mean_err": None}
    err = relative_errors(p, m)
    out = {"n": int(p.size)}
    for t in THRESHOLDS:
        # a hair of tolerance so that an error of exactly 10 % counts as within 10 %
        out[f"acc{t}"] = float(100.0 * np.mean(np.abs(err) <= t / 100.0 + 1e-12))
    out["rmse_ms"] = float(np.sqrt(np.mean((p - m) ** 2)))
    out["rmspe"] = float(100.0 * np.sqrt(np.mean(err ** 2)))
    out["mean_err"] = float(100.0 * np.mean(err))  # signed: a bias shows here
    return out


def noise_ceiling(pass_a, pass_b) -> dict:
    """How well one measurement of a model agrees with the other (pass B scored against pass A)."""
    return summarize(pass_b, pass_a)


def by_group(groups: Sequence[str], fn: Callable[..., dict], *arrays) -> dict:
    """``fn`` applied to each group's rows and to all rows (key ``"overall"``), groups sorted."""
    groups = np.asarray(groups)
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    for a in arrays:
        if len(a) != len(groups):
            raise ValueError(f"by_group: {len(groups)} group labels but an array of {len(a)} rows")
    out = {}
    for g in sorted(set(groups.tolist())):
        sel = groups == g
        out[g] = fn(*(a[sel] for a in arrays))
    out["overall"] = fn(*arrays)
    return out


def meets(block: dict, key: str, target: float) -> bool | None:
    """Whether ``block[key]`` (a percent) reaches ``target``; None when there is no figure."""
    value = block.get(key)
    return None if value is None else bool(value >= target)
