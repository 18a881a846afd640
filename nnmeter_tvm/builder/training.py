"""Training: one XGBoost regressor per kernel family, its target chosen by held-out accuracy.

Samples of a family are rows of features (``features.encode``) and measured milliseconds.
Identical feature rows (the same layer seen in several models) are merged into one row at their
median time before the split, so the held-out rows are configurations the model never saw.
For each target in ``cost_model.TARGETS`` a model is fit on the training split and scored on the
held-out split (fraction within ±10 %), over ``SELECT_SPLITS`` random splits; the best target is
refit on all rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..predictors.cost_model import TARGETS, FamilyModel, from_target, to_target

MIN_ROWS = 6  # below this a family stays on the generic fallback
XGB_PARAMS = {"max_depth": 6, "eta": 0.1, "subsample": 0.9, "colsample_bytree": 0.9,
              "min_child_weight": 1.0, "lambda": 1.0, "tree_method": "hist", "nthread": 2,
              "verbosity": 0}
ROUNDS = 200  # trees per family: prediction time grows with it (see predictors/trees.py)
SELECT_SPLITS = 5  # random held-out splits the targets are compared on
LAYOUT_LINES_GAIN = 0.10  # a line per layout must cut the line's held-out error by this much
# ... and a line per op by this much: a family's ops mostly cost alike per element.  On the AMD
# bundle's samples a 10 % bar gave elementwise and softmax a line per op (their line errors fell
# 39 and 24 %), and the zoo within ±10 % fell 97.1 -> 96.2 %, leave-one-family-out 87.9 -> 86.3 %
# (results/unseen-ops/op-lines-10pct/); a Resize among reshapes and transposes cuts the movement
# line's error by 75 %
OP_LINES_GAIN = 0.50


def accuracy(pred, true, tol: float) -> float:
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    return float(np.mean(np.abs(pred - true) / true <= tol)) if len(true) else float("nan")


def rmspe(pred, true) -> float:
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    return float(np.sqrt(np.mean(((pred - true) / true) ** 2)) * 100) if len(true) else float("nan")


def metrics(pred, true) -> dict:
    return {"acc5": accuracy(pred, true, 0.05), "acc10": accuracy(pred, true, 0.10),
            "rmspe": rmspe(pred, true), "n": int(len(true))}


def merge_duplicates(x: np.ndarray, ms: np.ndarray, keys=None):
    """Rows with identical features merged at their median time; returns (x, ms, keys, counts)."""
    x = np.asarray(x, np.float32)
    ms = np.asarray(ms, np.float64)
    _, first, inverse, counts = np.unique(x, axis=0, return_index=True, return_inverse=True,
                                          return_counts=True)
    inverse = inverse.reshape(-1)
    med = np.array([np.median(ms[inverse == g]) for g in range(len(first))])
    k = [keys[i] for i in first] if keys is not None else None
    return x[first], med, k, counts


def fit_booster(x, ms, target: str, seed: int = 0, rounds: int = ROUNDS, base=None):
    import xgboost as xgb

    label, weight = to_target(target, ms, base)
    dtrain = xgb.DMatrix(np.asarray(x, np.float32), label=label, weight=weight / weight.mean())
    params = dict(XGB_PARAMS, seed=int(seed))
    if target in ("log", "logratio"):
        params["base_score"] = float(np.mean(label))
    booster = xgb.train(params, dtrain, num_boost_round=rounds)
    booster.set_param({"nthread": 1})
    return booster


def predict_raw(booster, target: str, x, base=None) -> np.ndarray:
    return from_target(target, booster.inplace_predict(np.asarray(x, np.float32)), base)


def fit_baseline(family: str, x, ms):
    """The family's linear FLOPs/bytes model, the ``logratio`` target's baseline
    (:func:`choose_baseline`)."""
    return choose_baseline(family, x, ms)[0]


def choose_baseline(family: str, x, ms):
    """(baseline, line errors): one FLOPs/bytes line, or one per layout or per op where that
    cuts the line's own error on held-out rows (5-fold, mean |log error|) by
    ``LAYOUT_LINES_GAIN`` / ``OP_LINES_GAIN`` or more (of two that do, the lower error wins).
    Judged on the line alone, not through the trees, so the choice is stable (the errors are
    kept in the bundle, ``baseline_errors``)."""
    from .. import features
    from ..predictors.fallback import GenericModel, LayoutLines, OpLines, code_column, generic_stats

    x, ms = np.asarray(x), np.asarray(ms, dtype=np.float64)
    one = lambda a, b: GenericModel().fit(generic_stats(features, family, a), b)  # noqa: E731
    names = features.feature_names(family)
    split = {name: (kind, gain) for name, kind, gain in
             (("per_layout", LayoutLines, LAYOUT_LINES_GAIN), ("per_op", OpLines, OP_LINES_GAIN))
             if kind.FIELD in names and len(ms) >= 20
             and len(np.unique(code_column(features, family, x, kind.FIELD))) >= 2}
    if not split:  # all one layout and one op
        return one(x, ms), None
    errors = {"one_line": _line_error(family, one, x, ms)}
    for name, (kind, _) in split.items():
        errors[name] = _line_error(family, lambda a, b, k=kind: k.fit_encoded(family, a, b), x, ms)
    good = [name for name, (_, gain) in split.items()
            if errors[name] < (1 - gain) * errors["one_line"]]
    if good:
        return split[min(good, key=errors.get)][0].fit_encoded(family, x, ms), errors
    return one(x, ms), errors


def _line_error(family: str, fit, x, ms, folds: int = 5) -> float:
    """Mean |log(line / ms)| of a baseline ``fit`` on held-out rows, ``folds``-fold."""
    idx = np.random.default_rng(0).permutation(len(ms))
    errs = []
    for held in np.array_split(idx, folds):
        line = fit(np.delete(x, held, axis=0), np.delete(ms, held))
        pred = np.maximum(line.predict_encoded(family, x[held]), 1e-6)
        errs.append(np.abs(np.log(pred / ms[held])))
    return float(np.mean(np.concatenate(errs)))


@dataclass
class FamilyResult:
    family: str
    model: FamilyModel | None
    heldout: dict
    by_target: dict
    rows: int
    samples: int
    bad: list = field(default_factory=list)  # keys of held-out rows off by more than 10 %


def split(n: int, rng, heldout: float = 0.2, size=None) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: a random ``heldout`` share; with ``size`` (one work measure
    per row) the held-out rows include the largest and smallest 5 %, so that a target is also
    judged on how it extrapolates (real models have layers beyond the sampled range)."""
    n_hold = max(1, int(round(n * heldout))) if n >= 5 else 0
    if size is None or n < 20:
        order = rng.permutation(n)
        return order[n_hold:], order[:n_hold]
    by_size = np.argsort(np.asarray(size), kind="stable")
    edge = max(1, n // 20)
    held = set(by_size[:edge].tolist()) | set(by_size[-edge:].tolist())
    rest = [i for i in rng.permutation(n) if i not in held]
    held = sorted(held) + rest[: max(0, n_hold - len(held))]
    train = np.array(sorted(set(range(n)) - set(held)), dtype=np.intp)
    return train, np.array(held, dtype=np.intp)


def _score_targets(family, x, ms, tr, ho, targets, seed, rounds):
    """Each target fit on rows ``tr`` (its baseline too) and scored on rows ``ho``:
    ({target: metrics}, {target: held-out predictions})."""
    scores, preds = {}, {}
    for target in targets:
        base = None
        if target == "logratio":  # the held-out rows unseen by the baseline too
            base = fit_baseline(family, x[tr], ms[tr]).predict_encoded(family, x)
        booster = fit_booster(x[tr], ms[tr], target, seed, rounds,
                              None if base is None else base[tr])
        preds[target] = predict_raw(booster, target, x[ho], None if base is None else base[ho])
        scores[target] = metrics(preds[target], ms[ho])
    return scores, preds


def train_family(family: str, x, ms, keys=None, feature_names=(), seed: int = 0,
                 targets=TARGETS, heldout: float = 0.2, rounds: int = ROUNDS) -> FamilyResult:
    """Fit ``family``; ``keys`` (one per row, e.g. spec keys) come back for the bad rows."""
    samples = len(ms)
    x, ms, keys, _ = merge_duplicates(x, ms, keys)
    if len(ms) < MIN_ROWS:
        return FamilyResult(family, None, {}, {}, len(ms), samples)
    targets = tuple(targets)
    rng = np.random.default_rng(seed)
    base_all, line_errors = choose_baseline(family, x, ms)  # also the logratio model's
    base_all_ms = base_all.predict_encoded(family, x)
    # targets are compared on several splits when there is a choice (one split of ~40
    # held-out rows ties or flips on a row or two); the first split's misses are the bad rows
    splits = [split(len(ms), rng, heldout, size=base_all_ms)
              for _ in range(SELECT_SPLITS if len(targets) > 1 else 1)]
    by_split = [_score_targets(family, x, ms, tr, ho, targets, seed, rounds)
                for tr, ho in splits]
    by_target = {t: {**{k: float(np.mean([s[0][t][k] for s in by_split]))
                        for k in ("acc5", "acc10", "rmspe")},
                     "n": by_split[0][0][t]["n"], "splits": len(splits)} for t in targets}
    best = max(targets, key=lambda t: (by_target[t]["acc10"], by_target[t]["acc5"],
                                       -by_target[t]["rmspe"]))
    ho = splits[0][1]
    pred = by_split[0][1][best]
    err = np.abs(pred - ms[ho]) / ms[ho]
    bad = [keys[i] for i, e in zip(ho, err) if e > 0.10] if keys is not None else []
    baseline = base_all if best == "logratio" else None
    booster = fit_booster(x, ms, best, seed, rounds, None if baseline is None else base_all_ms)
    info = {"samples": samples, "rows": int(len(ms)), "heldout": by_target[best],
            "by_target": by_target, "range": training_range(x, feature_names)}
    if baseline is not None and line_errors:
        info["baseline_errors"] = line_errors
    model = FamilyModel(family, booster, best, feature_names, info, baseline)
    return FamilyResult(family, model, by_target[best], by_target, len(ms), samples, bad)


def training_range(x, feature_names=()) -> dict:
    """Each feature's lowest and highest value among the rows a model was trained on: trees
    cannot extrapolate, so a kernel above them is flagged (``FamilyModel.outside``).  With
    ``feature_names``, also the values each code field took (``features.CODE_FIELDS``): a
    kernel with another is of an op the model never saw (``FamilyModel.unseen``)."""
    from ..features import CODE_FIELDS

    x = np.asarray(x, dtype=np.float64)
    out = {"low": x.min(axis=0).tolist(), "high": x.max(axis=0).tolist()}
    codes = {name: sorted(set(x[:, j].tolist())) for j, name in enumerate(feature_names)
             if name in CODE_FIELDS}
    if codes:
        out["codes"] = codes
    return out


# ---- whole-model overhead -----------------------------------------------------------------------
def fit_overhead(measured, kernel_sum, n_kernels) -> dict:
    """Fit ``measured ≈ fixed + per_kernel * n + scale * kernel_sum`` on whole models
    (``fixed >= 0``), minimising the absolute relative error (:func:`_lsq`).

    Three nested forms are scored by their leave-one-out mean absolute relative error (a richer
    form must cut it by half a point): fixed only; fixed + per-kernel; fixed + per-kernel +
    scale.  Not by ±10 % hits: on ~40 models they move one model at a time, and a per-kernel
    term that halves the error of the small many-kernel models (NAS-Bench-201 cells, the
    builder's chains of tiny kernels) can cost one hit on a large one.  Not by squares either:
    a model timed while another process loaded the machine (up to 40 % slow in a from-scratch
    build) outweighed the rest.  Returns the chosen form's coefficients with its leave-one-out
    accuracy, mean absolute and RMS relative errors.
    """
    y = np.asarray(measured, float)
    s = np.asarray(kernel_sum, float)
    n = np.asarray(n_kernels, float)
    forms = {
        "fixed": lambda idx: _lsq(np.column_stack([np.ones(len(idx))]), y[idx] - s[idx], y[idx]),
        "fixed+per_kernel": lambda idx: _lsq(np.column_stack([np.ones(len(idx)), n[idx]]),
                                             y[idx] - s[idx], y[idx]),
        "fixed+per_kernel+scale": lambda idx: _lsq(
            np.column_stack([np.ones(len(idx)), n[idx], s[idx]]), y[idx], y[idx]),
    }
    best = None
    for name, fit in forms.items():
        if len(y) < 2 + list(forms).index(name):  # leave-one-out needs one spare model
            continue
        errs = []
        for i in range(len(y)):
            idx = np.array([j for j in range(len(y)) if j != i])
            c = _coef(name, fit(idx))
            p = c["fixed_ms"] + c["per_kernel_ms"] * n[i] + c["scale"] * s[i]
            errs.append(abs(p - y[i]) / y[i])
        errs = np.array(errs)
        score = (float(np.mean(errs <= 0.10)), float(np.mean(errs) * 100),
                 float(np.sqrt(np.mean(np.square(errs))) * 100))
        if best is None or score[1] < best[1][1] - 0.5:
            best = (name, score)
    if best is None:
        return {"form": "none", "fixed_ms": 0.0, "per_kernel_ms": 0.0, "scale": 1.0, "models": len(y)}
    coef = _coef(best[0], forms[best[0]](np.arange(len(y))))
    acc, mape, rms = best[1]
    return {"form": best[0], **coef, "loo_acc10": acc, "loo_mape": mape, "loo_rmspe": rms,
            "models": int(len(y))}


def _coef(name: str, sol) -> dict:
    sol = list(sol) + [0.0] * 3
    if name == "fixed":
        return {"fixed_ms": float(sol[0]), "per_kernel_ms": 0.0, "scale": 1.0}
    if name == "fixed+per_kernel":
        return {"fixed_ms": float(sol[0]), "per_kernel_ms": float(sol[1]), "scale": 1.0}
    return {"fixed_ms": float(sol[0]), "per_kernel_ms": float(sol[1]), "scale": float(sol[2])}


def _lsq(a, b, y, iters: int = 30):
    """Least absolute relative error (rows divided by the measured time y), by iteratively
    reweighted least squares; errors under 1 % weigh alike (noise).  The per-run overhead
    (column 0) is kept >= 0; the per-kernel term may be negative: a profiler counts a little
    of its own cost in every kernel it times, which the whole-model run does not pay (the
    predictor floors each kernel's time, see ``Predictor``)."""
    a, b = a / y[:, None], b / y
    w = np.ones(len(y))
    for _ in range(iters):
        sol = _weighted_lsq(a, b, np.sqrt(w))
        w = 1.0 / np.maximum(np.abs(a @ sol - b), 0.01)
    return sol


def _weighted_lsq(a, b, sw):
    sol, *_ = np.linalg.lstsq(a * sw[:, None], b * sw, rcond=None)
    if sol[0] < 0:
        rest, *_ = np.linalg.lstsq(a[:, 1:] * sw[:, None], b * sw, rcond=None)
        sol = np.concatenate([[0.0], rest])
    return sol
