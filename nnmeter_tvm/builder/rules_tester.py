"""Detect a backend's fusion rules by timing test cases (nn-Meter's rule tester).

For every ordered pair ``op1 -> op2`` the zoo contains (plus a few curated ones), at several
shapes, time ``op1`` alone (T1), ``op2`` alone (T2) and ``op1 -> op2`` (T12), each minus T0, the
trivial model's time (the session's fixed per-run overhead, plus the layout prefix; without
this T1 + T2 - T12 would hold one overhead too many and lean towards "fused").  Then

    fused  <=>  T1 + T2 - T12 > alpha * min(T1, T2)          (alpha = 0.5)

Three-op chains, forks and diamonds (one tensor, two readers) and two producers into one
add/concat are *connection cases*: every way of grouping their ops into kernels predicts the
block's time as the sum of measured parts, and the grouping closest to the measured block
wins.  The winner is recorded as a case (``conv | bn+relu``), never as a boolean, with the
latencies (median, p10, p90) and shapes behind it.

Times are the p10 of the runs (see :attr:`Timed.value`); the evidence keeps median, p10 and
p90.  Per-shape verdicts are combined by majority.  When a backend has a blocked layout (observed in
its own kernels, :func:`observe_layout`) and a verdict holds exactly at the shapes whose
channels are block-aligned, the rule gets ``requires: ["blocked"]``.

What timing cannot tell is taken from the backend's own kernels when it reports them, and
marked ``origin.method = "observed"``: the layout model (where the backend inserts reorders),
which op runs as no kernel at all (``view``), and a verdict on ops too cheap to time (both
below the resolution).  Chain and multi-input cases are generated from the contexts a first
partition with the pair rules actually meets in the zoo.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
from datetime import datetime, timezone

from .rules_observe import backend_kernels, observe_layout, observe_rewrites, observe_views
from .testcases import (EMITTERS, CaseShape, Patterns, Step, Template, build_case,
                        default_template, main_input_shape)

ALPHA = 0.5
UNRELIABLE = "unreliable"   # observed_case: the backend's own kernel list is broken here
RESOLUTION_MS = 0.002          # below this (after T0) an op is too cheap to judge by timing
# how far apart two measurements of one model taken minutes apart may be (p10): relative and
# absolute parts; a verdict nearer its threshold than twice the combined noise is inconclusive
DRIFT_REL, DRIFT_ABS_MS = 0.003, 0.0002
# onnxruntime is fast: shapes large enough that an activation costs a few microseconds
ORT_SHAPES = (CaseShape(32, 14), CaseShape(32, 56), CaseShape(18, 28))
# a binary consumer is also tested with its other operand in the plain layout (ORT only)
ORT_MIXED = CaseShape(32, 28, plain_other=True)
TVM_SHAPES = (CaseShape(16, 16), CaseShape(16, 32), CaseShape(24, 20))
CURATED_PAIRS = (
    ("pad", "conv"), ("conv", "relu"), ("relu", "conv"), ("conv", "bn"), ("conv", "relu6"),
    ("conv", "sigmoid"), ("conv", "hardswish"), ("conv", "hardsigmoid"), ("dwconv", "bn"),
    ("dwconv", "relu6"), ("gconv", "bn"), ("gconv", "relu"), ("conv", "add"), ("bn", "relu"),
    ("add", "relu"), ("gemm", "relu"), ("gemm", "sigmoid"), ("matmul", "add"),
    ("matmul", "softmax"), ("transpose", "matmul"), ("slice", "conv"), ("maxpool", "relu"),
    ("concat", "conv"), ("split", "conv"), ("globalavgpool", "reshape"), ("reshape", "gemm"),
)
CURATED_CHAINS = (("conv", "bn", "relu"), ("conv", "add", "relu"), ("dwconv", "bn", "relu6"))
CURATED_DIAMONDS = (("conv", "sigmoid", "mul"), ("conv", "hardsigmoid", "mul"))
CURATED_MULTI_INPUT = (("conv", "conv", "add"), ("conv", "conv", "concat"))


@dataclass(frozen=True)
class Timed:
    """A measurement's statistics (ms) and its store key."""

    median: float
    p10: float
    p90: float
    key: str
    base: "Timed | None" = None   # the trivial model at the same input shape (T0)

    @property
    def value(self) -> float:
        """The statistic verdicts use: p10, the fastest decile of the runs, which the other
        processes on a shared machine disturb least (the median moves by more than a small
        op costs when the other core is busy)."""
        return self.p10

    @property
    def net(self) -> float:
        """This model's time minus its T0 (the trivial model at the same input shape)."""
        return self.value - (self.base.value if self.base is not None else 0.0)

    def to_dict(self, *_unused) -> dict:
        d = {"median_ms": round(self.median, 5), "p10_ms": round(self.p10, 5),
             "p90_ms": round(self.p90, 5)}
        if self.base is not None:
            d["t0_p10_ms"] = round(self.base.value, 5)
            d["net_ms"] = round(self.net, 5)
        return d


