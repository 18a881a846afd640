"""``nnmeter-tvm kernels MODEL.onnx --rules FILE``: split a model into kernels with a rules file.

``--truth --backend B`` lists the backend's own kernels instead (:mod:`.kernels_truth`).

``--compare-truth --backend B`` also asks the backend for its own kernels and reports the
fraction of them the partition reproduces exactly (same member node set; a reorder the backend
inserts counts as reproduced when the partition inserts one of the same direction there), and
every mismatch with the rule responsible.  :func:`compare` is that comparison, shared with
``benchmarks/kernels.py``.
"""
from __future__ import annotations

import json
from collections import Counter

_DIRECTION = {"ReorderInput": "to_blocked", "ReorderOutput": "from_blocked"}


def add_parser(sub):
    p = sub.add_parser("kernels", help="split a model into the kernels a backend runs")
    p.add_argument("model", help="path of an .onnx model")
    p.add_argument("--rules", default=None,
                   help="rules file (rules/<backend>.json) or a shipped backend name (needed "
                        "but with --truth)")
    from .graph import add_input_shape_arg

    add_input_shape_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--compare-truth", action="store_true",
                   help="compare with the backend's own kernels (needs --backend)")
    p.add_argument("--backend", help="backend for --compare-truth or --truth, e.g. ort-cpu "
                                     "(--truth: default ort-cpu)")
    from .kernels_truth import add_truth_args

    add_truth_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from nnmeter_tvm.rules import load

    from ..backends import known_backend
    from ..errors import NNMeterError
    from ..kernels.partition import partition_with_decisions
    from ..onnx_import import load_graph, parse_input_shapes
    from .kernels_truth import run_truth

    if args.backend:  # an unknown name first, before anything else it would explain
        known_backend(args.backend)
    if args.truth:
        args.backend = args.backend or "ort-cpu"
        return run_truth(args)
    if not args.rules:
        raise NNMeterError("kernels needs --rules FILE (rules/<backend>.json, or a backend "
                           "name such as ort-cpu), or --truth --backend B for the backend's "
                           "own kernels")
    shapes = parse_input_shapes(args.input_shape)
    graph = load_graph(args.model, shapes)
    rules = load(args.rules)
    kernels, decisions = partition_with_decisions(graph, rules)
    result = {"model": args.model, "rules": rules.source, "backend": rules.backend_name,
              "kernels": [kernel_dict(k) for k in kernels], "untested": untested(decisions)}
    if args.compare_truth:
        if not args.backend:
            raise NNMeterError("--compare-truth needs --backend, e.g. --backend ort-cpu")
        from ..backends import get_backend

        truth = get_backend(args.backend).truth(args.model, timed=False, input_shapes=shapes)
        result["comparison"] = compare(graph, kernels, decisions, truth)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(format_kernels(result))
        if "comparison" in result:
            print(format_comparison(result["comparison"]))
    return 0


def kernel_dict(k) -> dict:
    d = {"name": k.name, "type": k.type, "nodes": list(k.nodes), "anchor": k.anchor,
         "ops": list(k.ops), "inserted": k.inserted, "rule": k.rule}
    attrs = {key: (list(v) if isinstance(v, tuple) else v) for key, v in k.attrs.items()
             if key in ("tensor", "shape", "direction", "layout", "block", "view", "rules")}
    if attrs:
        d["attrs"] = attrs
    return d


# ---- comparison with the backend's own kernels ------------------------------------------------

def compare(graph, kernels, decisions, truth) -> dict:
    """How many of the backend's kernels the partition reproduces, and why the others differ."""
    ours = [k for k in kernels if not k.inserted and not k.attrs.get("view")]
    our_sets = {frozenset(k.nodes): k for k in ours}
    owner = {n: k for k in kernels if not k.inserted for n in k.nodes}
    real = [t for t in truth.kernels if not t.inserted and t.nodes]
    matched, mismatches = 0, []
    for t in real:
        if frozenset(t.nodes) in our_sets:
            matched += 1
        else:
            mismatches.append(_explain(t, owner, decisions, graph))
    # inserted kernels: by direction (the backend does not name the tensor)
    want = Counter(_DIRECTION[t.op_type] for t in truth.kernels
                   if t.inserted and t.op_type in _DIRECTION)
    have = Counter(k.attrs.get("direction") for k in kernels if k.inserted)
    inserted_matched = sum(min(n, have.get(d, 0)) for d, n in want.items())
    for d in sorted(set(want) | set(have)):
        if want.get(d, 0) != have.get(d, 0):
            mismatches.append({"kind": "inserted", "direction": d, "backend": want.get(d, 0),
                               "partition": have.get(d, 0), "rule": "layout model",
                               "why": f"{want.get(d, 0)} {d} reorders in the backend, "
                                      f"{have.get(d, 0)} in the partition"})
    eliminated = set(truth.eliminated)
    views = {n for k in kernels if k.attrs.get("view") for n in k.nodes}
    for n in sorted(eliminated - views):
        if n in owner and len(owner[n].nodes) == 1:
            mismatches.append({"kind": "eliminated", "nodes": [n], "rule": "no view rule",
                               "why": f"{n} runs as no kernel on the backend; the partition "
                                      "gives it a kernel of its own"})
    for n in sorted(views - eliminated):
        mismatches.append({"kind": "view", "nodes": [n], "rule": owner[n].rule,
                           "why": f"{n} runs as a kernel on the backend; the partition calls it "
                                  "a view"})
    # an "inserted" kernel that is no reorder is a real node the backend's mapping lost: the
    # backend's kernel list for this model is itself wrong around it (counted, never matched)
    suspect = sorted(t.op_type for t in truth.kernels if t.inserted and t.op_type not in _DIRECTION)
    if suspect:
        mismatches.append({"kind": "truth", "ops": suspect, "rule": "backend kernel mapping",
                           "why": f"the backend reports {len(suspect)} real nodes "
                                  f"({', '.join(sorted(set(suspect)))}) as inserted kernels"})
    total = len(real) + sum(want.values()) + len(suspect)
    return {
        "backend": truth.backend, "backend_version": truth.backend_version,
        "backend_kernels": len(real), "backend_inserted": sum(want.values()) + len(suspect),
        "matched": matched, "inserted_matched": inserted_matched,
        "match_rate": (matched + inserted_matched) / total if total else 1.0,
        "fusion_match_rate": matched / len(real) if real else 1.0,
        "partition_kernels": len(ours), "partition_inserted": sum(have.values()),
        "truth_suspect": suspect,
        "mismatches": mismatches,
    }


