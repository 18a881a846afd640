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
# a launch probe times whole runs (a mean over thousands of ~2 µs runs, not whole profiler
# microseconds): its resolution and absolute drift floor, small against a launch on tvm-llvm
# (~0.34 µs per kernel call, measured by the probe: launch_ms in the evidence)
LAUNCH_RESOLUTION_MS, LAUNCH_DRIFT_ABS_MS = 0.00005, 0.00002


def resolution(shape) -> float:
    """The smallest net time judged at ``shape`` (ms)."""
    return LAUNCH_RESOLUTION_MS if getattr(shape, "launch", False) else RESOLUTION_MS

CONDITION_PREDICATES = (   # (name, holds(producer blocked, consumer inputs all blocked))
    ("blocked", lambda pb, ib: ib),
    ("plain", lambda pb, ib: not ib and not pb),
    ("compatible", lambda pb, ib: (not pb) or ib),
)


def noise(*timed, shape=None) -> float:
    """How much the sum of these measurements may move between passes (ms): each one's spread
    over its sessions plus a relative drift, and an absolute floor, in quadrature."""
    floor = LAUNCH_DRIFT_ABS_MS if getattr(shape, "launch", False) else DRIFT_ABS_MS
    return float(np.sqrt(sum(t.spread ** 2 + (DRIFT_REL * t.value) ** 2 for t in timed)
                         + floor ** 2))


def with_bases(*timed) -> list:
    """The measurements and their distinct T0s (each T0 counted once)."""
    bases = {t.base.key: t.base for t in timed if t.base is not None}
    return list(timed) + list(bases.values())


def pair_verdict(n1: float, n2: float, n12: float, alpha: float, noise_ms: float,
                 resolution_ms: float = RESOLUTION_MS) -> dict:
    """nn-Meter's criterion on net times: fused when T1 + T2 - T12 > alpha * min(T1, T2);
    inconclusive when an op is below the resolution or the saving is within twice the noise
    of the threshold."""
    saving, threshold = n1 + n2 - n12, alpha * min(n1, n2)
    return {"saving_ms": round(saving, 5), "threshold_ms": round(threshold, 5),
            "fused": bool(saving > threshold), "noise_ms": round(noise_ms, 5),
            "inconclusive": bool(min(n1, n2) < resolution_ms
                                 or abs(saving - threshold) < 2 * noise_ms)}


def closest_case(block: float, cases: dict, tol: float = 0.0):
    """The case whose predicted time is closest to the block's; among cases within ``tol``
    of the best, the one with the most kernels (a fusion must earn its place).  ``cases``
    maps a grouping to its predicted time (ms)."""
    best = min(abs(v - block) for v in cases.values())
    near = [c for c in cases if abs(cases[c] - block) <= best + tol]
    return max(near, key=lambda c: (len(c), -list(cases).index(c)))


def case_verdict(block: float, cases: dict, singles, noise_ms: float, alpha: float,
                 resolution_ms: float = RESOLUTION_MS) -> dict:
    """The winning grouping for a measured block; inconclusive when an op is below the
    resolution or the runner-up is within twice the noise of the winner."""
    tol = max(0.0, 0.5 * alpha * min(singles))
    winner = closest_case(block, cases, tol)
    rivals = sorted(abs(v - block) for g, v in cases.items() if g != winner)
    return {"winner": winner, "tolerance_ms": round(tol, 5), "noise_ms": round(noise_ms, 5),
            "inconclusive": bool(min(singles) < resolution_ms or (
                rivals and rivals[0] - abs(cases[winner] - block) < 2 * noise_ms))}


def launch_case_verdict(block: float, cases: dict, singles, launch_ms: float,
                        noise_ms: float) -> dict:
    """A connection case at a launch probe, by counting launches: each kernel costs one
    launch (``launch_ms``) plus work that fusing does not change, so the block saves
    ``(sum(singles) - block) / launch_ms`` launches against its ops run apart: none (three
    kernels), two (one kernel), or one, and then the two-kernel grouping whose measured pair
    predicts the block best.  (The closest-case rule cannot be used here: its predictions for
    a grouping whose pair does not fuse alone equal the three-kernel case, a tie by
    construction.)  Inconclusive when the count is within twice the noise of a half-launch,
    or two two-kernel groupings are within twice the noise of each other."""
    saved = (sum(singles) - block) / launch_ms
    count = min(2, max(0, round(saved)))
    sure = launch_ms / 2 - abs(saved - count) * launch_ms > 2 * noise_ms
    kernels = 3 - count
    ranked = sorted((g for g in cases if len(g) == kernels), key=lambda g: abs(cases[g] - block))
    winner = ranked[0]
    if len(ranked) > 1 and \
            abs(cases[ranked[1]] - block) - abs(cases[winner] - block) < 2 * noise_ms:
        sure = False
    return {"winner": winner, "launch_ms": round(launch_ms, 5),
            "launches_saved": round(saved, 2), "noise_ms": round(noise_ms, 5),
            "inconclusive": not sure}


def decide(verdicts):
    """(value, requires, method, note) from per-shape ``(shape, timed value, conclusive,
    layout context, observed value or None)``.

    A launch probe conclusive at its shape decides which ops share a kernel in its layout
    context: the other shapes of that context (all of them on a backend without layouts) say
    whether that saves time there, and where they disagree the note says so (an untuned
    compiler's fused kernel still writes and reads the intermediate, so at large shapes its
    fusions save nothing).  Shapes of another layout context keep their own verdicts (on
    onnxruntime a probe with block-aligned channels runs blocked, and a pair fused only in
    the blocked layout is separate in the plain one).  Otherwise: see :func:`_decide`."""
    probed = {_ctx(b) for s, _, ok, b, _ in verdicts if getattr(s, "launch", False) and ok}
    if not probed:
        return _decide(verdicts)

    def own(s, ok, b) -> bool:  # a conclusive verdict the probe does not override
        return ok and (s.launch or (b is not None and _ctx(b) not in probed))

    value, requires, method, note = _decide(
        [(s, v, own(s, ok, b), b, o) for s, v, ok, b, o in verdicts])
    differ = [f"{vtext(v)} at {s.label}" for s, v, ok, b, _ in verdicts
              if ok and not own(s, ok, b) and v != value]
    if differ:
        note = (note + "; " if note else "") + (
            f"the criterion at the other shapes says {', '.join(differ)} (the time a fusion "
            "saves there, not which kernels run)")
    return value, requires, method, note


def _ctx(context):
    """A layout context as a dict key (None without a layout model)."""
    return None if context is None else tuple(context)


def _decide(verdicts):
    """:func:`decide` without launch probes.

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
            by_ctx.setdefault(_ctx(ctx), []).append(v)
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
