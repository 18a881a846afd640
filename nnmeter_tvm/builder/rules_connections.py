"""Connection rules: how three ops group into kernels, by timing.

Chains (``op1 -> op2 -> op3``), forks (one tensor, two readers), diamonds (swish:
``op1 -> op2 -> op3 <- op1``) and joins (two producers into one add / mul / concat).  At each
test shape the ops alone, the pairs and the whole block are timed (net of T0); every way of
grouping the three ops into kernels predicts the block's time from those parts, and the
grouping closest to the measured block wins (:func:`rules_verdicts.case_verdict`).

All three in one kernel (chains and diamonds): when op2 -> op3 fuses as a pair, op3 keeps the
saving it has with op2 (``T12 + T23 - T2``); otherwise op3 comes free as the kernel's epilogue
(``T12``: onnxruntime folds a bn into the conv and applies a relu on the conv's output while it
is in registers, though bn -> relu alone is no fused pair).
"""
from __future__ import annotations

from .rules_cases import BINARY, UNRELIABLE, Part, consumer_inputs, single, tlabel
from .rules_pair import UNRELIABLE_NOTE
from .rules_verdicts import (case_text, case_verdict, decide, launch_case_verdict, noise,
                             resolution, with_bases)
from .testcases import EMITTERS, Step

SEPARATE, FIRST_TWO, LAST_TWO, ALL = ((0,), (1,), (2,)), ((0, 1), (2,)), ((0,), (1, 2)), ((0, 1, 2),)
FIRST_AND_THIRD = ((0, 2), (1,))


def _all_fused(n, alpha: float) -> float:
    """All three in one kernel: op3 keeps the saving it has with op2 when op2 -> op3 is a
    fused pair by the criterion, else op3 comes free as the kernel's epilogue (see module
    docstring; predicting the carried saving of an unfused pair would repeat the
    ``op1+op2 | op3`` case and make every such chain a tie)."""
    saving = n["op2"] + n["op3"] - n["op2+op3"]
    if saving > alpha * min(n["op2"], n["op3"]):
        return n["op1+op2"] + n["op2+op3"] - n["op2"]
    return n["op1+op2"]


def chain_rule(bench, ops, ts):
    a, b, c = ts
    if any(t.op not in EMITTERS for t in ts):
        return None
    steps = (Step("a", a), Step("b", b, consumer_inputs(b, "a")),
             Step("c", c, consumer_inputs(c, "b")))

    def parts(shape):
        s1 = bench.out_shape(steps[:1], shape, "a")
        s2 = bench.out_shape(steps[:2], shape, "b")
        return {
            "op1": single(a),
            "op2": single(b, len(steps[1].inputs), s1),
            "op3": single(c, len(steps[2].inputs), s2),
            "op1+op2": Part(f"pair/{tlabel(a)}/{tlabel(b)}", steps[:2], outputs=("b",)),
            "op2+op3": Part(f"pair/{tlabel(b)}/{tlabel(c)}",
                            (Step("b", b, consumer_inputs(b, "in")), steps[2]),
                            outputs=("c",), in_shape=s1),
            "block": Part(f"chain/{tlabel(a)}/{tlabel(b)}/{tlabel(c)}", steps, outputs=("c",)),
        }

    def cases(n):
        return {SEPARATE: n["op1"] + n["op2"] + n["op3"], FIRST_TWO: n["op1+op2"] + n["op3"],
                LAST_TWO: n["op1"] + n["op2+op3"],
                ALL: _all_fused(n, bench.alpha)}

    return _connection_rule(bench, "chain", ops, None, "_".join(ops), steps, parts, cases,
                            ("c", "b"))


def multi_output_rule(bench, ops, topology, ts):
    a, b, c = ts
    if any(t.op not in EMITTERS for t in ts):
        return None
    if topology == "diamond" and c.op not in BINARY:
        return None
    ci = ("a", "b") if topology == "diamond" else consumer_inputs(c, "a")
    steps = (Step("a", a), Step("b", b, consumer_inputs(b, "a")), Step("c", c, ci))
    diamond = topology == "diamond"

    def parts(shape):
        s1 = bench.out_shape(steps[:1], shape, "a")
        p = {
            "op1": single(a),
            "op2": single(b, len(steps[1].inputs), s1),
            "op3": single(c, 2 if diamond else len(ci), s1),
            "op1+op2": Part(f"pair/{tlabel(a)}/{tlabel(b)}", steps[:2], outputs=("b",)),
        }
        if diamond:   # op2 -> op3 reading op2's input too: the inner diamond without op1
            p["op2+op3"] = Part(f"diamond/in/{tlabel(b)}/{tlabel(c)}",
                                (Step("b", b, ("in",)), Step("c", c, ("in", "b"))),
                                outputs=("c",), in_shape=s1)
        else:
            p["op1+op3"] = Part(f"pair/{tlabel(a)}/{tlabel(c)}", (steps[0], steps[2]),
                                outputs=("c",))
        p["block"] = Part(f"{topology}/{tlabel(a)}/{tlabel(b)}/{tlabel(c)}", steps,
                          outputs=("c",) if diamond else ("b", "c"))
        return p

    def cases(n):
        if diamond:
            return {SEPARATE: n["op1"] + n["op2"] + n["op3"], FIRST_TWO: n["op1+op2"] + n["op3"],
                    LAST_TWO: n["op1"] + n["op2+op3"],
                    ALL: _all_fused(n, bench.alpha)}
        return {SEPARATE: n["op1"] + n["op2"] + n["op3"], FIRST_TWO: n["op1+op2"] + n["op3"],
                FIRST_AND_THIRD: n["op1+op3"] + n["op2"],
                ALL: n["op1+op2"] + n["op1+op3"] - n["op1"]}

    name = f"{ops[0]}_{topology}_{ops[1]}_{ops[2]}"
    return _connection_rule(bench, "multi_output", ops, topology, name, steps, parts, cases,
                            ("b", "a"))


