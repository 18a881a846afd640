"""Leave-one-family-out: cost models retrained without any kernel sample drawn from one family.

The builder logs every kernel sample (``nnmeter_tvm.builder.build.SampleLog``) but not which
zoo family's layers it was drawn from, so this module attributes each sample itself, and
conservatively:

- an **in-situ** sample (unit ``zoo:<family>:...``) comes from that family's model;
- a **grid** sample (origin ``grid``, ``Sampler.grid``, ``grid-wide``, ``Sampler.wide``, or
  ``grid-ops``, ``Sampler.ops``) was drawn from no family's layers and is kept for every family;
- a **sampled** spec (the spec its packed model was written for, else the spec read back) is
  attributed to family F when some layer of F's prior models has the same *structure*: every
  field but the channel counts equal (kind, H, W, kernel, stride, padding, depthwise or not,
  epilogue) and each channel count within the reach of the sampler's rescaling chain
  (``[0.5, 1.2]`` per step, one step for the initial draw plus one per adaptive round).

F's prior layers are the builder's own (``Builder.prior_models`` with the bundle's
``build.config``), partitioned with the bundle's rules.  The samples are read from the bundle's
own ``samples.jsonl.gz`` and the calibration times from its ``build.calibration_ms`` (the
measurement store first), so this runs on a fresh machine.  The cost models of every kernel
family, the generic fallback and the whole-model overhead (refitted on the calibration models
of the other families) are then retrained with the builder's own ``training.train_family`` /
``fit_overhead``.
"""
from __future__ import annotations

import contextlib
import json
import time
from collections import defaultdict

import numpy as np


def _structure(spec: dict) -> str:
    """The spec without its channel counts (depthwise kept as a flag)."""
    from nnmeter_tvm.builder.kernel_models import CHANNEL_FIELDS

    drop = set(CHANNEL_FIELDS.get(spec["kind"], ())) | {"groups"}
    out = {k: v for k, v in spec.items() if k not in drop}
    if spec["kind"] == "conv":
        out["dw"] = spec["groups"] == spec["cin"] == spec["cout"]
        out["grouped"] = spec["groups"] > 1
    for f in ("cs", "sizes"):  # a concat / split keeps its number of operands
        if f in spec:
            out[f"n_{f}"] = len(spec[f])
    return json.dumps(out, sort_keys=True)


def _channels(spec: dict) -> list[int]:
    from nnmeter_tvm.builder.sampler import _channels as channels

    return channels(spec)


class SampleAttribution:
    """Which families each logged sample may have been drawn from."""

    def __init__(self, priors: dict[str, list[dict]], steps: int):
        self.low, self.high = 0.5 ** steps, 1.2 ** steps
        self.index = defaultdict(lambda: defaultdict(list))  # structure -> family -> channels
        for family, specs in priors.items():
            for spec in specs:
                self.index[_structure(spec)][family].append(np.array(_channels(spec), float))

    def families(self, sample: dict) -> set[str]:
        out = set()
        unit = sample.get("unit", "")
        if unit.startswith("zoo:"):
            out.add(unit.split(":")[1])
        if sample.get("origin") in ("grid", "grid-wide", "grid-ops"):
            return out
        spec = json.loads(sample["target"]) if sample.get("target") else sample.get("spec")
        if not spec:
            return out
        ch = np.array(_channels(spec), float)
        for family, sources in self.index.get(_structure(spec), {}).items():
            for src in sources:
                if len(src) == len(ch) and np.all(ch >= self.low * src - 1) \
                        and np.all(ch <= self.high * src + 1):
                    out.add(family)
                    break
        return out


def build_priors(builder) -> dict[str, list[dict]]:
    """The kernel specs of each family's prior models (the builder's own list)."""
    from nnmeter_tvm.builder.kernel_models import spec_from_kernel

    out = {}
    for family, pairs in builder.prior_models().items():
        out[family] = [spec for graph, kernels in pairs for kernel in kernels
                       if (spec := spec_from_kernel(kernel, graph)) is not None]
    return out


