"""Detect a backend's fusion rules by timing test models (nn-Meter's rule tester).

For every ordered pair ``op1 -> op2`` the given models contain (the zoo's, plus curated ones),
at more than one shape, time op1 alone (T1), op2 alone (T2) and the pair (T12) and apply

    fused  <=>  T1 + T2 - T12 > alpha * min(T1, T2)          (alpha = 0.5)

(:mod:`.rules_pair`); chains, forks, diamonds and joins are connection cases whose winning
grouping is recorded with its evidence (:mod:`.rules_connections`).  How a test model is timed
(the sum of its kernels' durations, over interleaved sessions) is in :mod:`.rules_timing`; how
per-shape timings become a verdict in :mod:`.rules_verdicts`.

The backend's own kernels only check the timed verdicts; they decide (``origin.method =
"observed"``) where timing is inconclusive at every shape, and they give what timing cannot
tell: the layout model, graph rewrites and views (:mod:`.rules_observe`).  Chain and join
cases come from the contexts a first partition with the pair rules meets in the zoo.
"""
from __future__ import annotations

import time

from .rules_cases import CaseBench
from .rules_connections import chain_rule, multi_input_rule, multi_output_rule
from .rules_observe import observe_layout, observe_rewrites, observe_views
from .rules_pair import pair_rule
from .rules_timing import BudgetExhausted, Measurer
from .rules_verdicts import ALPHA, LAUNCH_RESOLUTION_MS, RESOLUTION_MS
from .testcases import EMITTERS, Patterns

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