class BudgetExhausted(Exception):
    """The time budget ran out; what was measured is in the store."""


@dataclass
class DetectionReport:
    """What a detection did: counts, the time it took, and whether the budget cut it short."""

    measurements: int = 0
    reused: int = 0
    measuring_s: float = 0.0      # the timed seconds behind every measurement used, new or reused
    failed: list = field(default_factory=list)
    seconds: float = 0.0
    complete: bool = True


class Measurer:
    """Times test models on a backend; reuses measurements already in ``store`` (resumable)."""

    def __init__(self, backend, *, store=None, config=None, timeout_s: float = 60.0,
                 budget_s: float | None = None, progress=None):
        self.backend, self.store, self.config = backend, store, config
        self.timeout_s, self.budget_s = timeout_s, budget_s
        self.progress = progress
        self.start = time.perf_counter()
        self.cache: dict[str, Timed | None] = {}
        self.report = DetectionReport()
        self._version = backend.version()

    def time(self, label: str, model) -> Timed | None:
        from ..backends.base import load

        loaded = load(model)
        key = loaded.key(f"rules/{label}")
        if key in self.cache:
            return self.cache[key]
        found = None
        if self.store is not None:
            found = self.store.get(self.backend.name, key, backend_version=self._version)
        if found is not None:
            self.report.reused += 1
        else:
            if self.budget_s is not None and time.perf_counter() - self.start > self.budget_s:
                self.report.complete = False
                raise BudgetExhausted(label)
            try:
                found = self.backend.measure(loaded, key=key, store=self.store,
                                             config=self.config, timeout_s=self.timeout_s)
            except Exception as exc:  # a backend that cannot run the pattern: no verdict
                self.report.failed.append(f"{label}: {str(exc).splitlines()[0][:160]}")
                found = None
            self.report.measurements += 1
            if found is not None and not found.ok:
                self.report.failed.append(f"{label}: {found.error}")
                found = None
        if found is not None:
            self.report.measuring_s += getattr(found, "total_s", 0.0) or 0.0
        timed = None if found is None else Timed(found.median_ms, found.p10_ms, found.p90_ms, key)
        self.cache[key] = timed
        if self.progress is not None:
            self.progress("measure", label)
        return timed


# ---- the tester -----------------------------------------------------------------------------