def read_samples(predictor) -> tuple[list[dict], dict, object]:
    """The bundle's kernel samples, each tagged with its log ``unit``, its build config and
    the ``Builder`` that read them (its calibration models serve the overhead refits).

    The builder logs what it profiled (one unit per model, in-situ zoo model or packed kernel
    specs) and derives the samples from the log with the current rules; the same derivation
    (``Builder.rows``) is used here, with the bundle's predictor to partition.
    """
    from nnmeter_tvm.builder.build import bundle_builder

    builder = bundle_builder(predictor)
    config = dict((predictor.meta.get("build") or {}).get("config") or {})
    samples = [dict(row, unit=unit["unit"]) for unit in builder.log.units.values()
               for row in builder.rows(unit)]
    return samples, config, builder


@contextlib.contextmanager
def single_threaded_training():
    """The builder's XGBoost parameters with ``nthread=1`` for the block.

    Thirteen retrainings run while other processes load this 2-core machine, where XGBoost's
    two threads wait on each other (a 400-round fit took 55 s with 2 threads, 1.6 s with 1).
    Same trees otherwise.  (Asked of the builder: an ``nthread`` argument to ``train_family``.)
    """
    from nnmeter_tvm.builder import training

    saved = training.XGB_PARAMS
    training.XGB_PARAMS = dict(saved, nthread=1)
    try:
        yield
    finally:
        training.XGB_PARAMS = saved


class Retrainer:
    """Retrains the bundle's cost models on a subset of its samples (the builder's training)."""

    def __init__(self, predictor, samples, config: dict, builder, rounds: int | None = None,
                 bundle_targets: bool = False):
        self.base = predictor
        self.samples = samples
        self.config = config
        self.builder = builder
        self.rounds = rounds
        # True: each family keeps the target the bundle chose (no target selection, which is
        # 5 held-out splits x 3 targets of fits: --quick)
        self.bundle_targets = bundle_targets
        self._calib = None

    def predictor(self, keep) -> "object":
        """A Predictor trained on the samples ``keep(sample)`` accepts."""
        from nnmeter_tvm import features
        from nnmeter_tvm.builder.training import ROUNDS, TARGETS, train_family
        from nnmeter_tvm.predictors import Predictor
        from nnmeter_tvm.predictors.fallback import GenericModel, generic_stats

        by_family = defaultdict(list)
        for s in self.samples:
            if keep(s):
                by_family[s["family"]].append(s)
        models, stats, ms_all = {}, [], []
        seed = int(self.config.get("seed", 0))
        for family, rows in sorted(by_family.items()):
            x = features.encode(family, np.array([r["raw"] for r in rows], dtype=np.float64))
            ms = np.array([r["ms"] for r in rows])
            chosen = self.base.models.get(family) if self.bundle_targets else None
            with single_threaded_training():
                res = train_family(family, x, ms, None, features.feature_names(family),
                                   seed=seed, rounds=self.rounds or ROUNDS,
                                   targets=TARGETS if chosen is None else (chosen.target,))
            if res.model is not None:
                models[family] = res.model
            stats.append(generic_stats(features, family, x))
            ms_all.extend(ms.tolist())
        fallback = GenericModel(backend=self.base.backend)
        if stats:
            fallback.fit(np.vstack(stats), np.array(ms_all))
        out = Predictor(self.base.backend, rules=self.base.rules, models=models,
                        fallback=fallback, overhead=self.base.overhead,
                        name=f"{self.base.name}-retrained")
        return out, sum(len(v) for v in by_family.values())

    def calibration(self):
        """(family, graph, kernels, measured ms) of the build's overhead-calibration models,
        the builder's own list, read from the measurement store or the bundle's
        ``build.calibration_ms`` (nothing is measured)."""
        if self._calib is None:
            known = (self.base.meta.get("build") or {}).get("calibration_ms")
            self._calib = self.builder.calibration_rows(self.base, measure=False, known=known)
        return self._calib

    def refit_overhead(self, predictor, exclude_family: str | None) -> dict | None:
        base = self.base.overhead
        if not base.get("fixed_ms") and not base.get("per_kernel_ms") \
                and base.get("scale", 1.0) == 1.0:
            return None  # the bundle was built without an overhead term: keep it that way
        rows = [c for c in self.calibration() if c[0] != exclude_family]
        if len(rows) < 3:
            return None
        fit = self.builder.calibrate(predictor, rows)
        predictor.overhead = {k: fit[k] for k in ("fixed_ms", "per_kernel_ms", "scale")}
        return fit


