"""What timing cannot tell about a backend's kernels, read from the kernels it reports.

For backends whose ``truth()`` lists their own kernels (onnxruntime's optimised graph, TVM's
FuseOps functions), tiny probe models answer structural questions: where the backend switches
to a blocked layout and inserts reorder kernels (:func:`observe_layout`), which graph rewrites
it applies (:func:`observe_rewrites`), which ops run as no kernel (:func:`observe_views`).
Everything found here is recorded with ``origin.method = "observed"``.
"""
from __future__ import annotations

from datetime import datetime, timezone

from .testcases import EMITTERS, CaseShape, Step, Template, build_case, default_template


def backend_kernels(backend, model):
    """The backend's own kernels for ``model`` (its ``truth``), or None if it cannot say."""
    try:
        return backend.truth(model, timed=False)
    except NotImplementedError:
        return None
    except Exception:  # noqa: BLE001 - a probe the backend cannot run says nothing
        return None


def observe_layout(backend, templates: dict):
    """The blocked-layout model, from where the backend inserts reorder kernels (or None).

    Probes: one op at several channel counts (does it run blocked?), and each op after a
    blocked conv (does it stay blocked, i.e. need a reorder for its own output?).
    """
    from nnmeter_tvm.rules import Layout

    def inserted(model):
        truth = backend_kernels(backend, model)
        if truth is None:
            return None
        return sum(1 for k in truth.kernels if k.inserted)

    probe = [Step("a", default_template("conv"))]
    if not inserted(build_case(probe, CaseShape(32, 8))):
        return None
    evidence = []
    starts = {}
    channels = (4, 6, 8, 12, 16, 18, 20, 24, 32, 48)
    for op in ("conv", "dwconv", "gconv", "maxpool", "avgpool"):
        t = templates.get(op) or default_template(op)
        groups = t.get("groups", 2) if op == "gconv" else 1
        rows = []
        for c in channels:
            if c % groups:
                continue
            n = inserted(build_case([Step("a", t)], CaseShape(c, 8)))
            if n is None:
                continue
            rows.append((c, n))
        conds = _start_conditions(op, rows, groups)
        evidence.append({"probe": f"{op} alone", "inserted_by_channels": dict(rows)})
        if conds is not None:
            starts[op] = conds
    block = min((v.get("multiple", 0) for v in (starts.get("maxpool"), starts.get("avgpool"))
                 if v), default=16) or 16
    follows = {}
    conv1 = Template("conv", (("dilations", (1, 1)), ("group_kind", "conv"), ("groups", 1),
                              ("kernel_shape", (1, 1)), ("pads", (0, 0, 0, 0)),
                              ("rank_in", 4), ("rank_out", 4), ("strides", (1, 1))))
    ops = sorted(set(templates) | {"relu", "sigmoid", "tanh", "hardsigmoid", "hardswish", "bn",
                                   "add", "mul", "concat", "globalavgpool", "globalmaxpool"})
    for op in ops:
        if op in starts or op not in EMITTERS or op in ("gemm", "matmul", "softmax", "split",
                                                         "slice", "pad", "reshape", "transpose"):
            continue
        t = templates.get(op) or default_template(op)
        binary = op in ("add", "mul", "sub", "div", "concat")
        rows = []
        for c in (block, block + 4, 2 * block):
            steps = [Step("c", conv1), Step("x", t, ("c", "c") if binary else ("c",))]
            n = inserted(build_case(steps, CaseShape(c, 8), outputs=("c", "x")))
            if n is not None:
                rows.append((c, n))
        if not rows:
            continue
        base = 2      # reorder in (x) and reorder out (c, a graph output)
        blocked = {c: n > base for c, n in rows}
        evidence.append({"probe": f"blocked conv -> {op}", "blocked_by_channels": blocked})
        if not any(blocked.values()):
            continue
        conds = {}
        if not all(blocked.values()):
            conds["multiple"] = block
        if binary and op != "concat":
            # x op gap(x): both inputs blocked, shapes differ; outputs c, g, x
            steps = [Step("c", conv1), Step("g", templates.get("globalavgpool")
                                            or default_template("globalavgpool"), ("c",)),
                     Step("x", t, ("c", "g"))]
            n = inserted(build_case(steps, CaseShape(2 * block, 8), outputs=("c", "g", "x")))
            broadcast_blocked = n is not None and n > 3
            evidence.append({"probe": f"blocked x {op} blocked gap(x)",
                             "blocked": broadcast_blocked})
            if not broadcast_blocked:
                conds["same_shape"] = True
        follows[op] = conds
    return Layout(name="nchwc", block=int(block), starts=starts, follows=follows, absorbs={},
                  origin={"method": "observed", "backend": backend.name,
                          "version": backend.version(),
                          "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          "how": "reorder kernels in the backend's own kernel list for probe models"},
                  evidence=tuple(evidence))


def _start_conditions(op: str, rows, groups: int = 1) -> dict | None:
    """Conditions under which ``op`` alone switches to the blocked layout, from probe rows
    [(channels, inserted kernels)]: 2 = reorder in + out, 1 = reads plain directly, 0 = plain."""
    blocked = {c: n > 0 for c, n in rows}
    if not any(blocked.values()):
        return None
    conds = {}
    direct = [c for c, n in rows if n == 1]
    with_reorder = [c for c, n in rows if n >= 2]
    if direct and with_reorder and max(direct) < min(with_reorder):
        conds["plain_below"] = min(with_reorder)
    judged = [c for c in blocked if "plain_below" not in conds or c >= conds["plain_below"]]
    key = "group_multiple" if op == "gconv" else "multiple"
    for m in (1, 2, 4, 8, 16, 32):
        if all(blocked[c] == ((c // groups) % m == 0) for c in judged):
            if m > 1:
                conds[key] = m
            break
    return conds


def observe_rewrites(backend, origin: dict) -> tuple:
    """Graph rewrites the backend applies: ``cse`` when of two identical weightless ops on
    one tensor it runs only one (common subexpression elimination)."""
    relu = default_template("relu")
    model = build_case([Step("a", relu), Step("b", relu), Step("c", default_template("add"),
                                                                 ("a", "b"))], CaseShape(16, 8))
    truth = backend_kernels(backend, model)
    if truth is None or len(truth.eliminated) != 1:
        return ()
    return ({"name": "cse", "keep": "first", "origin": dict(origin),
             "evidence": [{"probe": "relu(x) + relu(x)", "eliminated": list(truth.eliminated),
                           "kernels": [k.op_type for k in truth.kernels]}],
             "note": "of identical weightless ops reading one tensor only the first in "
                     "onnxruntime's topological order (a depth-first walk up from the leaves) "
                     "runs"},)


def observe_views(backend, templates: dict, origin: dict, variants: dict | None = None):
    """``view`` rules: ops the backend runs as no kernel when alone (e.g. a Flatten).  Every
    variant of an op the zoo uses is probed (a Flatten and a Reshape are both ``reshape``);
    the rule is written when one of them is a view, and its note says which."""
    from nnmeter_tvm.rules import Rule

    rules = []
    for op in sorted(templates):
        if op not in EMITTERS:
            continue
        probes = []
        for t in (variants or {}).get(op, [templates[op]])[:6]:
            # between a pool and a gemm / 1x1 conv, which fuse with nothing on either side
            if t.get("rank_in", 4) != 4 or op in ("add", "mul", "sub", "div", "concat", "matmul"):
                continue
            pool = Template("maxpool", (("kernel_shape", (1, 1)), ("pads", (0, 0, 0, 0)),
                                        ("strides", (1, 1))))
            after = default_template("gemm") if t.get("rank_out", 4) == 2 else _CONV1
            roles = {}
            try:
                model = build_case([Step("p", pool), Step("a", t, ("p",)), Step("c", after, ("a",))],
                                   CaseShape(16, 8), roles=roles)
            except Exception:  # noqa: BLE001 - a variant the test writer cannot express
                continue
            truth = backend_kernels(backend, model)
            if truth is None:
                continue
            view = roles["a"] in truth.eliminated
            probes.append({"variant": dict(t.params), "view": view,
                           "kernels": [k.op_type for k in truth.kernels]})
        if any(p["view"] for p in probes):
            kinds = sorted({str(p["variant"].get("source", op)) for p in probes if p["view"]})
            rest = sorted({str(p["variant"].get("source", op)) for p in probes if not p["view"]})
            note = f"runs as no kernel when not fused (a zero-copy view): {', '.join(kinds)}"
            if rest:
                note += f"; still a kernel: {', '.join(rest)} (never alone in the zoo)"
            rules.append(Rule(name=f"{op}_view", kind="view", ops=(op,), groups=((0,),),
                              origin=origin, evidence=tuple(_jsonable(probes)), note=note))
    return rules


_CONV1 = Template("conv", (("dilations", (1, 1)), ("group_kind", "conv"), ("groups", 1),
                           ("kernel_shape", (1, 1)), ("pads", (0, 0, 0, 0)), ("rank_in", 4),
                           ("rank_out", 4), ("strides", (1, 1))))


def _jsonable(value):
    from nnmeter_tvm.graph import _jsonable as j

    return j(value)