class RuleTester:
    """Detects the fusion rules of ``backend`` (see module docstring).

    ``shapes``: test shapes (default: aligned and unaligned channels, small and large HW, per
    backend); ``prefix``: the layout prefix (``"maxpool1"`` on backends with a blocked layout);
    ``observe``: use the backend's own kernels for what timing cannot tell (when it has them).
    ``progress``: called as ``progress("stage", name, total)``, ``progress("rule", label)`` and
    ``progress("measure", label)``.
    """

    def __init__(self, backend, *, alpha: float = ALPHA, shapes=None, prefix="auto",
                 store=None, config=None, budget_s: float | None = None, progress=None,
                 observe: bool = True, timeout_s: float = 60.0):
        self.backend = backend
        self.alpha = alpha
        default = TVM_SHAPES if backend.name.startswith("tvm") else ORT_SHAPES
        self.shapes = tuple(shapes or default)
        self.prefix_arg = prefix
        self.suffix = None
        self.observe = observe
        self.measurer = Measurer(backend, store=store, config=config, budget_s=budget_s,
                                 progress=progress, timeout_s=timeout_s)
        self.progress = progress or (lambda *a: None)
        self.layout = None
        self.rewrites: tuple = ()
        self.prefix = None
        self.templates: dict[str, Template] = {}
        self.date = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.version = backend.version()

    # -- measurement helpers -------------------------------------------------------------------
    def template(self, op: str) -> Template:
        return self.templates.get(op) or default_template(op)

    def t(self, label: str, steps, shape: CaseShape, outputs=None, in_shape=None) -> Timed | None:
        """Time a test model; the result carries T0 at the same main input shape (``base``)."""
        steps = list(steps)
        main = tuple(in_shape) if in_shape else main_input_shape(steps[0].template, shape)
        base = self.t0(shape, main)
        if base is None:
            return None
        model = self.model(label, steps, shape, outputs, in_shape=in_shape)
        if in_shape is not None:
            label += "/in" + "x".join(map(str, in_shape))
        context = f"{self.prefix or 'none'}-{self.suffix or 'none'}"
        timed = self.measurer.time(f"{label}/{shape.label}/{context}", model)
        return None if timed is None else replace(timed, base=base)

    def shapes_for(self, consumer: Template):
        """The test shapes, plus the mixed-layout one when the consumer is binary and the
        backend has a layout (a blocked producer meeting a plain second operand)."""
        if self.layout is not None and consumer.op in ("add", "mul", "sub", "div", "concat") \
                and self.shapes == ORT_SHAPES:
            return self.shapes + (ORT_MIXED,)
        return self.shapes

    def model(self, label, steps, shape, outputs=None, roles=None, in_shape=None):
        return build_case(list(steps), shape, prefix=self.prefix, suffix=self.suffix,
                          outputs=outputs, name=label.replace("/", "_"), roles=roles,
                          in_shape=in_shape)

    def out_shape(self, steps, shape: CaseShape, role: str) -> tuple:
        """The output shape of ``role`` in a test model (what the next op reads)."""
        shapes = {}
        build_case(list(steps), shape, shapes=shapes)
        return shapes[role]

    def blocked_at(self, steps, shape: CaseShape, role: str, producer: str) -> tuple | None:
        """``(producer blocked, inputs of role all blocked)`` in this test model by the layout
        model (None without a layout)."""
        if self.layout is None:
            return None
        from nnmeter_tvm.rules import Rules

        from ..kernels.partition import _Partitioner
        from ..onnx_import import load_graph

        roles = {}
        try:
            graph = load_graph(self.model("layout", steps, shape, roles=roles))
        except Exception:  # noqa: BLE001 - a test model the importer cannot read: no context
            return None
        p = _Partitioner(graph, Rules(backend={}, machine={}, alpha=self.alpha, date="",
                                      rules=(), layout=self.layout))
        for v in graph.nodes:
            p.visit(v)
        prod = graph.node(roles[producer])
        return (bool(p.blocked.get(prod.outputs[0], False)),
                p.inputs_blocked(graph.node(roles[role])))

    def t0(self, shape: CaseShape, in_shape=None) -> Timed | None:
        """The trivial model at main input shape ``in_shape``: the fixed per-run overhead (the
        call, the input, the prefix) and next to no work: the prefix, then a one-element Slice.
        (A same-size Identity or Reshape would not do: writing a graph output of the input's
        size costs a pass over memory, as much as a Relu.)"""
        main = tuple(in_shape) if in_shape else (1, shape.c, shape.hw, shape.hw)
        tiny = Template("slice", (("rank_in", len(main)), ("tiny", True)))
        steps = [] if self.suffix is not None else [Step("a", tiny)]
        model = self.model("T0", steps, shape, in_shape=main)
        context = f"{self.prefix or 'none'}-{self.suffix or 'none'}"
        return self.measurer.time(f"T0/in{'x'.join(map(str, main))}/{context}", model)

    def single(self, t: Template, shape: CaseShape, *, binary_inputs: int = 1,
               in_shape=None) -> Timed | None:
        """``t`` alone; ``in_shape``: the shape it reads inside the pattern (default: the
        main input's)."""
        ins = ("in", "other") if binary_inputs == 2 else ("in",)
        return self.t(f"single/{_tlabel(t)}", [Step("a", t, ins)], shape, in_shape=in_shape)

    # -- detection ----------------------------------------------------------------------------
    def detect(self, patterns: Patterns, graphs=(), *, curated: bool = True):
        """All rules for ``patterns`` (from :func:`collect_patterns` on ``graphs``)."""
        start = time.perf_counter()
        self.templates = dict(patterns.templates)
        if self.observe:
            self.progress("stage", "layout", 1)
            self.layout = observe_layout(self.backend, self.templates)
            self.rewrites = observe_rewrites(self.backend, self.origin("observed"))
        self.prefix = ("maxpool1" if self.layout is not None else None) \
            if self.prefix_arg == "auto" else self.prefix_arg
        # a backend with its own layout rewrites (onnxruntime) also refuses to fuse a node whose
        # output the graph returns: read every output with a one-element Slice there
        self.suffix = "slice1" if self.prefix == "maxpool1" else None
        rules = []
        try:
            pair_keys = dict(patterns.pairs)
            if curated:
                for a, b in CURATED_PAIRS:
                    pair_keys.setdefault((a, b), (self.template(a), self.template(b)))
            self.progress("stage", "pairs", len(pair_keys))
            for (a, b), (ta, tb) in sorted(pair_keys.items()):
                self.progress("rule", f"{a}_{b}")
                r = self.pair_rule(a, b, ta, tb)
                if r is not None:
                    rules.append(r)
            provisional = self._rules(rules)
            chains, multi_in = self.contexts(provisional, graphs)
            if curated:
                for key in CURATED_CHAINS:
                    chains.setdefault(key, tuple(self.template(op) for op in key))
                for key in CURATED_MULTI_INPUT:
                    multi_in.setdefault(key, tuple(self.template(op) for op in key))
            self.progress("stage", "chains", len(chains))
            for key, ts in sorted(chains.items()):
                self.progress("rule", "_".join(key))
                r = self.chain_rule(key, ts)
                if r is not None:
                    rules.append(r)
            mo = dict(patterns.multi_output)
            if curated:
                for key in CURATED_DIAMONDS:
                    mo.setdefault(key + ("diamond",), tuple(self.template(op) for op in key))
            self.progress("stage", "multi_output", len(mo))
            for key, ts in sorted(mo.items()):
                self.progress("rule", "_".join(key))
                r = self.multi_output_rule(key[:3], key[3], ts)
                if r is not None:
                    rules.append(r)
            self.progress("stage", "multi_input", len(multi_in))
            for key, ts in sorted(multi_in.items()):
                self.progress("rule", "_".join(key))
                r = self.multi_input_rule(key, ts)
                if r is not None:
                    rules.append(r)
        except BudgetExhausted:
            pass
        if self.observe:
            rules += observe_views(self.backend, self.templates, self.origin("observed"),
                                   getattr(patterns, "variants", None))
        self.measurer.report.seconds = time.perf_counter() - start
        return self._rules(rules, final=True)

    def _rules(self, rules, final=False):
        from nnmeter_tvm.rules import Rules
        from ..backends.machine import describe_machine

        rep = self.measurer.report
        detection = {
            "shapes": [s.to_dict() for s in self.shapes], "prefix": self.prefix,
            "suffix": self.suffix,
            "alpha": self.alpha, "resolution_ms": RESOLUTION_MS,
            "protocol": _config_dict(self.measurer.config),
            "measurements": rep.measurements, "reused_from_store": rep.reused,
            "failed": rep.failed, "seconds": round(rep.seconds, 1),
            "measuring_seconds": round(rep.measuring_s, 1), "complete": rep.complete,
        }
        seen, unique = set(), []
        for r in rules:
            if r.name not in seen:
                seen.add(r.name)
                unique.append(r)
        methods = {}
        for r in unique:
            key = r.origin.get("method")
            if key == "observed" and "timing says" in r.note:
                key = "observed_contradicting_timing"
            elif key == "observed" and "timing inconclusive" in r.note:
                key = "observed_timing_inconclusive"
            elif key == "observed" and "timing agrees" in r.note:
                key = "observed_timing_agrees_where_conclusive"
            elif key == "timing" and "checked" in r.note:
                key = "timing_checked"
            methods[key] = methods.get(key, 0) + 1
        detection["verdicts_by_origin"] = methods
        return Rules(backend={"name": self.backend.name, "version": self.version,
                              "threads": getattr(self.backend, "threads", 1)},
                     machine=describe_machine(), alpha=self.alpha, date=self.date,
                     rules=tuple(unique), layout=self.layout, rewrites=self.rewrites,
                     detection=detection if final else {})

    def origin(self, method: str) -> dict:
        return {"method": method, "backend": self.backend.name, "version": self.version,
                "date": self.date}

    # -- pair ---------------------------------------------------------------------------------
    def pair_rule(self, a: str, b: str, ta: Template, tb: Template):
        from nnmeter_tvm.rules import Rule

        if a not in EMITTERS or b not in EMITTERS:
            return None
        b_ins = _consumer_inputs(tb, "a")
        evidence, verdicts = [], []
        for shape in self.shapes_for(tb):
            t1 = self.single(ta, shape)
            t2 = self.single(tb, shape, binary_inputs=len(b_ins),
                             in_shape=self.out_shape([Step("a", ta)], shape, "a"))
            t12 = self.t(f"pair/{_tlabel(ta)}/{_tlabel(tb)}", [Step("a", ta), Step("b", tb, b_ins)],
                         shape, outputs=("b",))
            if None in (t1, t2, t12):
                continue
            n1, n2, n12 = t1.net, t2.net, t12.net
            saving = n1 + n2 - n12
            threshold = self.alpha * min(n1, n2)
            fused = saving > threshold
            noise = _noise(t1, t2, t12, t1.base, t2.base)
            cheap = (max(n1, n2) < RESOLUTION_MS or min(n1, n2) < RESOLUTION_MS / 2
                     or abs(saving - threshold) < 2 * noise)
            steps = [Step("a", ta), Step("b", tb, b_ins)]
            blocked = self.blocked_at(steps, shape, "b", "a")
            seen = self.observed_case(steps, ("a", "b"), shape)
            unreliable = seen is UNRELIABLE
            seen = (None if cheap else fused) if unreliable else \
                (None if seen is None else seen == ((0, 1),))
            verdicts.append((shape, fused, not cheap, blocked, seen))
            evidence.append({"shape": shape.to_dict(), "t1": t1.to_dict(), "t2": t2.to_dict(),
                             "t12": t12.to_dict(),
                             "saving_ms": round(saving, 5), "threshold_ms": round(threshold, 5),
                             "verdict": "fused" if fused else "separate",
                             "noise_ms": round(noise, 5), "inconclusive": cheap,
                             "blocked_inputs": blocked,
                             "observed": ("unreliable (the backend's kernel list reports real "
                                          "nodes as inserted): timing stands in where "
                                          "conclusive")
                             if unreliable else
                             None if seen is None else ("fused" if seen else "separate")})
        if not verdicts:
            return None
        fused, requires, method, note = self.decide(verdicts)
        groups = ((0, 1),) if fused else ((0,), (1,))
        return Rule(name=f"{a}_{b}", kind="pair", ops=(a, b), groups=groups,
                    requires=requires, origin=self.origin(method),
                    evidence=tuple(evidence), note=note)

    def decide(self, verdicts):
        """(value, requires, method, note) from per-shape ``(shape, timed value, conclusive,
        layout context, observed value or None)``.

        Timing decides where it is conclusive; the backend's own kernels (when it reports them)
        check it.  Timing inconclusive everywhere: the observed case.  Timing conclusive but
        contradicted by the kernels: the observed case, and the note says what timing found
        (a fusion that saves no time at the test shapes, or a timing error)."""
        sure = [(s, v, b) for s, v, ok, b, _ in verdicts if ok]
        seen = [(s, o, b) for s, _, _, b, o in verdicts if o is not None]
        obs = self.combine(seen) if seen else None
        if sure:
            value, requires, note = self.combine(sure)
            if obs is None:
                return value, requires, "timing", note
            if (value, tuple(requires)) == (obs[0], tuple(obs[1])):
                return value, requires, "timing", (note + "; " if note else "") + \
                    "checked: the backend's own kernels agree"
            agree = all(o is None or v == o for _, v, ok, _, o in verdicts if ok)
            where = ", ".join(s.label for s, _, ok, _, _ in verdicts if ok)
            if agree:
                return obs[0], obs[1], "observed", (
                    f"timing agrees with the backend's own kernels where it is conclusive "
                    f"({where}); the kernels at the other shapes give the rest"
                    f"{' (' + obs[2] + ')' if obs[2] else ''}")
            return obs[0], obs[1], "observed", (
                f"timing says {_vtext(value)}{' if ' + ','.join(requires) if requires else ''} "
                f"at {where}, the backend's own kernels say {_vtext(obs[0])}"
                f"{' if ' + ','.join(obs[1]) if obs[1] else ''}: the kernels decide (a fusion "
                "that saves no time at the test shapes, or a timing error); timings kept")
        if obs is not None:
            return obs[0], obs[1], "observed", (
                "timing inconclusive at every shape (within twice the noise of the decision, or "
                "an op below the resolution): the backend's own kernels decide; timings kept"
                + (f" ({obs[2]})" if obs[2] else ""))
        value, requires, note = self.combine([(s, v, b) for s, v, _, b, _ in verdicts])
        return value, requires, "timing", ("timing inconclusive at every shape; " + note).strip()

    def observed_case(self, steps, roles_in_order, shape: CaseShape):
        """The grouping of ``roles_in_order`` into the backend's own kernels for a test model
        at ``shape`` (None when the backend does not report kernels, or observe is off)."""
        if not self.observe:
            return None
        roles = {}
        truth = backend_kernels(self.backend, self.model("observe", steps, shape, roles=roles))
        if truth is None:
            return None
        if any(k.inserted and k.op_type not in ("ReorderInput", "ReorderOutput")
               for k in truth.kernels):
            return UNRELIABLE     # the backend lost real nodes in its own kernel list
        where = {}
        for i, k in enumerate(truth.kernels):
            for n in k.nodes:
                where[n] = i
        groups: dict = {}
        for idx, role in enumerate(roles_in_order):
            key = where.get(roles[role], ("alone", role))
            groups.setdefault(key, []).append(idx)
        return tuple(sorted(tuple(g) for g in groups.values()))

    def combine(self, verdicts):
        """(verdict, requires, note) from per-shape verdicts [(shape, value, context)].

        ``context`` is ``(producer blocked, consumer inputs all blocked)`` by the layout model
        (None without one).  One value everywhere: no condition.  Otherwise the first condition
        of ``blocked``, ``plain``, ``compatible`` that splits the contexts exactly where the
        value changes (the fused value is kept, with the condition); else the majority."""
        values = [v for _, v, _ in verdicts]
        if len(set(values)) <= 1:
            return values[0], (), ""
        by_ctx: dict = {}
        for _, v, ctx in verdicts:
            if ctx is not None:
                by_ctx.setdefault(tuple(ctx), []).append(v)
        if len(by_ctx) >= 2:
            major = {ctx: max(set(vs), key=vs.count) for ctx, vs in by_ctx.items()}
            for cond, pred in CONDITION_PREDICATES:
                on = {major[c] for c in major if pred(*c)}
                off = {major[c] for c in major if not pred(*c)}
                if len(on) == 1 and len(off) == 1 and on != off:
                    v_on, v_off = on.pop(), off.pop()
                    if _fusion(v_on) > _fusion(v_off):
                        note = (f"{_vtext(v_on)} when '{cond}' holds, {_vtext(v_off)} otherwise "
                                "(by the layout of the test models)")
                        return v_on, (cond,), note
        counts = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        best = max(counts, key=lambda v: (counts[v], -values.index(v)))
        note = "shape-dependent: " + ", ".join(f"{s.label}={_vtext(v)}" for s, v, _ in verdicts)
        return best, (), note

    # -- connection cases ---------------------------------------------------------------------
    def _closest(self, block: float, cases: dict, tol: float = 0.0):
        """The case whose predicted time is closest to the block's; among cases within ``tol``
        of the best, the one with the most kernels (a fusion must earn its place)."""
        best = min(abs(v - block) for v in cases.values())
        near = [c for c in cases if abs(cases[c] - block) <= best + tol]
        return max(near, key=lambda c: (len(c), -list(cases).index(c)))

    def _connection_rule(self, kind, ops, topology, per_shape, name, steps=None, roles=None):
        """Combine per-shape winners [(shape, groups, evidence)] into a Rule (see decide)."""
        from nnmeter_tvm.rules import Rule

        if not per_shape:
            return None
        verdicts = []
        for shape, groups, e in per_shape:
            seen = self.observed_case(steps, roles, shape) if steps else None
            if seen is UNRELIABLE:
                e["observed"] = ("unreliable (the backend's kernel list reports real nodes as "
                                 "inserted): timing stands in where conclusive")
                seen = None if e["inconclusive"] else groups
            else:
                e["observed"] = None if seen is None else _case(ops, seen)
            verdicts.append((shape, groups, not e["inconclusive"], e.get("blocked_inputs"), seen))
        winner, requires, method, note = self.decide(verdicts)
        return Rule(name=name, kind=kind, ops=tuple(ops), groups=winner, requires=requires,
                    topology=topology, origin=self.origin(method),
                    evidence=tuple(e for _, _, e in per_shape), note=note)

    def chain_rule(self, ops, ts):
        a, b, c = ts
        if any(t.op not in EMITTERS for t in ts):
            return None
        bi, ci = _consumer_inputs(b, "a"), _consumer_inputs(c, "b")
        per_shape = []
        for shape in self.shapes_for(c):
            s1 = self.out_shape([Step("a", a)], shape, "a")
            s2 = self.out_shape([Step("a", a), Step("b", b, bi)], shape, "b")
            parts = {
                "op1": self.single(a, shape),
                "op2": self.single(b, shape, binary_inputs=len(bi), in_shape=s1),
                "op3": self.single(c, shape, binary_inputs=len(ci), in_shape=s2),
                "op1+op2": self.t(f"pair/{_tlabel(a)}/{_tlabel(b)}", [Step("a", a), Step("b", b, bi)],
                                  shape, outputs=("b",)),
                "op2+op3": self.t(f"pair/{_tlabel(b)}/{_tlabel(c)}",
                                  [Step("b", b, _consumer_inputs(b, "in")),
                                   Step("c", c, _consumer_inputs(c, "b"))], shape, outputs=("c",),
                                  in_shape=s1),
                "block": self.t(f"chain/{_tlabel(a)}/{_tlabel(b)}/{_tlabel(c)}",
                                [Step("a", a), Step("b", b, bi), Step("c", c, ci)], shape,
                                outputs=("c",)),
            }
            blocked = self.blocked_at([Step("a", a), Step("b", b, bi), Step("c", c, ci)], shape,
                                      "c", "b")
            if None in parts.values():
                continue
            n = {k: v.net for k, v in parts.items()}
            cases = {
                ((0,), (1,), (2,)): n["op1"] + n["op2"] + n["op3"],
                ((0, 1), (2,)): n["op1+op2"] + n["op3"],
                ((0,), (1, 2)): n["op1"] + n["op2+op3"],
                ((0, 1, 2),): n["op1+op2"] + n["op2+op3"] - n["op2"],
            }
            per_shape.append(self._case_evidence(shape, ops, parts, n["block"], cases, blocked))
        return self._connection_rule("chain", ops, None, per_shape, "_".join(ops),
                                     [Step("a", a), Step("b", b, bi), Step("c", c, ci)],
                                     ("a", "b", "c"))

    def multi_output_rule(self, ops, topology, ts):
        a, b, c = ts
        if any(t.op not in EMITTERS for t in ts):
            return None
        bi = _consumer_inputs(b, "a")
        if topology == "diamond":
            if c.op not in ("add", "mul", "sub", "div", "concat"):
                return None
            ci = ("a", "b")
        else:
            ci = _consumer_inputs(c, "a")
        per_shape = []
        for shape in self.shapes_for(c):
            s1 = self.out_shape([Step("a", a)], shape, "a")
            parts = {
                "op1": self.single(a, shape),
                "op2": self.single(b, shape, binary_inputs=len(bi), in_shape=s1),
                "op3": self.single(c, shape, binary_inputs=2 if topology == "diamond" else len(ci),
                                   in_shape=s1),
                "op1+op2": self.t(f"pair/{_tlabel(a)}/{_tlabel(b)}", [Step("a", a), Step("b", b, bi)],
                                  shape, outputs=("b",)),
            }
            if topology == "diamond":
                # op2 -> op3 reading op2's input too: the inner diamond without op1
                parts["op2+op3"] = self.t(
                    f"diamond/in/{_tlabel(b)}/{_tlabel(c)}",
                    [Step("b", b, ("in",)), Step("c", c, ("in", "b"))], shape, outputs=("c",),
                    in_shape=s1)
            else:
                parts["op1+op3"] = self.t(f"pair/{_tlabel(a)}/{_tlabel(c)}",
                                          [Step("a", a), Step("c", c, ci)], shape, outputs=("c",))
            steps = [Step("a", a), Step("b", b, bi), Step("c", c, ci)]
            parts["block"] = self.t(f"{topology}/{_tlabel(a)}/{_tlabel(b)}/{_tlabel(c)}", steps,
                                    shape, outputs=("c",) if topology == "diamond" else ("b", "c"))
            blocked = self.blocked_at(steps, shape, "b", "a")
            if None in parts.values():
                continue
            n = {k: v.net for k, v in parts.items()}
            if topology == "diamond":
                cases = {
                    ((0,), (1,), (2,)): n["op1"] + n["op2"] + n["op3"],
                    ((0, 1), (2,)): n["op1+op2"] + n["op3"],
                    ((0,), (1, 2)): n["op1"] + n["op2+op3"],
                    ((0, 1, 2),): n["op1+op2"] + n["op2+op3"] - n["op2"],
                }
            else:
                cases = {
                    ((0,), (1,), (2,)): n["op1"] + n["op2"] + n["op3"],
                    ((0, 1), (2,)): n["op1+op2"] + n["op3"],
                    ((0, 2), (1,)): n["op1+op3"] + n["op2"],
                    ((0, 1, 2),): n["op1+op2"] + n["op1+op3"] - n["op1"],
                }
            per_shape.append(self._case_evidence(shape, ops, parts, n["block"], cases, blocked))
        name = f"{ops[0]}_{topology}_{ops[1]}_{ops[2]}"
        return self._connection_rule("multi_output", ops, topology, per_shape, name,
                                     [Step("a", a), Step("b", b, bi), Step("c", c, ci)],
                                     ("a", "b", "c"))

    def multi_input_rule(self, ops, ts):
        a, b, c = ts
        if any(t.op not in EMITTERS for t in ts) or c.op not in ("add", "mul", "sub", "div", "concat"):
            return None
        probe = self.shapes[0]
        sa = self.out_shape([Step("a", a)], probe, "a")
        sb = self.out_shape([Step("b", b)], probe, "b")
        if sa[:1] + sa[2:] != sb[:1] + sb[2:] or (c.op != "concat" and sa != sb):
            return None     # the two producers do not meet at one shape when read from one input
        per_shape = []
        for shape in self.shapes_for(c):
            parts = {
                "op1": self.single(a, shape),
                "op2": self.single(b, shape),
                "op3": self.single(c, shape, binary_inputs=2,
                                   in_shape=self.out_shape([Step("a", a)], shape, "a")),
                "op1+op3": self.t(f"pair/{_tlabel(a)}/{_tlabel(c)}",
                                  [Step("a", a), Step("c", c, ("a", "other"))], shape, outputs=("c",)),
                "op2+op3": self.t(f"pair/{_tlabel(b)}/{_tlabel(c)}",
                                  [Step("b", b), Step("c", c, ("b", "other"))], shape, outputs=("c",)),
                "block": self.t(f"join/{_tlabel(a)}/{_tlabel(b)}/{_tlabel(c)}",
                                [Step("a", a), Step("b", b, ("in2",)), Step("c", c, ("a", "b"))],
                                shape, outputs=("c",)),
            }
            blocked = self.blocked_at([Step("a", a), Step("b", b, ("in2",)), Step("c", c, ("a", "b"))],
                                      shape, "c", "a")
            if None in parts.values():
                continue
            n = {k: v.net for k, v in parts.items()}
            cases = {
                ((0,), (1,), (2,)): n["op1"] + n["op2"] + n["op3"],
                ((0, 2), (1,)): n["op1+op3"] + n["op2"],
                ((0,), (1, 2)): n["op1"] + n["op2+op3"],
                ((0, 1, 2),): n["op1+op3"] + n["op2+op3"] - n["op3"],
            }
            ev = self._case_evidence(shape, ops, parts, n["block"], cases, blocked)
            shape_, groups, evidence = ev
            # which single producer takes the consumer cannot be seen by timing when both
            # cases predict the same time: keep input order, and say so
            first, second = cases[((0, 2), (1,))], cases[((0,), (1, 2))]
            if groups == ((0,), (1, 2)) and abs(first - second) < _spread(parts):
                groups = ((0, 2), (1,))
                evidence["winner"] = _case(ops, groups)
                evidence["tie"] = "first and second producer predict the same time; input order kept"
            per_shape.append((shape_, groups, evidence))
        name = f"{ops[0]}_{ops[1]}_into_{ops[2]}"
        return self._connection_rule("multi_input", ops, None, per_shape, name,
                                     [Step("a", a), Step("b", b, ("in2",)), Step("c", c, ("a", "b"))],
                                     ("a", "b", "c"))

    def _case_evidence(self, shape, ops, parts, block, cases, blocked=None):
        singles = [parts[k].net for k in ("op1", "op2", "op3") if k in parts]
        tol = max(0.0, 0.5 * self.alpha * min(singles))
        winner = self._closest(block, cases, tol)
        noise = _noise(*parts.values(), *{p.base.key: p.base for p in parts.values()}.values())
        rivals = sorted(abs(v - block) for g, v in cases.items() if g != winner)
        inconclusive = (min(singles) < RESOLUTION_MS / 2
                        or (rivals and rivals[0] - abs(cases[winner] - block) < 2 * noise))
        evidence = {"shape": shape.to_dict(),
                    "parts": {k: v.to_dict() for k, v in parts.items()},
                    "cases_ms": {_case(ops, g): round(v, 5) for g, v in cases.items()},
                    "block_ms": round(block, 5), "tolerance_ms": round(tol, 5),
                    "noise_ms": round(noise, 5), "inconclusive": bool(inconclusive),
                    "winner": _case(ops, winner), "blocked_inputs": blocked}
        return shape, winner, evidence

    # -- contexts for chains and multi-input from a provisional partition ---------------------
    def contexts(self, rules, graphs):
        """(chain cases, multi-input cases) the partition meets in ``graphs`` under ``rules``."""
        from ..kernels.partition import _Partitioner
        from .testcases import template_of

        chains, multi_in = {}, {}
        for g in graphs:
            p = _Partitioner(g, rules)
            tm = {n.name: template_of(n) for n in g}
            for v in g.nodes:
                fusable = []
                for pname in g.predecessors(v.name):
                    u = g.node(pname)
                    if not p.single_consumer(u):
                        continue
                    lead = p.lead(u.name)
                    if lead.name != u.name:
                        key = (lead.op, u.op, v.op)
                        if key not in chains and all(o in EMITTERS for o in key):
                            chains[key] = (tm[lead.name], tm[u.name], tm[v.name])
                    if p.decide_single(u, v).fused:
                        fusable.append(p.lead(u.name))
                if len(fusable) >= 2 and v.op in ("add", "mul", "concat"):
                    key = (fusable[0].op, fusable[1].op, v.op)
                    if key not in multi_in and all(o in EMITTERS for o in key):
                        multi_in[key] = (tm[fusable[0].name], tm[fusable[1].name], tm[v.name])
                p.visit(v)
        return chains, multi_in


