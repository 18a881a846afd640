"""The predictor: partition a graph into kernels, price each kernel, sum.

    total_ms = fixed_overhead_ms + sum over kernels of (scale * kernel_ms + per_kernel_overhead_ms)

``kernel_ms`` comes from the kernel family's XGBoost model when the bundle has one, otherwise
from the generic FLOPs/bytes model (:mod:`.fallback`), and then the kernel is flagged
``fallback=True`` in the report.  A kernel with a feature above the range its family's model
was trained on (``FamilyModel.outside``: trees cannot extrapolate) is flagged
``extrapolated=True``, and the report's warnings say which features when those kernels carry
``EXTRAPOLATED_WARN_SHARE`` of the prediction or more.  So is a kernel of an op (or a mode)
its model never saw in training (``FamilyModel.unseen``: a Resize in a family trained on
reshapes and transposes), with a warning naming the op whatever its share: the trees price it
as one of the ops they saw, 2-100x off for some (``benchmarks/results/unseen-ops/``).  The two
overhead terms are the backend's per-run cost and per-kernel dispatch cost, and ``scale``
corrects kernel times taken from a profiler; all three are fitted on whole models when the
bundle was built (0, 0, 1 without a bundle).  Each kernel's reported ``ms`` includes its
dispatch overhead; the fixed per-run overhead is in ``report.predictor["fixed_overhead_ms"]``
and in ``total_ms``.  The per-kernel term may be negative (profiler times include a little
profiling cost per kernel); a kernel is never priced below ``KERNEL_FLOOR`` times its
cost-model time.  A *view* kernel (an op the backend runs as no kernel: an alias, or a
duplicate it merged) costs 0 and its cost model is named ``view``.

A ``Predictor`` with no trained models is valid: every kernel is then priced by the fallback.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from ..graph import Graph
from ..report import KernelPrediction, Report
from .fallback import GenericModel, generic_stats, kernel_stats


KERNEL_FLOOR = 0.25  # fraction of its cost-model time below which no kernel is priced
# extrapolated kernels get a warning line when they carry this share of the prediction: on the
# zoo, 137 of 680 models flag kernels of under 1 % of their time (reshapes and concats a little
# larger than any sample) and are as accurate as the rest (benchmarks/results/extend-wide/)
EXTRAPOLATED_WARN_SHARE = 0.01


class Predictor:
    """Kernel-level latency predictor for one backend.

    Parameters are stored as given (a loaded bundle passes them all): ``backend`` (name),
    ``rules`` (the backend's fusion rules; when None they are loaded on first use from
    ``rules_file``, else from ``rules/<backend>.json``),
    ``models`` ({family: FamilyModel}), ``fallback`` (GenericModel), ``overhead``
    ({"fixed_ms", "per_kernel_ms"}), ``meta`` (the bundle's metadata), ``warnings`` (raised
    when loading, e.g. another CPU than the bundle's; repeated in every report).
    """

    def __init__(self, backend: str, rules=None, models=None, fallback=None, overhead=None,
                 meta=None, warnings=(), name: str | None = None, rules_file=None):
        self.backend = backend
        self._rules = rules
        self.rules_file = rules_file
        self.models = dict(models or {})
        self.fallback = fallback if fallback is not None else GenericModel(backend=backend)
        self.overhead = {"fixed_ms": 0.0, "per_kernel_ms": 0.0, "scale": 1.0} | dict(overhead or {})
        self.meta = dict(meta or {})
        self.warnings = tuple(warnings)
        self.name = name or backend
        self._table = None  # the flattened trees, built on first use

    def __repr__(self):
        fams = ", ".join(sorted(self.models)) or "none (fallback only)"
        return f"Predictor(backend={self.backend!r}, name={self.name!r}, families: {fams})"

    # ---- the pieces it relies on ------------------------------------------------------
    @property
    def rules(self):
        if self._rules is None:
            from nnmeter_tvm.rules import check_backend

            from .bundle import load_backend_rules

            source = str(self.rules_file) if self.rules_file else self.backend
            self._rules = check_backend(load_backend_rules(source), self.backend, source)
        return self._rules

    def partition(self, graph: Graph) -> list:
        from ..kernels import partition

        return list(partition(graph, self.rules))

    @property
    def info(self) -> dict:
        """The ``predictor`` block of every report."""
        fam = self.meta.get("families", {})
        return {
            "name": self.name,
            "backend": self.backend,
            "backend_version": self.meta.get("backend", {}).get("version"),
            "schema_version": self.meta.get("schema_version"),
            "source": self.meta.get("source"),
            "trained_families": sorted(self.models),
            "fixed_overhead_ms": float(self.overhead["fixed_ms"]),
            "per_kernel_overhead_ms": float(self.overhead["per_kernel_ms"]),
            "kernel_scale": float(self.overhead.get("scale", 1.0)),
            "heldout_acc10": {f: v.get("heldout", {}).get("acc10") for f, v in fam.items()},
        }

    # ---- prediction -------------------------------------------------------------------
    def predict(self, model_or_graph, input_shapes=None) -> Report:
        """Predict an ONNX model (path or ModelProto) or a :class:`Graph`."""
        return self.predict_graph(self._as_graph(model_or_graph, input_shapes))

    def predict_graph(self, graph: Graph) -> Report:
        with _collector_paused():
            return self._predict_batch([(graph, self.partition(graph))])[0]

    def predict_kernels(self, graph: Graph, kernels) -> Report:
        """Price kernels someone else formed (e.g. TVM's fused functions) on ``graph``."""
        return self._predict_batch([(graph, list(kernels))])[0]

    def predict_many(self, graphs) -> list[Report]:
        """Batched prediction: one cost-model call per kernel family across all models."""
        graphs = [self._as_graph(g, None) for g in graphs]
        with _collector_paused():
            return self._predict_batch([(g, self.partition(g)) for g in graphs])

    def kernel_ms(self, graph: Graph, kernels) -> tuple[np.ndarray, np.ndarray]:
        """(ms without overhead, fallback flags) for each kernel; the builder uses this."""
        priced = self._price([(graph, list(kernels))])
        return priced.ms[0], priced.fallback[0]

    # ---- internals ----------------------------------------------------------------------
    @staticmethod
    def _as_graph(model, input_shapes) -> Graph:
        if isinstance(model, Graph):
            return model
        from ..onnx_import import load_graph

        return load_graph(model, input_shapes)

    def _price(self, items) -> "_Priced":
        """Per item: kernel times (ms, no overhead), fallback flags, cost-model names, and the
        kernels beyond their model's training range."""
        features = _features()
        ms = [np.zeros(len(ks)) for _, ks in items]
        fb = [np.zeros(len(ks), dtype=bool) for _, ks in items]
        names = [[""] * len(ks) for _, ks in items]
        if features is None:  # no feature module: price everything from graph statistics
            for i, (graph, kernels) in enumerate(items):
                stats = [kernel_stats(k, graph) for k in kernels]
                ms[i][:] = self.fallback.predict(stats) if stats else 0.0
                fb[i][:] = True
                names[i] = ["fallback:generic"] * len(kernels)
            return _Priced(ms, fb, names, [{} for _ in items])
        pairs, bounds = [], [0]
        for graph, kernels in items:
            pairs.extend((k, graph) for k in kernels)
            bounds.append(len(pairs))
        flat_ms = np.zeros(len(pairs))
        flat_fb = np.zeros(len(pairs), dtype=bool)
        # an object array: each family's name is set at its rows' positions in one step
        flat_names = np.full(len(pairs), "", dtype=object)
        outside = {}  # flat position -> the features beyond the trained range
        # views (ops the backend runs as no kernel: aliases, common subexpressions it merged)
        # cost nothing; only the others are priced
        priced_at = [i for i, (k, _) in enumerate(pairs) if not k.attrs.get("view")]
        if len(priced_at) < len(pairs):
            flat_names[:] = "view"  # the priced kernels are named by family below
            pairs = [pairs[i] for i in priced_at]
        configs, index = features.configs_by_family(pairs, return_index=True)
        if len(priced_at) < len(flat_ms):
            at = np.asarray(priced_at, dtype=np.intp)
            index = {f: at[pos] for f, pos in index.items()}
        encoded, inverse = {}, {}
        for family, raw in configs.items():
            if len(raw) > 1:  # repeated layers: price each distinct configuration once
                raw, inverse[family] = _distinct_rows(raw)
            encoded[family] = features.encode(family, raw)
        priced = self._cost_models(encoded)
        for family, x in encoded.items():
            if family in priced:
                pred, flag, label = priced[family], False, family
            else:
                pred = self.fallback.predict(generic_stats(features, family, x))
                flag, label = True, f"fallback:generic({family})"
            if family in inverse:
                pred = pred[inverse[family]]
            pos = index[family]
            flat_ms[pos] = pred
            flat_fb[pos] = flag
            flat_names[pos] = label
            if family in priced:
                outside.update(self._outside(family, x, inverse.get(family), pos))
        ms = [flat_ms[a:b] for a, b in zip(bounds, bounds[1:])]
        fb = [flat_fb[a:b] for a, b in zip(bounds, bounds[1:])]
        names = [flat_names[a:b].tolist() for a, b in zip(bounds, bounds[1:])]
        out = [{} for _ in items]
        if outside:  # each flagged position to its item (a NAS batch has thousands)
            at = np.fromiter(outside, dtype=np.intp, count=len(outside))
            for p, i in zip(at.tolist(), (np.searchsorted(bounds, at, "right") - 1).tolist()):
                out[i][p - bounds[i]] = outside[p]
        return _Priced(ms, fb, names, out)

    def _outside(self, family: str, x, inverse, positions) -> dict:
        """{flat position: (family, features)} of the rows of ``x`` beyond the range the
        family's model was trained on, or of an op it never saw (its code field named;
        ``inverse`` maps kernels to distinct rows)."""
        mask = self.models[family].outside(x)
        if mask is None or not mask.any():
            return {}
        feature_names = self.models[family].feature_names
        hit = {int(i): tuple(feature_names[j] for j in np.flatnonzero(mask[i]))
               for i in np.flatnonzero(mask.any(axis=1))}
        rows = inverse if inverse is not None else range(len(x))
        return {int(p): (family, hit[r]) for p, r in zip(positions, rows) if r in hit}

    def _cost_models(self, encoded: dict) -> dict:
        """ms for the families that have a trained model: every family's trees walked in one
        C++ pass (:mod:`.trees`; the same result for one model or a batch)."""
        batch = {f: x for f, x in encoded.items() if f in self.models}
        if not batch:
            return {}
        if self._table is None:
            from .trees import TreeTable

            self._table = TreeTable({f: m.booster for f, m in self.models.items()})
        raw = self._table.predict(batch)
        return {f: self.models[f].finish(raw[f], batch[f]) for f in batch}

    def _predict_batch(self, items) -> list[Report]:
        priced = self._price(items)
        fixed = float(self.overhead["fixed_ms"])
        per_kernel = float(self.overhead["per_kernel_ms"])
        scale = float(self.overhead.get("scale", 1.0))
        info = self.info
        reports = []
        for (graph, kernels), k_ms, k_fb, k_names, k_out in zip(items, *priced):
            # a (negative) per-kernel correction never takes a kernel below a quarter of its
            # cost-model time
            k_ms = np.maximum(scale * k_ms + per_kernel, KERNEL_FLOOR * k_ms)
            if "view" in k_names:  # no kernel, no dispatch
                k_ms[[n == "view" for n in k_names]] = 0.0
            # tolist(): Python floats and bools at once, not a NumPy scalar per kernel
            preds = tuple(
                KernelPrediction(k.name, k.type, tuple(k.nodes), t, f, n)
                for k, t, f, n in zip(kernels, k_ms.tolist(), k_fb.tolist(), k_names))
            if k_out:
                preds = tuple(p._replace(extrapolated=True) if i in k_out else p
                              for i, p in enumerate(preds))
            warnings = self.warnings
            if k_fb.any():
                types = sorted({k.type for k, f in zip(kernels, k_fb) if f})
                warnings += (f"{int(k_fb.sum())} kernel(s) priced by the generic FLOPs/bytes "
                             f"fallback (no trained model): {', '.join(types)}",)
            if k_out:
                share = float(k_ms[list(k_out)].sum()) / max(fixed + float(k_ms.sum()), 1e-12)
                if share >= EXTRAPOLATED_WARN_SHARE:
                    warnings += (_outside_warning(k_out, share),)
                unseen = sorted({kernels[i].type for i, (f, feats) in k_out.items()
                                 if self.models[f].unseen_in(feats)})
                if unseen:
                    warnings += (_unseen_warning(unseen, self.name),)
            reports.append(Report(model=graph.name, predictor=info,
                                  total_ms=float(fixed + k_ms.sum()), kernels=preds,
                                  warnings=warnings))
        return reports


class _Priced(NamedTuple):
    """What ``Predictor._price`` returns, per item (one list entry per graph)."""

    ms: list          # kernel ms without overhead
    fallback: list    # bool per kernel: no trained model
    names: list       # the cost model of each kernel
    outside: list     # {kernel index: (family, features beyond the trained range)}


def _outside_warning(outside: dict, share: float) -> str:
    """One line: how many kernels, their share of the prediction, and per family the features
    beyond the range."""
    by_family: dict[str, dict] = {}  # family -> its features in schema order (dict: ordered)
    for family, feats in outside.values():
        by_family.setdefault(family, {}).update(dict.fromkeys(feats))
    what = "; ".join(f"{f}: {', '.join(list(v)[:5])}" + (", ..." if len(v) > 5 else "")
                     for f, v in sorted(by_family.items()))
    return (f"{len(outside)} kernel(s), {100 * share:.0f} % of the predicted time, beyond the "
            f"range of their cost model's training samples, priced by extrapolation and likely "
            f"less accurate ({what})")


def _unseen_warning(types: list, name: str) -> str:
    """One line: the kernel types of ops their cost model never saw, and how to sample them
    (``--models`` takes any op; the ops grid samples many, not all: not Gelu or Pow)."""
    return (f"kernel(s) of an op their cost model never saw ({', '.join(types)}): priced as an "
            f"op it did see, possibly off by 2x or more; on this machine `nnmeter-tvm build "
            f"--extend {name} --models M.onnx -o DIR` adds the kernels of models that run them "
            f"(--grid ops instead of --models: standalone samples of tanh, erf, resize and "
            f"other ops)")


@contextmanager
def _collector_paused():
    """Python's cycle collector off for the duration (back on after, unless it was off).

    A prediction makes ~10 objects per kernel (kernels, their attributes, rows, reports) that all
    live until its reports are built and form no reference cycles.  Left on, the collector
    counts them as survivors and runs full collections over the caller's whole heap (the loaded
    graphs...): ~10 % of a zoo batch, up to as much as the prediction itself when the caller
    holds more.  Refcounting frees them all anyway.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _distinct_rows(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows in first-seen order, index of each input row among them)."""
    seen: dict[bytes, int] = {}
    inverse = np.fromiter((seen.setdefault(r.tobytes(), len(seen)) for r in raw),
                          dtype=np.intp, count=len(raw))
    if len(seen) == len(raw):
        return raw, inverse
    first = np.zeros(len(seen), dtype=np.intp)
    first[inverse[::-1]] = np.arange(len(raw) - 1, -1, -1)
    return raw[first], inverse


def _features():
    """The feature module, or None while it is missing (then everything is on the fallback)."""
    try:
        from .. import features
    except ImportError:
        return None
    if not all(hasattr(features, f) for f in ("configs_by_family", "encode", "generic_columns")):
        return None
    return features