def _explain(t, owner, decisions, graph) -> dict:
    """Which edge decisions make the partition differ from backend kernel ``t``."""
    members = set(t.nodes)
    ours = []
    for n in t.nodes:
        k = owner.get(n)
        if k is not None and k not in ours:
            ours.append(k)
    edges = []
    for d in decisions:
        inside_truth = d.producer in members and d.consumer in members
        crosses_truth = (d.producer in members) != (d.consumer in members)
        same_ours = owner.get(d.producer) is owner.get(d.consumer)
        if inside_truth and not same_ours:
            edges.append({"edge": [d.producer, d.consumer], "backend": "fused",
                          "partition": "separate", "rule": d.rule, "why": d.reason})
        elif crosses_truth and same_ours and (d.producer in members or d.consumer in members):
            edges.append({"edge": [d.producer, d.consumer], "backend": "separate",
                          "partition": "fused", "rule": d.rule, "why": d.reason})
    if not edges:
        gone = [n for n in t.nodes if n not in owner]
        why = (f"nodes {gone} are not in the graph" if gone else
               "the backend groups nodes that share no edge")
        edges.append({"edge": None, "rule": None, "why": why})
    return {"kind": "fusion", "backend_nodes": list(t.nodes), "backend_op": t.op_type,
            "partition": [list(k.nodes) for k in ours],
            "rules": sorted({e["rule"] for e in edges if e.get("rule")}), "edges": edges}


# ---- text output ------------------------------------------------------------------------------

def untested(decisions) -> list[str]:
    """The op pairs of the graph's edges that no rule covers (kept apart by default): what
    ``detect-rules --add-to RULES --models MODEL`` would time."""
    from ..kernels.partition import UNTESTED

    return sorted({d.rule[len(UNTESTED):] for d in decisions if d.rule.startswith(UNTESTED)})


def format_kernels(result: dict) -> str:
    rows = [("#", "type", "nodes", "rule")]
    for i, k in enumerate(result["kernels"]):
        nodes = ",".join(k["nodes"]) if k["nodes"] else f"(inserted: {k.get('attrs', {}).get('tensor')})"
        if k.get("attrs", {}).get("view"):
            nodes += " (view)"
        rows.append((str(i), k["type"], nodes, k["rule"] or "-"))
    widths = [max(len(r[c]) for r in rows) for c in range(3)]
    lines = [f"{result['model']}: {len(result['kernels'])} kernels ({result['backend']} rules: "
             f"{result['rules']})"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3] for r in rows]
    if result.get("untested"):
        lines.append(f"edges no rule covers (kept apart): {', '.join(result['untested'])}; "
                     "`nnmeter-tvm detect-rules --add-to RULES --models MODEL` times them")
    return "\n".join(lines)


def format_comparison(c: dict) -> str:
    lines = [
        f"backend {c['backend']} {c['backend_version']}: {c['backend_kernels']} kernels + "
        f"{c['backend_inserted']} inserted; reproduced exactly: {c['matched']} + "
        f"{c['inserted_matched']} = {100 * c['match_rate']:.1f} %"]
    for m in c["mismatches"]:
        if m["kind"] == "fusion":
            lines.append(f"  backend {'+'.join(m['backend_nodes'])} ({m['backend_op']}) vs "
                         f"partition {' | '.join('+'.join(p) for p in m['partition'])}")
            for e in m["edges"]:
                if e.get("edge"):
                    lines.append(f"    {e['edge'][0]} -> {e['edge'][1]}: backend {e['backend']}, "
                                 f"partition {e['partition']} by {e['rule']} ({e['why']})")
                else:
                    lines.append(f"    {e['why']}")
        else:
            lines.append(f"  {m['kind']}: {m['why']} (rule: {m['rule']})")
    return "\n".join(lines)
