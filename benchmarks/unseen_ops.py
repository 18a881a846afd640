"""Kernels of an op their cost model never saw, priced as is and after ``--extend --grid ops``.

A family's cost model reads the op as a code (``op_code``, ``mode``: ``features.CODE_FIELDS``),
and the shipped bundles' samples hold few of the codes: their binary model saw Add and Mul, not
Sub or Div; their movement model Reshape and Transpose, not Resize.  Trees price an unseen code
as whichever code their splits put it with.  The predictor flags such kernels (``~``, and a
warning naming the ops: ``FamilyModel.unseen``); ``nnmeter-tvm build --extend BUNDLE --grid
ops`` times standalone kernels of each such op (``Sampler.ops``) and trains again.

This measures one-op models of each op at three input sizes (the protocol of shared/MEASURE.md:
the whole model; and its profile: the op's kernel) and scores every predictor given on the same
measurements, whole model and kernel.  Ops the shipped models did see (add, mul, relu, sigmoid,
transpose) are controls.  A one-op model's input is warm in the cache, unlike most kernels of a
real model: a small kernel here runs faster than the samples (taken in packs of kernels) say.

    python unseen_ops.py --predictors ort-cpu EXTENDED_DIR [--out DIR]

writes ``OUT/unseen-ops-<first predictor>.json`` and ``.md`` (default OUT:
``benchmarks/results/unseen-ops``).
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from eval_lib.report import write_results  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent
SHAPES = ((1, 32, 112, 112), (1, 64, 28, 28), (1, 256, 7, 7))
# (name, ONNX op, attributes, inputs beyond x: "y" a second activation, or a constant's kind);
# the first CONTROLS are ops the shipped bundles' cost models saw
CONTROLS = 5
OPS = (
    ("add", "Add", {}, ["y"]), ("mul", "Mul", {}, ["y"]), ("relu", "Relu", {}, []),
    ("sigmoid", "Sigmoid", {}, []), ("transpose", "Transpose", {"perm": [0, 2, 3, 1]}, []),
    ("sub", "Sub", {}, ["y"]), ("div", "Div", {}, ["y"]), ("pow", "Pow", {}, ["y"]),
    ("clip01", "Clip", {}, ["min0", "max1"]), ("hardsigmoid", "HardSigmoid", {}, []),
    ("tanh", "Tanh", {}, []), ("leakyrelu", "LeakyRelu", {"alpha": 0.1}, []),
    ("erf", "Erf", {}, []), ("sqrt", "Sqrt", {}, []), ("exp", "Exp", {}, []),
    ("resize-nearest", "Resize", {"mode": "nearest"}, ["", "scales2"]),
    ("resize-linear", "Resize", {"mode": "linear"}, ["", "scales2"]),
    ("gather", "Gather", {"axis": 1}, ["half_index"]),
    ("slice", "Slice", {}, ["starts0", "ends_half", "axes1"]),
)


def one_op_model(name: str, op: str, attrs: dict, extra: list, shape: tuple,
                 context: bool = False):
    """``x`` (and ``y``) of ``shape`` through one ``op``; the constants it needs as initializers.
    ``context``: ``x`` and ``y`` are first written by an Abs each (which onnxruntime fuses with
    nothing), so the op reads tensors a kernel just wrote, as in a model."""
    from onnx import TensorProto, helper, numpy_helper

    c = shape[1]
    consts = {"min0": np.array(0.0, np.float32), "max1": np.array(1.0, np.float32),
              "scales2": np.array([1, 1, 2, 2], np.float32),
              "half_index": np.arange(0, c, 2, dtype=np.int64),
              "starts0": np.array([0], np.int64), "ends_half": np.array([c // 2], np.int64),
              "axes1": np.array([1], np.int64)}
    activations = ["x"] + [e for e in extra if e == "y"]
    inits = [numpy_helper.from_array(consts[e], e) for e in extra if e and e != "y"]
    feed = [f"{a}_in" if context else a for a in activations]
    inputs = [helper.make_tensor_value_info(f, TensorProto.FLOAT, list(shape)) for f in feed]
    nodes = [helper.make_node("Abs", [f], [a], name=f"abs_{a}")
             for f, a in zip(feed, activations) if context]
    nodes.append(helper.make_node(op, ["x"] + extra, ["out"], name=f"{name}_0", **attrs))
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", "c", "h", "w"])
    label = f"{name}_{'x'.join(map(str, shape[1:]))}" + ("_ctx" if context else "")
    graph = helper.make_graph(nodes, label, inputs, [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictors", nargs="+", default=["ort-cpu"],
                    help="bundle names or folders, all of one backend (default ort-cpu)")
    ap.add_argument("--out", default=str(ROOT / "results" / "unseen-ops"))
    ap.add_argument("--ops", help="comma-separated names of OPS to run (default: all)")
    ap.add_argument("--context", action="store_true",
                    help="the op reads tensors an Abs just wrote, not the model's inputs "
                         "(writes unseen-ops-context-<first predictor>)")
    args = ap.parse_args(argv)

    from nnmeter_tvm.backends import get_backend
    from nnmeter_tvm.backends.machine import describe_machine
    from nnmeter_tvm.onnx_import import graph_from_proto
    from nnmeter_tvm.predictors import load_predictor

    start = time.perf_counter()
    predictors = [load_predictor(p) for p in args.predictors]
    labels = [str(p) for p in args.predictors]
    backend = get_backend(predictors[0].backend)
    rows = []
    for name, op, attrs, extra in OPS:
        if args.ops and name not in args.ops.split(","):
            continue
        for shape in SHAPES:
            model = one_op_model(name, op, attrs, extra, shape, args.context)
            graph = graph_from_proto(model)
            ms = float(backend.measure(model).median_ms)
            profiled = [k.ms for k in backend.truth(model).kernels
                        if f"{name}_0" in k.nodes and k.ms is not None]
            row = {"op": name, "shape": list(shape), "measured_ms": ms,
                   "kernel_ms": profiled[0] if profiled else None, "by": {}}
            for label, predictor in zip(labels, predictors):
                report = predictor.predict(graph)
                mine = [k for k in report.kernels if f"{name}_0" in k.nodes]
                row["by"][label] = {
                    "total_ms": report.total_ms, "error": report.total_ms / ms - 1,
                    "kernel_error": (mine[0].ms / row["kernel_ms"] - 1)
                    if mine and row["kernel_ms"] else None,
                    "flagged": any(k.extrapolated or k.fallback for k in mine)}
            rows.append(row)
            print(f"{graph.name:26s} {ms:7.4f} ms  " + "  ".join(
                f"{100 * v['error']:+5.0f} %{' ~' if v['flagged'] else '  '}"
                for v in row["by"].values()), file=sys.stderr)
    controls = {name for name, *_ in OPS[:CONTROLS]}
    result = {"backend": predictors[0].backend, "backend_version": backend.version(),
              "context": args.context,
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": describe_machine(), "predictors": labels,
              "seconds": round(time.perf_counter() - start, 1),
              "summary": {label: {kind: summary([r["by"][label] for r in rows
                                                 if (r["op"] in controls) == (kind == "seen")])
                                  for kind in ("unseen", "seen")} for label in labels},
              "models": rows}
    stem = Path(args.out) / f"unseen-ops-{'context-' if args.context else ''}{Path(labels[0]).name}"
    write_results(stem, result, render(result))
    print(f"wrote {stem}.json and .md", file=sys.stderr)
    return 0


def summary(scores: list[dict]) -> dict:
    """Median absolute error and share within ±10 % / ±25 %, whole model and kernel."""
    out = {"models": len(scores),
           "flagged": int(sum(s["flagged"] for s in scores))}
    for key in ("error", "kernel_error"):
        e = np.abs([s[key] for s in scores if s[key] is not None])
        out[key] = {"median_abs": float(np.median(e)) if len(e) else None,
                    "within_10pct": float(np.mean(e <= 0.10)) if len(e) else None,
                    "within_25pct": float(np.mean(e <= 0.25)) if len(e) else None}
    return out


def render(r: dict) -> str:
    m = r["machine"]
    pct = lambda v: "–" if v is None else f"{100 * v:.0f} %"  # noqa: E731
    lines = [f"# Ops a cost model never saw ({r['backend']})", "",
             f"{r['date']}, CPU {m.get('cpu_model')}; {r['backend']} {r['backend_version']}; "
             f"{r['seconds']} s.  One-op models measured under the protocol (whole model) and "
             "profiled (the op's kernel); every predictor scored on the same measurements.  "
             "Controls: ops the shipped cost models saw.  "
             + ("The op reads tensors an Abs just wrote (`--context`): the whole model includes "
                "the Abs kernels, priced by the fallback; the kernel column is the op's."
                if r["context"] else "The op reads the model's inputs."), "",
             "| predictor | ops | models | flagged | whole model: median abs error | ±10 % | "
             "±25 % | kernel: median abs error | ±10 % | ±25 % |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for label, by_kind in r["summary"].items():
        for kind, s in by_kind.items():
            e, k = s["error"], s["kernel_error"]
            lines.append(f"| `{label}` | {kind} | {s['models']} | {s['flagged']} | "
                         f"{pct(e['median_abs'])} | {pct(e['within_10pct'])} | "
                         f"{pct(e['within_25pct'])} | {pct(k['median_abs'])} | "
                         f"{pct(k['within_10pct'])} | {pct(k['within_25pct'])} |")
    head = " | ".join(f"`{label}`: model / kernel" for label in r["predictors"])
    lines += ["", f"| op | input | measured (ms) | kernel (ms) | {head} |",
              "| --- | --- | ---: | ---: |" + " ---: |" * len(r["predictors"])]
    for x in r["models"]:
        cells = " | ".join(f"{pct(v['error']).replace(' %', '')} / "
                           f"{pct(v['kernel_error']).replace(' %', '')} %"
                           f"{' ~' if v['flagged'] else ''}" for v in x["by"].values())
        kernel = "–" if x["kernel_ms"] is None else f"{x['kernel_ms']:.4f}"
        lines.append(f"| {x['op']} | {'x'.join(map(str, x['shape'][1:]))} | "
                     f"{x['measured_ms']:.4f} | {kernel} | {cells} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