def multi_input_rule(bench, ops, ts):
    a, b, c = ts
    if any(t.op not in EMITTERS for t in ts) or c.op not in BINARY:
        return None
    probe = next((s for s in bench.shapes if not s.launch), bench.shapes[0])
    sa = bench.out_shape([Step("a", a)], probe, "a")
    sb = bench.out_shape([Step("b", b)], probe, "b")
    if sa[:1] + sa[2:] != sb[:1] + sb[2:] or (c.op != "concat" and sa != sb):
        return None     # the two producers do not meet at one shape when read from one input
    steps = (Step("a", a), Step("b", b, ("in2",)), Step("c", c, ("a", "b")))

    def parts(shape):
        return {
            "op1": single(a),
            "op2": single(b),
            "op3": single(c, 2, bench.out_shape(steps[:1], shape, "a")),
            "op1+op3": Part(f"pair/{tlabel(a)}/{tlabel(c)}",
                            (steps[0], Step("c", c, ("a", "other"))), outputs=("c",)),
            "op2+op3": Part(f"pair/{tlabel(b)}/{tlabel(c)}",
                            (Step("b", b), Step("c", c, ("b", "other"))), outputs=("c",)),
            "block": Part(f"join/{tlabel(a)}/{tlabel(b)}/{tlabel(c)}", steps, outputs=("c",)),
        }

    def cases(n):
        return {SEPARATE: n["op1"] + n["op2"] + n["op3"],
                FIRST_AND_THIRD: n["op1+op3"] + n["op2"], LAST_TWO: n["op1"] + n["op2+op3"],
                ALL: n["op1+op3"] + n["op2+op3"] - n["op3"]}

    name = f"{ops[0]}_{ops[1]}_into_{ops[2]}"
    return _connection_rule(bench, "multi_input", ops, None, name, steps, parts, cases,
                            ("c", "a"))


def _connection_rule(bench, kind, ops, topology, name, steps, parts_at, cases_of, context):
    """Time the parts at every shape, pick each shape's winner, and decide (see decide)."""
    from nnmeter_tvm.rules import Rule

    evidence, verdicts = [], []
    for shape in bench.shapes_for(steps[2].template):
        t = bench.time_parts(shape, parts_at(shape))
        if t is None:
            continue
        n = {k: v.net for k, v in t.items()}
        cases = cases_of(n)
        singles = [n[k] for k in ("op1", "op2", "op3")]
        launch = bench.launch_cost(shape) if shape.launch else None
        if launch is not None and launch.net > resolution(shape):
            v = launch_case_verdict(n["block"], cases, singles, launch.net,
                                    noise(*with_bases(*t.values(), launch), shape=shape))
        else:
            v = case_verdict(n["block"], cases, singles,
                             noise(*with_bases(*t.values()), shape=shape), bench.alpha,
                             resolution(shape))
        if kind == "multi_input":
            _keep_input_order(v, cases, t, ops)
        blocked = bench.blocked_at(steps, shape, *context)
        seen = bench.observed_case(steps, ("a", "b", "c"), shape)
        if seen is UNRELIABLE:
            observed, seen = UNRELIABLE_NOTE, None if v["inconclusive"] else v["winner"]
        else:
            observed = None if seen is None else case_text(ops, seen)
        verdicts.append((shape, v["winner"], not v["inconclusive"], blocked, seen))
        evidence.append({"shape": shape.to_dict(),
                         "parts": {k: x.to_dict() for k, x in t.items()},
                         "cases_ms": {case_text(ops, g): round(x, 5) for g, x in cases.items()},
                         "block_ms": round(n["block"], 5),
                         **{k: x for k, x in v.items() if k != "winner"},
                         "winner": case_text(ops, v["winner"]), "blocked_inputs": blocked,
                         "observed": observed})
    if not verdicts:
        return None
    winner, requires, method, note = decide(verdicts)
    return Rule(name=name, kind=kind, ops=tuple(ops), groups=winner, requires=requires,
                topology=topology, origin=bench.origin(method), evidence=tuple(evidence),
                note=note)


def _keep_input_order(v: dict, cases: dict, t: dict, ops):
    """Which single producer takes the consumer cannot be seen by timing when both cases
    predict the same time: keep input order, and say so."""
    first, second = cases[FIRST_AND_THIRD], cases[LAST_TWO]
    spread = max(x.spread for x in t.values())
    if v["winner"] == LAST_TWO and abs(first - second) < max(2 * v["noise_ms"], spread):
        v["winner"] = FIRST_AND_THIRD
        v["tie"] = "first and second producer predict the same time; input order kept"
