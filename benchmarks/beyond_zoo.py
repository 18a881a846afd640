"""Benchmark: how the shipped predictor does on a model family it was never built for.

    python benchmarks/beyond_zoo.py [--backend ort-cpu]

The zoo-drawn samples come from the zoo's 12 CNN families and NAS-Bench-201.  This prices
small transformer encoders (pre-norm, ViT-like: LayerNorm, MatMul with bias, multi-head
attention with Softmax, GELU MLP, residual adds; no zoo family has one) and measures them on
the backend, to say plainly what a user gets outside the zoo.  Their fusion rules were added to
``rules/ort-cpu.json`` by ``nnmeter-tvm detect-rules --add-to rules/ort-cpu.json --families
none --models`` on the encoders ``--save-models`` writes.  Per model: predicted and
measured latency (the protocol of shared/MEASURE.md), the kernels priced by the generic
fallback, and the share of the backend's kernels the partition reproduces exactly (as
``benchmarks/kernels.py`` counts it); per kernel type, the price against the profiled time of
the kernels formed as the backend forms them.  Writes
``benchmarks/results/beyond_zoo-<predictor>.json`` and ``.md`` (``--predictor DIR``: another
bundle, e.g. one built from scratch).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from eval_lib.report import write_results  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent
# (tokens, width, heads, blocks): ViT-tiny-like sizes, each a few ms or less on one thread
ENCODERS = ((16, 64, 2, 1), (32, 96, 4, 2), (49, 128, 4, 2), (64, 128, 4, 2),
            (64, 192, 6, 2), (128, 128, 4, 1), (49, 256, 8, 1), (197, 192, 3, 1))
# BERT-like post-norm encoders, a bias on every projection: held out from the rule detection
# (which saw only the pre-norm ones), so they test whether the rules carry over
POST_NORM = ((24, 96, 3, 1), (48, 128, 4, 2), (96, 160, 5, 1), (128, 256, 4, 1))


def encoder(tokens: int, width: int, heads: int, blocks: int, seed: int = 0,
            post_norm: bool = False):
    """A transformer encoder on a (1, tokens, width) input, as an ONNX model: pre-norm, ViT-like
    (no bias on the output projection and the MLP), or ``post_norm``, BERT-like (LayerNorm after
    each residual Add, a bias on every projection)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def tensor(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(name, *shape):
        return tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    head = width // heads
    to_heads = tensor("to_heads", np.array([1, tokens, heads, head], np.int64))
    to_tokens = tensor("to_tokens", np.array([1, tokens, width], np.int64))
    def layernorm(v, tag):  # tags are read in the block being written (p)
        return node("LayerNormalization", [v, weight(p + tag + ".g", width),
                                           weight(p + tag + ".b", width)], p + tag, axis=-1)

    def linear(v, tag, cin, cout, bias):
        v = node("MatMul", [v, weight(p + tag + ".w", cin, cout)], p + tag)
        return node("Add", [v, weight(p + tag + ".bias", cout)], p + tag + ".add") if bias else v

    x = "x"
    for b in range(blocks):
        p = f"block{b}."
        y = x if post_norm else layernorm(x, "ln1")
        qkv = []
        for t in "qkv":  # k comes out transposed for q @ k^T
            m = node("MatMul", [y, weight(p + t + ".w", width, width)], p + t + ".matmul")
            m = node("Add", [m, weight(p + t + ".b", width)], p + t + ".bias")
            m = node("Reshape", [m, to_heads], p + t + ".reshape")
            qkv.append(node("Transpose", [m], p + t + ".transpose",
                            perm=[0, 2, 3, 1] if t == "k" else [0, 2, 1, 3]))
        s = node("MatMul", qkv[:2], p + "scores")
        s = node("Mul", [s, tensor(p + "scale.value", np.array(head ** -0.5, np.float32))], p + "scale")
        a = node("Softmax", [s], p + "softmax", axis=-1)
        o = node("MatMul", [a, qkv[2]], p + "attend")
        o = node("Transpose", [o], p + "merge.transpose", perm=[0, 2, 1, 3])
        o = node("Reshape", [o, to_tokens], p + "merge.reshape")
        o = linear(o, "proj", width, width, post_norm)
        x = node("Add", [x, o], p + "residual1")
        x = layernorm(x, "ln1") if post_norm else x
        y = layernorm(x, "ln2") if not post_norm else x
        y = linear(y, "fc1", width, 4 * width, post_norm)
        y = node("Gelu", [y], p + "gelu")
        y = linear(y, "fc2", 4 * width, width, post_norm)
        x = node("Add", [x, y], p + "residual2")
        x = layernorm(x, "ln2") if post_norm else x
    name = f"{'bert' if post_norm else 'encoder'}_t{tokens}_w{width}_h{heads}_b{blocks}"
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, tokens, width])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, tokens, width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    onnx.checker.check_model(model)
    return model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="ort-cpu", choices=("ort-cpu",),
                    help="ort-cpu only: untuned TVM takes minutes per encoder")
    ap.add_argument("--predictor", help="bundle folder or name (default: the backend's bundle)")
    ap.add_argument("--out", default=str(ROOT / "results"))
    ap.add_argument("--post-norm", action="store_true",
                    help="the BERT-like post-norm encoders (POST_NORM), held out from the rule "
                         "detection; writes beyond_zoo-post-<predictor>.json")
    ap.add_argument("--save-models", metavar="DIR",
                    help="only write the encoders as ONNX files into DIR (e.g. for "
                         "`nnmeter-tvm detect-rules --models`) and stop")
    args = ap.parse_args(argv)
    shapes = POST_NORM if args.post_norm else ENCODERS
    if args.save_models:
        import onnx

        Path(args.save_models).mkdir(parents=True, exist_ok=True)
        for shape in shapes:
            model = encoder(*shape, post_norm=args.post_norm)
            onnx.save(model, str(Path(args.save_models) / f"{model.graph.name}.onnx"))
        print(f"wrote {len(shapes)} encoders to {args.save_models}", file=sys.stderr)
        return 0

    from nnmeter_tvm.backends import get_backend
    from nnmeter_tvm.backends.machine import describe_machine
    from nnmeter_tvm.cli.kernels import compare
    from nnmeter_tvm.kernels.partition import partition_with_decisions
    from nnmeter_tvm.onnx_import import graph_from_proto
    from nnmeter_tvm.predictors import load_predictor

    start = time.perf_counter()
    backend = get_backend(args.backend)
    predictor = load_predictor(args.predictor or args.backend)
    rows, fallback_types, unmatched = [], Counter(), Counter()
    by_type = defaultdict(lambda: [0.0, 0.0])  # kernel type -> [predicted, profiled] ms
    for shape in shapes:
        model = encoder(*shape, post_norm=args.post_norm)
        graph = graph_from_proto(model)
        report = predictor.predict(graph)
        kernels, decisions = partition_with_decisions(graph, predictor.rules)
        truth = backend.truth(model, timed=True)
        c = compare(graph, kernels, decisions, truth)
        timed = {frozenset(t.nodes): t.ms for t in truth.kernels if t.nodes and t.ms is not None}
        for k in report.kernels:  # kernels formed as the backend forms them: priced vs profiled
            if frozenset(k.nodes) in timed:
                by_type[k.type][0] += k.ms
                by_type[k.type][1] += timed[frozenset(k.nodes)]
        measured = backend.measure(model)
        fallback_types.update(k.type for k in report.kernels if k.fallback)
        unmatched.update(e["rule"] for m in c["mismatches"] for e in m.get("edges", ())
                         if e["backend"] != e["partition"])
        rows.append({"model": graph.name, "nodes": len(graph), "kernels": len(report.kernels),
                     "predicted_ms": report.total_ms, "measured_ms": float(measured.median_ms),
                     "steady": bool(measured.steady),
                     "error": report.total_ms / float(measured.median_ms) - 1,
                     "fallback_kernels": sum(1 for k in report.kernels if k.fallback),
                     "extrapolated_kernels": sum(1 for k in report.kernels if k.extrapolated),
                     "backend_kernels": c["backend_kernels"], "reproduced": c["matched"]})
        print(f"{graph.name:28s} predicted {report.total_ms:7.3f} ms, measured "
              f"{measured.median_ms:7.3f} ms ({100 * rows[-1]['error']:+.0f} %), kernels "
              f"reproduced {c['matched']} of {c['backend_kernels']}", file=sys.stderr)
    errors = np.array([r["error"] for r in rows])
    result = {
        "backend": args.backend, "backend_version": backend.version(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": describe_machine(), "predictor": predictor.name,
        "encoders": "post-norm (held out from rule detection)" if args.post_norm else "pre-norm",
        "seconds": round(time.perf_counter() - start, 1),
        "within_10pct": float(np.mean(np.abs(errors) <= 0.10)),
        "median_error": float(np.median(errors)),
        "kernels_reproduced": sum(r["reproduced"] for r in rows)
        / max(1, sum(r["backend_kernels"] for r in rows)),
        "by_kernel_type": {t: {"predicted_ms": round(p, 4), "profiled_ms": round(m, 4)}
                           for t, (p, m) in sorted(by_type.items(), key=lambda kv: -kv[1][1])},
        "fallback_types": dict(fallback_types), "mismatch_rules": dict(unmatched.most_common()),
        "models": rows,
    }
    out = Path(args.out)
    stem = out / f"beyond_zoo-{'post-' if args.post_norm else ''}{predictor.name}"
    write_results(stem, result, render(result))
    print(f"wrote {stem}.json and .md", file=sys.stderr)
    return 0


def render(r: dict) -> str:
    lines = [f"# Beyond the zoo: transformer encoders on {r['backend']} {r['backend_version']}"
             + (" (BERT-like post-norm, held out from the rule detection)"
                if r.get("encoders", "").startswith("post") else ""),
             "",
             f"Generated {r['date']} by `benchmarks/beyond_zoo.py` in {r['seconds']:.0f} s; "
             f"CPU {r['machine'].get('cpu_model')}; predictor `{r['predictor']}`. The in-situ "
             "and prior samples of every bundle come from the zoo's CNN families and "
             "NAS-Bench-201: no transformer; only family-agnostic samples (`build --grid wide`, "
             "`build --extend`: gemms and bias projections over many rows, attention matmuls, "
             "softmax and layernorm) price their layers. The encoders' fusion rules were "
             "detected on these encoders (`detect-rules --add-to ... --models`).", "",
             f"- within ±10 %: **{100 * r['within_10pct']:.0f} %** of {len(r['models'])} "
             f"encoders; median error **{100 * r['median_error']:+.0f} %**",
             f"- the backend's kernels reproduced exactly by the partition: "
             f"{100 * r['kernels_reproduced']:.1f} %",
             "- kernel types priced by the generic fallback: "
             + (", ".join(f"`{t}` ({n})" for t, n in r["fallback_types"].items()) or "none"),
             "- edges the backend fuses and the partition does not, or the reverse, by the rule "
             "that decided them: "
             + (", ".join(f"`{t}` ({n})" for t, n in r["mismatch_rules"].items()) or "none"),
             "", "Kernels the partition forms as the backend does, summed over the encoders by "
             "type: priced against the backend profiler's time (which includes the profiler's "
             "own cost of ~2-3 µs per kernel):", "",
             "| kernel type | priced (ms) | profiled (ms) | ratio |", "| --- | ---: | ---: | ---: |",
             *[f"| `{t}` | {v['predicted_ms']:.3f} | {v['profiled_ms']:.3f} | "
               f"{v['predicted_ms'] / v['profiled_ms']:.2f} |"
               for t, v in r["by_kernel_type"].items() if v["profiled_ms"] > 0],
             "", "| model | nodes | kernels | predicted (ms) | measured (ms) | error | fallback "
             "kernels | kernels beyond the training range | backend kernels reproduced |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for m in r["models"]:
        lines.append(f"| {m['model']} | {m['nodes']} | {m['kernels']} | {m['predicted_ms']:.3f} "
                     f"| {m['measured_ms']:.3f}{'' if m['steady'] else ' (drifted)'} | "
                     f"{100 * m['error']:+.0f} % | {m['fallback_kernels']} | "
                     f"{m.get('extrapolated_kernels', '-')} | {m['reproduced']} of "
                     f"{m['backend_kernels']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
