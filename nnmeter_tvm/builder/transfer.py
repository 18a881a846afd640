"""``nnmeter-tvm build --transfer-from BUNDLE``: a bundle for this machine from a small part of
its own build's measurements and another machine's bundle.

LitePred's idea, in the form that won offline (``benchmarks/results/xeon/transfer/``) and then
in real builds (``benchmarks/results/xeon/transfer-build/``: on the Intel Xeon VM, from the AMD
bundle, 1.6 min and 1,290 kernels for 86-88 % of the zoo within ±10 %, against 88.6 % for a
full build of 3.7 min, 69-75 % for an ordinary build of the same 1,300 kernels and 52.5 % for
the AMD bundle as it is):

1. **Measure a few kernels here.**  The calibration models (the overhead is this machine's;
   refitted on 16 of the 42, the zoo scored up to 14 points lower), then the source's own
   sample plan: its in-situ zoo models first (the cheapest kernels to time, and real models'
   layers), then its packs of specs in a random order, until ``max_samples`` kernels are
   timed.  As a build does, it then measures again the units timed while the machine drifted,
   while the budget has room (``Builder.measure_units``).
2. **Learn how this machine differs, kernel by kernel.**  Per kernel family, a small XGBoost
   model of log(time here / the source's cost-model time) over those samples (a family with
   fewer than ``MIN_RATIO_ROWS`` takes its median ratio; a family with none, the median of
   all).  One factor per family is not enough: within a family the two machines' relative
   costs differ (a per-family rescale reached 63-68 % in the same study).
3. **Carry the source's samples over.**  Each of them, times its predicted ratio, joins this
   machine's samples; a configuration measured here replaces the source's copy of it.  Then
   the ordinary final fit, fallback, overhead fit, and bundle, which records what it carried
   (``build.transferred_from``).

The bundle carries only the samples measured here, so it cannot be retrained or left one family
out from them (:func:`~.build.bundle_builder` refuses); transfer again instead.
"""
from __future__ import annotations

import random
import warnings
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import BundleError, MismatchWarning
from .build import Builder, Progress, bundle_builder

MIN_RATIO_ROWS = 10  # a family with fewer samples here takes its median ratio
RATIO_PARAMS = {"max_depth": 3, "eta": 0.1, "subsample": 0.8, "min_child_weight": 3,
                "nthread": 1, "verbosity": 0}
RATIO_ROUNDS = 100
DEFAULT_SAMPLES = 1300  # kernels timed here by default: ort-cpu's 13 in-situ zoo models
                        # (about 1,160 kernels, 20 s) and a few packs


class KernelRatios:
    """Per kernel family, time here / the source's cost-model time, as a function of the
    kernel's features: ``models`` (XGBoost on log ratio) where a family has enough samples
    here, ``medians`` elsewhere, ``overall`` for a family with none."""

    def __init__(self, source, features, rows: list[dict], seed: int = 0):
        self.source, self.features = source, features
        logs = defaultdict(list)  # family -> (raw, log ratio)
        for family, idx in _by_family(rows).items():
            raw = np.array([rows[i]["raw"] for i in idx], dtype=np.float64)
            there = self._source_ms(family, raw)
            for i, q in zip(idx, there):
                if np.isfinite(q) and q > 0:
                    logs[family].append((rows[i]["raw"], float(np.log(rows[i]["ms"] / q))))
        self.medians = {f: float(np.exp(np.median([r for _, r in v]))) for f, v in logs.items()}
        self.overall = float(np.median(list(self.medians.values()))) if self.medians else 1.0
        self.models = {f: self._fit(f, v, seed) for f, v in logs.items()
                       if len(v) >= MIN_RATIO_ROWS}
        self.counts = {f: len(v) for f, v in logs.items()}

    def _source_ms(self, family: str, raw: np.ndarray) -> np.ndarray:
        model = self.source.models.get(family)
        if model is None:
            return np.full(len(raw), np.nan)
        return model.predict(self.features.encode(family, raw))

    def _fit(self, family: str, pairs: list, seed: int):
        import xgboost as xgb

        x = self.features.encode(family, np.array([a for a, _ in pairs], dtype=np.float64))
        y = np.array([b for _, b in pairs])
        return xgb.train(dict(RATIO_PARAMS, seed=seed), xgb.DMatrix(x, label=y), RATIO_ROUNDS)

    def __call__(self, family: str, raw: np.ndarray) -> np.ndarray:
        """The ratio for each of ``raw`` (rows of one family's configurations)."""
        import xgboost as xgb

        model = self.models.get(family)
        if model is None:
            return np.full(len(raw), self.medians.get(family, self.overall))
        return np.exp(model.predict(xgb.DMatrix(self.features.encode(family, raw))))

    def summary(self) -> dict:
        """Per family: samples here, median ratio, and whether a model or the median carries
        its samples (the bundle's record)."""
        return {f: {"samples_here": self.counts.get(f, 0),
                    "median_ratio": round(self.medians[f], 4),
                    "by": "model" if f in self.models else "median"}
                for f in sorted(self.medians)}


