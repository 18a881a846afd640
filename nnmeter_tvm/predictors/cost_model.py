"""One trained cost model per kernel family: an XGBoost regressor and the target it was fit on.

Targets (the builder chooses per family by held-out ±10 % accuracy):

- ``log``: the booster predicts ``log(ms)``; ``ms = exp(prediction)``.
- ``relerr``: the booster predicts ``ms`` and was trained with weights ``1 / ms**2``, so its
  squared error is the squared relative error; predictions are clipped at a tiny positive time.
- ``logratio``: the booster predicts ``log(ms / base)``, where ``base`` is the family's own
  linear FLOPs/bytes model (:class:`.fallback.GenericModel` fitted on the family's samples);
  ``ms = base * exp(prediction)``.  Trees cannot extrapolate: beyond the sampled range ``log``
  and ``relerr`` stay at the edge sample's time, while ``logratio`` keeps the edge's ratio to a
  baseline that grows with the work (a 20 ms VGG conv is not priced as the largest sample).
  The line is fitted per layout the kernels run in (:class:`.fallback.LayoutLines`), or per
  op (:class:`.fallback.OpLines`), where that describes the family clearly better (its backend
  paths differ ten-fold; its ops cost differently per element).

Stored as XGBoost's own JSON (``Booster.save_model("x.json")``), never a pickle; the baseline's
coefficients go in the bundle's metadata.
"""
from __future__ import annotations

import numpy as np

TARGETS = ("log", "relerr", "logratio")
_MIN_MS = 1e-5
# a feature may pass the top of its trained range by this fraction before the kernel is
# flagged as outside it (a channel count 5 % above the largest sample is not news)
RANGE_SLACK = 0.1


def to_target(target: str, ms, base=None):
    """(label, weight) arrays for training on ``target`` (``base``: baseline ms per row)."""
    ms = np.asarray(ms, dtype=np.float64)
    if target == "log":
        return np.log(ms), np.ones_like(ms)
    if target == "relerr":
        return ms, 1.0 / ms ** 2
    if target == "logratio":
        return np.log(ms) - np.log(_base(base, ms)), np.ones_like(ms)
    raise ValueError(f"unknown target {target!r}; valid: {', '.join(TARGETS)}")


def from_target(target: str, raw, base=None) -> np.ndarray:
    raw = np.asarray(raw, dtype=np.float64)
    if target == "log":
        return np.exp(raw)
    if target == "logratio":
        return _base(base, raw) * np.exp(raw)
    return np.maximum(raw, _MIN_MS)


def _base(base, like) -> np.ndarray:
    if base is None:
        raise ValueError("target 'logratio' needs the baseline ms of every row")
    return np.maximum(np.broadcast_to(np.asarray(base, dtype=np.float64), np.shape(like)), _MIN_MS)


def _seen_table(values) -> np.ndarray:
    """A boolean table over codes 0..max+1: True at the codes in ``values``; the last entry
    (any code above them) and, read at index -1, any code below 0 stay False."""
    codes = np.asarray(values, dtype=np.int64)
    table = np.zeros(int(codes.max(initial=-1)) + 2, dtype=bool)
    table[codes[codes >= 0]] = True
    return table


class FamilyModel:
    """A trained model for one kernel family (``conv``, ``dwconv``, ...); ``baseline`` is the
    family's :class:`.fallback.GenericModel`, :class:`.fallback.LayoutLines` or
    :class:`.fallback.OpLines` (needed by the ``logratio`` target)."""

    def __init__(self, family: str, booster, target: str, feature_names=(), info=None,
                 baseline=None):
        if target not in TARGETS:
            raise ValueError(f"FamilyModel {family!r}: target must be one of {TARGETS}, got {target!r}")
        if target == "logratio" and baseline is None:
            raise ValueError(f"FamilyModel {family!r}: target 'logratio' needs a baseline")
        self.family = family
        self.booster = booster
        self.target = target
        self.feature_names = tuple(feature_names)
        self.info = dict(info or {})
        self.baseline = baseline
        r = self.info.get("range")
        # the top of the trained range plus the slack, over the features the model reads; None
        # for a bundle built without ranges
        n = len(self.feature_names) or None
        self._top = None if not r else \
            np.asarray(r["high"][:n], float) + RANGE_SLACK * np.abs(r["high"][:n])
        # per code field's column, a table of the codes seen in training (index: code); empty
        # for a bundle that did not record them
        self._codes = {self.feature_names.index(name): _seen_table(values)
                       for name, values in ((r or {}).get("codes") or {}).items()
                       if name in self.feature_names}

    def baseline_ms(self, x) -> np.ndarray | None:
        """The baseline's ms for encoded rows ``x`` (None without a baseline)."""
        return None if self.baseline is None else self.baseline.predict_encoded(self.family, x)

    def outside(self, x) -> np.ndarray | None:
        """Per encoded row of ``x``, per feature: True where the value is above the range the
        model was trained on (plus ``RANGE_SLACK``), or, in a code field, is a code none of its
        training rows had (:meth:`unseen`); None when the bundle recorded neither.
        Only above: below its smallest sample a kernel is priced as that sample, a few
        microseconds at most, while above its largest one the trees stay flat as the work
        grows (a 49-row projection priced as an fc layer, or a layer 10x the largest)."""
        codes = self._unseen_codes(x)
        if self._top is None:
            return codes
        above = x[:, :len(self._top)] > self._top  # an older schema: a prefix of the features
        return above if codes is None else above | codes[:, :above.shape[1]]

    def unseen(self, x) -> np.ndarray | None:
        """Per encoded row of ``x``: True where a code field (an op or a mode,
        ``features.CODE_FIELDS``) has a value none of the model's training rows had, such as a
        Resize in a family trained on reshapes and transposes; None when the bundle recorded no
        codes."""
        codes = self._unseen_codes(x)
        return None if codes is None else codes.any(axis=1)

    def _unseen_codes(self, x) -> np.ndarray | None:
        """Per encoded row, per feature: True at a code field whose code training never saw."""
        if not self._codes:
            return None
        out = np.zeros(x.shape, dtype=bool)
        for column, seen in self._codes.items():  # codes are small integers: a table look-up
            code = np.clip(np.asarray(x[:, column]), -1, len(seen) - 1).astype(np.intp)
            out[:, column] = ~seen[code]
        return out

    def unseen_in(self, flagged) -> bool:
        """Whether features ``flagged`` (names, as ``Predictor`` reports them) include a code
        field with recorded values: the kernel's op was unseen, or above the codes seen."""
        return any(self.feature_names[c] in flagged for c in self._codes)

    def finish(self, raw, x) -> np.ndarray:
        """ms from the booster's raw output ``raw`` for the encoded rows ``x``."""
        base = self.baseline_ms(x) if self.target == "logratio" else None
        return from_target(self.target, raw, base)

    def predict(self, features) -> np.ndarray:
        x = np.ascontiguousarray(features, dtype=np.float32)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if len(x) == 0:
            return np.zeros(0)
        return self.finish(self.booster.inplace_predict(x, validate_features=False), x)

    def save(self, path) -> None:
        self.booster.save_model(str(path))

    @classmethod
    def load(cls, family: str, path, target: str, feature_names=(), info=None,
             baseline=None) -> "FamilyModel":
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(str(path))
        booster.set_param({"nthread": 1})
        return cls(family, booster, target, feature_names, info, baseline)
