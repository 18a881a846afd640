"""From per-shape timings to one verdict: the pair criterion, the closest connection case,
when timing is conclusive, and how shape-dependent verdicts become conditions.

A verdict is a bool for pairs (fused or not) and a grouping of role indexes for connection
cases (``((0, 1), (2,))``).  Timing decides; the backend's own kernels, when it reports them,
only check the result, and stand in for timing where it is inconclusive at every shape.
"""
from __future__ import annotations

import numpy as np

ALPHA = 0.5
# below this (net of T0) an op is too cheap to judge by timing: the profiler counts whole
# microseconds per kernel, and a sub-microsecond op moves with where its buffers landed
RESOLUTION_MS = 0.001
# how far apart two sessions of one model taken minutes apart may be, beyond their measured
# spread: relative and absolute parts
DRIFT_REL, DRIFT_ABS_MS = 0.003, 0.0002

CONDITION_PREDICATES = (   # (name, holds(producer blocked, consumer inputs all blocked))
    ("blocked", lambda pb, ib: ib),
    ("plain", lambda pb, ib: not ib and not pb),
    ("compatible", lambda pb, ib: (not pb) or ib),
)


def noise(*timed) -> float:
    """How much the sum of these measurements may move between passes (ms): each one's spread
    over its sessions plus a relative drift, and an absolute floor, in quadrature."""
    return float(np.sqrt(sum(t.spread ** 2 + (DRIFT_REL * t.value) ** 2 for t in timed)
                         + DRIFT_ABS_MS ** 2))


def with_bases(*timed) -> list:
    """The measurements and their distinct T0s (each T0 counted once)."""
    bases = {t.base.key: t.base for t in timed if t.base is not None}
    return list(timed) + list(bases.values())


def pair_verdict(n1: float, n2: float, n12: float, alpha: float, noise_ms: float) -> dict:
    """nn-Meter's criterion on net times: fused when T1 + T2 - T12 > alpha * min(T1, T2);
    inconclusive when an op is below the resolution or the saving is within twice the noise
    of the threshold."""
    saving, threshold = n1 + n2 - n12, alpha * min(n1, n2)
    return {"saving_ms": round(saving, 5), "threshold_ms": round(threshold, 5),
            "fused": bool(saving > threshold), "noise_ms": round(noise_ms, 5),
            "inconclusive": bool(min(n1, n2) < RESOLUTION_MS
                                 or abs(saving - threshold) < 2 * noise_ms)}


def closest_case(block: float, cases: dict, tol: float = 0.0):
    """The case whose predicted time is closest to the block's; among cases within ``tol``
    of the best, the one with the most kernels (a fusion must earn its place).  ``cases``
    maps a grouping to its predicted time (ms)."""
    best = min(abs(v - block) for v in cases.values())
    near = [c for c in cases if abs(cases[c] - block) <= best + tol]
    return max(near, key=lambda c: (len(c), -list(cases).index(c)))


def case_verdict(block: float, cases: dict, singles, noise_ms: float, alpha: float) -> dict:
    """The winning grouping for a measured block; inconclusive when an op is below the
    resolution or the runner-up is within twice the noise of the winner."""
    tol = max(0.0, 0.5 * alpha * min(singles))
    winner = closest_case(block, cases, tol)
    rivals = sorted(abs(v - block) for g, v in cases.items() if g != winner)
    return {"winner": winner, "tolerance_ms": round(tol, 5), "noise_ms": round(noise_ms, 5),
            "inconclusive": bool(min(singles) < RESOLUTION_MS or (
                rivals and rivals[0] - abs(cases[winner] - block) < 2 * noise_ms))}


def decide(verdicts):
    """(value, requires, method, note) from per-shape ``(shape, timed value, conclusive,
    layout context, observed value or None)``.

    Timing decides where it is conclusive; the backend's own kernels (when it reports them)
    check it.  Timing inconclusive everywhere: the observed case.  Timing conclusive but
    contradicted by the kernels: the observed case, and the note says what timing found
    (a fusion that saves no time at the test shapes, or a timing error)."""
    sure = [(s, v, b) for s, v, ok, b, _ in verdicts if ok]
    seen = [(s, o, b) for s, _, _, b, o in verdicts if o is not None]
    obs = combine(seen) if seen else None
    if sure:
        value, requires, note = combine(sure)
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
            f"timing says {vtext(value)}{' if ' + ','.join(requires) if requires else ''} "
            f"at {where}, the backend's own kernels say {vtext(obs[0])}"
            f"{' if ' + ','.join(obs[1]) if obs[1] else ''}: the kernels decide (a fusion "
            "that saves no time at the test shapes, or a timing error); timings kept")
    if obs is not None:
        return obs[0], obs[1], "observed", (
            "timing inconclusive at every shape (within twice the noise of the decision, or "
            "an op below the resolution): the backend's own kernels decide; timings kept"
            + (f" ({obs[2]})" if obs[2] else ""))
    value, requires, note = combine([(s, v, b) for s, v, _, b, _ in verdicts])
    return value, requires, "timing", ("timing inconclusive at every shape; " + note).strip()


def combine(verdicts):
    """(verdict, requires, note) from per-shape verdicts [(shape, value, context)].

    ``context`` is ``(producer blocked, consumer inputs all blocked)`` by the layout model
    (None without one).  One value everywhere: no condition.  Otherwise the first condition
    of ``blocked``, ``plain``, ``compatible`` that splits the contexts exactly where the
    value changes (the fused value is kept, with the condition); else the majority."""
    values = [v for _, v, _ in verdicts]
    if len(set(values)) <= 1:
        return values[0], (), ""
    split = _condition(verdicts)
    if split is not None:
        return split
    counts = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    best = max(counts, key=lambda v: (counts[v], -values.index(v)))
    note = "shape-dependent: " + ", ".join(f"{s.label}={vtext(v)}" for s, v, _ in verdicts)
    return best, (), note


def _condition(verdicts):
    """The first layout condition that separates the verdicts' contexts exactly (or None)."""
    by_ctx: dict = {}
    for _, v, ctx in verdicts:
        if ctx is not None:
            by_ctx.setdefault(tuple(ctx), []).append(v)
    if len(by_ctx) < 2:
        return None
    major = {ctx: max(set(vs), key=vs.count) for ctx, vs in by_ctx.items()}
    for cond, pred in CONDITION_PREDICATES:
        on = {major[c] for c in major if pred(*c)}
        off = {major[c] for c in major if not pred(*c)}
        if len(on) == 1 and len(off) == 1 and on != off:
            v_on, v_off = on.pop(), off.pop()
            if fusion_degree(v_on) > fusion_degree(v_off):
                note = (f"{vtext(v_on)} when '{cond}' holds, {vtext(v_off)} otherwise "
                        "(by the layout of the test models)")
                return v_on, (cond,), note
    return None


def fusion_degree(v) -> int:
    """How fused a verdict is: True/False for pairs, fewer kernels for a grouping."""
    if isinstance(v, bool):
        return int(v)
    return -len(v)


def vtext(v) -> str:
    if isinstance(v, bool):
        return "fused" if v else "separate"
    return str(v)


def case_text(ops, groups) -> str:
    """A grouping as text: ``conv | bn+relu``."""
    return " | ".join("+".join(ops[i] for i in g) for g in groups)