def attributed_samples(predictor, without=(), quick: bool = False):
    """(samples, the families each is attributed to, a Retrainer over them, how many samples
    of origin ``without`` were left out) for the leave-one-family-out of ``predictor``'s
    bundle; ``quick``: see :func:`evaluate`."""
    from nnmeter_tvm.builder.build import origin_kind

    samples, config, builder = read_samples(predictor)
    kept = [s for s in samples if origin_kind(s["origin"]) not in without]
    attrib = SampleAttribution(build_priors(builder),
                               steps=1 + int(config.get("max_rounds", 4)))
    retrainer = Retrainer(predictor, kept, config, builder, rounds=100 if quick else None,
                          bundle_targets=quick)
    return kept, [attrib.families(s) for s in kept], retrainer, len(samples) - len(kept)


def evaluate(predictor, entries, feats, measured, store, quick=False, without=()):
    """Leave-one-family-out over the evaluation ``entries`` (their graphs and measured ms):
    the kernel-level predictor retrained per family, and the model-level baselines fitted on
    the other families' models; ``without``: sample origins left out of every retraining
    (``grid``: what the family-agnostic samples add); ``quick``: 100 boosting rounds and
    each family's target as the bundle chose it.  Returns (the report block,
    {"pred": per-model predictions})."""
    from . import baselines, metrics
    from .dataset import log

    from nnmeter_tvm.errors import NNMeterError

    fams = np.array([e.item.family for e in entries])
    try:
        samples, origin, retrainer, dropped = attributed_samples(predictor, without, quick)
    except (NNMeterError, KeyError, TypeError, ValueError) as exc:
        log(f"lofo skipped: {type(exc).__name__}: {exc}")
        return {"skipped": f"{type(exc).__name__}: {exc}"}, {}
    families = sorted(set(fams.tolist()))
    t0 = time.monotonic()
    log(f"lofo: {len(samples)} kernel samples attributed to the families' prior layers"
        + (f" ({dropped} of origin {', '.join(without)} left out)" if without else ""))
    if store is not None:
        retrainer.builder.measure_store = store.path
    pred = np.full(len(entries), np.nan)
    counts = {}
    for fam in families:
        idx = np.flatnonzero(fams == fam)
        keep_ids = {id(s) for s, o in zip(samples, origin) if fam not in o}
        p, kept = retrainer.predictor(lambda s: id(s) in keep_ids)
        retrainer.refit_overhead(p, exclude_family=fam)
        pred[idx] = [r.total_ms for r in p.predict_many([entries[i].graph for i in idx])]
        counts[fam] = {"kept": kept, "excluded": len(samples) - kept}
        acc = metrics.summarize(pred[idx], measured[idx])["acc10"]
        log(f"  lofo {fam}: {kept} samples kept, {len(samples) - kept} excluded, "
            f"±10 % {acc:.1f} % ({time.monotonic() - t0:.0f} s)")
    methods = {"nn-meter": metrics.by_group(fams, metrics.summarize, pred, measured)}
    for name, by_fam in baselines.fit_predict_leave_one_out(fams, feats, measured).items():
        p = np.full(len(entries), np.nan)
        for fam, values in by_fam.items():
            p[fams == fam] = values
        methods[name] = metrics.by_group(fams, metrics.summarize, p, measured)
    p_all, _ = retrainer.predictor(lambda s: True)
    fit = retrainer.refit_overhead(p_all, exclude_family=None)
    check = metrics.summarize([r.total_ms for r in p_all.predict_many([e.graph for e in entries])],
                              measured)
    check |= {"overhead": fit, "bundle_overhead": dict(predictor.overhead),
              "trained_families": sorted(p_all.models)}
    note = ("Each family's models predicted by cost models retrained without any kernel sample "
            "attributable to that family's layers (in-situ samples of its models, and every "
            "sampled spec with the structure of one of its layers, channels within the sampler's "
            "rescaling reach); the overhead refitted without its calibration models.  Model-level "
            "baselines: fitted on every other family's measured models.")
    if quick:
        note += ("  --quick: 100 boosting rounds, and each family keeps the target (log / relerr "
                 "/ logratio) the bundle chose on all samples instead of choosing it again.")
    if without:
        note += (f"  Samples of origin {', '.join(without)} ({dropped}) left out of every "
                 "retraining, the check on all samples included.")
    return ({"methods": methods, "samples": counts, "retrained_all": check, "note": note,
             "without_origins": list(without), "quick": quick,
             "seconds": round(time.monotonic() - t0, 1)},
            {"pred": pred})