def _by_family(rows: list[dict]) -> dict[str, list[int]]:
    out = defaultdict(list)
    for i, r in enumerate(rows):
        out[r["family"]].append(i)
    return out


def carried(source_rows: list[dict], ratios: KernelRatios, own_rows: list[dict]) -> list[dict]:
    """The source's samples, each time times its ratio, minus those whose configuration was
    measured here (``own_rows``: that time stands)."""
    here = {(r["family"], tuple(r["raw"])) for r in own_rows}
    keep = [r for r in source_rows if (r["family"], tuple(r["raw"])) not in here]
    out = [dict(r, origin="carried:" + r["origin"]) for r in keep]
    for family, idx in _by_family(keep).items():
        raw = np.array([keep[i]["raw"] for i in idx], dtype=np.float64)
        for i, k in zip(idx, ratios(family, raw)):
            out[i]["ms"] = keep[i]["ms"] * float(k)
    return out


def source_plan(log, seed: int, zoo_first: bool = True) -> list[dict]:
    """The source log's units to measure here, in order: its in-situ zoo models (unless
    ``zoo_first`` is False: 68-80 % of the zoo within ±10 % instead of 78-88 % at the same
    budgets), then its packs of specs in a random order (seeded)."""
    units = sorted((u for u in log.units.values() if u["kernels"]), key=lambda u: u["unit"])
    packs = [u for u in units if u["kind"] == "pack"]
    random.Random(seed).shuffle(packs)
    zoo = [u for u in units if u["kind"] == "zoo"] if zoo_first else []
    return zoo + packs


def transfer(source_bundle, out_dir, store=None, progress: bool = True, rules_file=None,
             backend=None, max_samples: int = DEFAULT_SAMPLES, seed: int = 0,
             expect_backend: str | None = None, minutes: float | None = None,
             zoo_first: bool = True):
    """A bundle for this machine from ``max_samples`` kernels timed here and the samples of
    ``source_bundle`` (a name or folder of the same backend), as the module docstring says.
    ``store``: the sample log (default ``~/.cache/nnmeter-tvm/samples-<backend>-transfer.jsonl``;
    a stopped transfer resumes from it); ``rules_file``: partition with these (default
    ``rules/<backend>.json``, as a build); ``backend``: to measure on (None: the source's);
    ``expect_backend``: the backend name the caller asked for (checked against the source's);
    ``minutes``: the time budget (default the source's build config's); ``zoo_first``: see
    :func:`source_plan`."""
    from .. import features
    from ..predictors import Predictor, load_predictor

    with warnings.catch_warnings():  # built on another CPU: that is the point here
        warnings.simplefilter("ignore", MismatchWarning)
        source = load_predictor(source_bundle)
    if not source.models:
        raise BundleError(f"--transfer-from {source_bundle}: the bundle has no trained cost "
                          "model to carry; give a built bundle")
    if expect_backend and expect_backend != source.backend:
        raise BundleError(f"--transfer-from {source_bundle}: a bundle for {source.backend!r}, "
                          f"not {expect_backend!r}; carry a bundle of the same backend")
    there = bundle_builder(source)
    cfg = replace(there.config, max_samples=max_samples, seed=seed,
                  minutes=there.config.minutes if minutes is None else minutes)
    store = store or Path("~/.cache/nnmeter-tvm") / f"samples-{cfg.backend}-transfer.jsonl"
    builder = Builder(cfg, store=store, progress=Progress(progress), backend=backend,
                      rules_file=rules_file)
    builder.features = features
    builder.predictor = Predictor(cfg.backend, rules_file=rules_file)
    builder.measure_calibration()
    builder._phase("calibration")
    retimed = builder.measure_units(source_plan(there.log, seed, zoo_first), "kernels")
    builder._phase("kernels")
    own = builder.samples()
    ratios = KernelRatios(source, features, own, seed)
    builder.carried = carried(there.samples(), ratios, own)
    builder.transferred = {"bundle": str(source_bundle), "created": source.meta.get("created"),
                           "machine": source.meta.get("machine"),
                           "samples_carried": len(builder.carried), "samples_here": len(own),
                           "ratios": ratios.summary()}
    builder._phase("ratios")
    return builder._fit_and_write(out_dir, [], retimed, len(builder.log.drifted_units()))
