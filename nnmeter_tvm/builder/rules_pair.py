"""Pair rules: is ``op1 -> op2`` one kernel?  nn-Meter's criterion on timed test models.

At each test shape: op1 alone (T1), op2 alone at the shape it reads in the pair (T2), and the
pair (T12), each net of T0; fused when ``T1 + T2 - T12 > alpha * min(T1, T2)``.  The verdicts
of the shapes where timing is conclusive decide (see :func:`rules_verdicts.decide`).
"""
from __future__ import annotations

from .rules_cases import BINARY, UNRELIABLE, Part, consumer_inputs, single, tlabel
from .rules_verdicts import decide, noise, pair_verdict, resolution, with_bases
from .testcases import EMITTERS, Step, Template

UNRELIABLE_NOTE = ("unreliable (the backend's kernel list reports real nodes as inserted): "
                   "timing stands in where conclusive")


def pair_rule(bench, a: str, b: str, ta: Template, tb: Template):
    """The pair rule ``a -> b`` with its evidence, or None when no shape could be timed.

    When ``b`` is a binary op reading a constant (a bias, a scale) and that fuses, the same
    pair is tested again with ``b`` reading an activation; a fusion that holds only for the
    constant gets the ``const_operand`` condition (onnxruntime folds MatMul + bias Add into a
    Gemm, but not MatMul + residual Add)."""
    from nnmeter_tvm.rules import Rule

    if a not in EMITTERS or b not in EMITTERS:
        return None
    evidence, verdicts = _timed(bench, ta, tb)
    if not verdicts:
        return None
    fused, requires, method, note = decide(verdicts)
    if fused and tb.op in BINARY and tb.get("const_operand"):
        plain_tb = Template(tb.op, tuple((k, v) for k, v in tb.params
                                         if k not in ("const_operand", "const_rank")))
        more, other = _timed(bench, ta, plain_tb, operand="activation")
        evidence += more
        if other and not decide(other)[0]:
            requires = tuple(requires) + ("const_operand",)
            note = (note + "; " if note else "") + (
                f"fused when {b} reads a constant, separate when it reads an activation "
                "(evidence marked operand: activation)")
    return Rule(name=f"{a}_{b}", kind="pair", ops=(a, b),
                groups=((0, 1),) if fused else ((0,), (1,)), requires=tuple(requires),
                origin=bench.origin(method), evidence=tuple(evidence), note=note)


def _timed(bench, ta: Template, tb: Template, operand: str | None = None):
    """(evidence, verdicts) of ``ta -> tb`` at each test shape (see module docstring);
    ``operand`` labels the evidence of a variant."""
    steps = (Step("a", ta), Step("b", tb, consumer_inputs(tb, "a")))
    evidence, verdicts = [], []
    for shape in bench.shapes_for(tb):
        t = bench.time_parts(shape, {
            "t1": single(ta),
            "t2": single(tb, len(steps[1].inputs), bench.out_shape(steps[:1], shape, "a")),
            "t12": Part(f"pair/{tlabel(ta)}/{tlabel(tb)}", steps, outputs=("b",)),
        })
        if t is None:
            continue
        v = pair_verdict(t["t1"].net, t["t2"].net, t["t12"].net, bench.alpha,
                         noise(*with_bases(*t.values()), shape=shape), resolution(shape))
        blocked = bench.blocked_at(steps, shape, "b", "a")
        seen = bench.observed_case(steps, ("a", "b"), shape)
        if seen is UNRELIABLE:
            observed, seen = UNRELIABLE_NOTE, None if v["inconclusive"] else v["fused"]
        else:
            seen = None if seen is None else seen == ((0, 1),)
            observed = None if seen is None else ("fused" if seen else "separate")
        verdicts.append((shape, v["fused"], not v["inconclusive"], blocked, seen))
        evidence.append({"shape": shape.to_dict(), **({"operand": operand} if operand else {}),
                         **{k: x.to_dict() for k, x in t.items()},
                         **{k: x for k, x in v.items() if k != "fused"},
                         "verdict": "fused" if v["fused"] else "separate",
                         "blocked_inputs": blocked, "observed": observed})
    return evidence, verdicts