class RuleTester:
    """Detects the fusion rules of ``backend`` (see module docstring).

    ``shapes``: test shapes (default per backend, :mod:`.rules_cases`); ``repeats``: sessions
    per test model; ``prefix``: the layout prefix (``"auto"``: ``maxpool1`` on a backend with a
    blocked layout); ``observe``: read the backend's own kernels (the check, and what timing
    cannot tell); ``how``: ``"kernels"`` (profiler sums) or ``"session"`` (whole runs);
    ``launch``: the launch probe's shape (see :class:`.rules_cases.CaseBench`).
    ``progress``: called as ``progress("stage", name, total)``, ``progress("rule", label)`` and
    ``progress("measure", label)``.
    """

    def __init__(self, backend, *, alpha: float = ALPHA, shapes=None, repeats: int = 3,
                 prefix="auto", store=None, config=None, budget_s: float | None = None,
                 progress=None, observe: bool = True, timeout_s: float = 60.0,
                 how: str = "kernels", launch="auto"):
        self.backend, self.prefix_arg, self.observe = backend, prefix, observe
        self.measurer = Measurer(backend, store=store, config=config, budget_s=budget_s,
                                 progress=progress, timeout_s=timeout_s, how=how)
        self.bench = CaseBench(backend, alpha=alpha, shapes=shapes, repeats=repeats,
                               observe=observe, measurer=self.measurer, launch=launch)
        self.bench.set_layout(None, prefix)
        self.progress = progress or (lambda *a: None)
        self.rewrites: tuple = ()
        self.known: set = set()
        self.added_to: dict | None = None    # the rules file this run adds to

    def detect(self, patterns: Patterns, graphs=(), *, curated: bool = True, known=None):
        """All rules for ``patterns`` (from :func:`collect_patterns` on ``graphs``).

        ``known``: a Rules object to add to: its rules, layout model and rewrites are kept, and
        only the patterns it has no rule for are tested (e.g. the pairs of a model family the
        file was not detected on)."""
        start = time.perf_counter()
        bench = self.bench
        bench.templates = dict(patterns.templates)
        self.known = set() if known is None else {_identity(r) for r in known.rules}
        self.added_to = None if known is None else {
            "date": known.date, "rules": len(known.rules), "detection": known.detection}
        if known is not None:
            bench.set_layout(known.layout, self.prefix_arg)
            self.rewrites = known.rewrites
        elif self.observe:
            self.progress("stage", "layout", 1)
            bench.set_layout(observe_layout(self.backend, bench.templates), self.prefix_arg)
            self.rewrites = observe_rewrites(self.backend, bench.origin("observed"))
        rules = list(known.rules) if known is not None else []
        try:
            rules += self._stage("pairs", self._pairs(patterns, curated), "pair",
                                 lambda key, ts: pair_rule(bench, *key, *ts))
            chains, joins = self.contexts(self.rules(rules), graphs)
            mo = dict(patterns.multi_output)
            if curated:
                for key in CURATED_CHAINS:
                    chains.setdefault(key, tuple(bench.template(op) for op in key))
                for key in CURATED_MULTI_INPUT:
                    joins.setdefault(key, tuple(bench.template(op) for op in key))
                for key in CURATED_DIAMONDS:
                    mo.setdefault(key + ("diamond",), tuple(bench.template(op) for op in key))
            rules += self._stage("chains", chains, "chain",
                                 lambda key, ts: chain_rule(bench, key, ts))
            rules += self._stage("multi_output", mo, "multi_output",
                                 lambda key, ts: multi_output_rule(bench, key[:3], key[3], ts))
            rules += self._stage("multi_input", joins, "multi_input",
                                 lambda key, ts: multi_input_rule(bench, key, ts))
        except BudgetExhausted:
            pass
        if self.observe:
            rules += observe_views(self.backend, bench.templates, bench.origin("observed"),
                                   getattr(patterns, "variants", None))
        self.measurer.report.seconds = time.perf_counter() - start
        return self.rules(rules, final=True)

    def _pairs(self, patterns, curated) -> dict:
        keys = dict(patterns.pairs)
        if curated:
            for a, b in CURATED_PAIRS:
                keys.setdefault((a, b), (self.bench.template(a), self.bench.template(b)))
        return keys

    def _stage(self, name, cases: dict, kind: str, make) -> list:
        """The rules of one stage (pairs, chains, ...), in a stable order; patterns with a
        known rule are not tested again."""
        cases = {k: ts for k, ts in cases.items()
                 if (kind, tuple(k[:3]), k[3] if kind == "multi_output" else None)
                 not in self.known}
        self.progress("stage", name, len(cases))
        out = []
        for key, ts in sorted(cases.items()):
            self.progress("rule", "_".join(key))
            r = make(key, ts)
            if r is not None:
                out.append(r)
        return out

    # -- the rules file -----------------------------------------------------------------------
    def rules(self, rules, final=False):
        """A Rules object of ``rules`` (first of each name), with the detection's record when
        ``final``."""
        from nnmeter_tvm.rules import Rules

        from ..backends.machine import describe_machine

        seen, unique = set(), []
        for r in rules:
            if r.name not in seen:
                seen.add(r.name)
                unique.append(r)
        b = self.bench
        return Rules(backend={"name": self.backend.name, "version": b.version,
                              "threads": getattr(self.backend, "threads", 1)},
                     machine=describe_machine(), alpha=b.alpha, date=b.date,
                     rules=tuple(unique), layout=b.layout, rewrites=self.rewrites,
                     detection=self._detection(unique) if final else {})

    def _detection(self, rules) -> dict:
        rep, b = self.measurer.report, self.bench
        return {
            "shapes": [s.to_dict() for s in b.shapes], "prefix": b.prefix, "suffix": b.suffix,
            "alpha": b.alpha, "resolution_ms": RESOLUTION_MS,
            "timing": ("sum of the kernels' durations in the backend's profiler, per run"
                       if self.measurer.how == "kernels" else "whole runs"),
            "launch_probe": _launch_probe(b.shapes),
            "repeats": b.repeats, "protocol": _config_dict(self.measurer.config),
            "measurements": rep.measurements, "reused_from_store": rep.reused,
            "failed": rep.failed, "seconds": round(rep.seconds, 1),
            "measuring_seconds": round(rep.measuring_s, 1), "complete": rep.complete,
            "verdicts_by_origin": verdicts_by_origin(rules),
            **({"added_to": {**self.added_to, "added": len(rules) - self.added_to["rules"]}}
               if self.added_to else {}),
        }

    # -- contexts for chains and joins from a provisional partition ---------------------------
    def contexts(self, rules, graphs):
        """(chain cases, join cases) the partition meets in ``graphs`` under ``rules``."""
        from ..kernels.partition import _Partitioner
        from .testcases import template_of

        chains, joins = {}, {}
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
                    key = (lead.op, u.op, v.op)
                    if lead.name != u.name and key not in chains and \
                            all(o in EMITTERS for o in key):
                        chains[key] = (tm[lead.name], tm[u.name], tm[v.name])
                    if p.decide_single(u, v).fused:
                        fusable.append(p.lead(u.name))
                if len(fusable) >= 2 and v.op in ("add", "mul", "concat"):
                    key = (fusable[0].op, fusable[1].op, v.op)
                    if key not in joins and all(o in EMITTERS for o in key):
                        joins[key] = (tm[fusable[0].name], tm[fusable[1].name], tm[v.name])
                p.visit(v)
        return chains, joins


def _identity(rule) -> tuple:
    """What a rule is a rule for: kind, ops and topology (as :meth:`RuleTester._stage` keys)."""
    return rule.kind, tuple(rule.ops), rule.topology if rule.kind == "multi_output" else None


def _launch_probe(shapes) -> dict | None:
    """The launch probe's record in the rules file (None without one)."""
    launch = next((s for s in shapes if s.launch), None)
    if launch is None:
        return None
    return {"shape": launch.label, "timing": "whole runs, net of a model with no kernel",
            "resolution_ms": LAUNCH_RESOLUTION_MS,
            "decides": "which ops share a kernel, where it is conclusive"}


def verdicts_by_origin(rules) -> dict:
    """Counts of the verdicts by how they were reached (see rules/SCHEMA.md)."""
    methods = {}
    for r in rules:
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
    return methods


def _config_dict(config) -> dict | None:
    if config is None:
        return None
    from dataclasses import asdict

    return {k: v for k, v in asdict(config).items() if k != "lock_path"}