# ---- small helpers ----------------------------------------------------------------------------

def _consumer_inputs(t: Template, src: str) -> tuple:
    if t.op in ("add", "sub", "mul", "div", "concat", "matmul"):
        return (src, "other")
    return (src,)


def _tlabel(t: Template) -> str:
    extra = []
    d = dict(t.params)
    for k in ("kernel_shape", "strides", "group_kind", "broadcast", "rank_in", "axis"):
        if k in d:
            v = d[k]
            extra.append(f"{k[0]}{'x'.join(map(str, v)) if isinstance(v, tuple) else v}")
    return t.op + ("(" + ",".join(extra) + ")" if extra else "")


def _case(ops, groups) -> str:
    return " | ".join("+".join(ops[i] for i in g) for g in groups)


CONDITION_PREDICATES = (   # (name, holds(producer blocked, consumer inputs all blocked))
    ("blocked", lambda pb, ib: ib),
    ("plain", lambda pb, ib: not ib and not pb),
    ("compatible", lambda pb, ib: (not pb) or ib),
)


def _fusion(v) -> int:
    """How fused a verdict is: True/False for pairs, fewer kernels for a grouping."""
    if isinstance(v, bool):
        return int(v)
    return -len(v)


def _vtext(v) -> str:
    if isinstance(v, bool):
        return "fused" if v else "separate"
    return str(v)


def _noise(*timed) -> float:
    """How much the sum of these measurements may move between passes (ms): relative drift
    of each, plus an absolute floor, combined in quadrature."""
    return float(np.sqrt(sum((DRIFT_REL * t.value) ** 2 for t in timed) + DRIFT_ABS_MS ** 2))


def _spread(parts: dict) -> float:
    return max((v.p90 - v.p10) for v in parts.values()) / 2


def _config_dict(config) -> dict | None:
    if config is None:
        return None
    from dataclasses import asdict

    return {k: v for k, v in asdict(config).items() if k != "lock_path"}
