"""``nnmeter-tvm check MODEL.onnx --budget-ms X``: a latency budget for CI.

Exit codes: 0 within the budget, 1 over it (the total, the budget and the heaviest kernels are
printed), 2 on bad input (unreadable model, unknown predictor, bad shapes; from the dispatcher).
``--junit FILE`` also writes a one-test JUnit XML report that CI systems display.
"""
from __future__ import annotations

import time
from xml.etree import ElementTree as ET

from . import predictor_help

TOP = 5


def add_parser(sub):
    p = sub.add_parser("check", help="fail (exit 1) when a model's predicted latency is over a budget")
    p.add_argument("model", help="path of an .onnx model")
    p.add_argument("--budget-ms", type=_positive, required=True, metavar="MS",
                   help="the latency budget in milliseconds")
    p.add_argument("--predictor", default="ort-cpu", metavar="NAME|DIR",
                   help=predictor_help())
    p.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report to FILE")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=DIMS",
                   help="static shape for an input with symbolic dims, e.g. input=1,3,224,224")
    p.set_defaults(func=run)


def _positive(text):
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of milliseconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def run(args) -> int:
    from ..onnx_import import parse_input_shapes
    from ..passes.estimate import budget_message
    from ..predictors import load_predictor

    start = time.perf_counter()
    predictor = load_predictor(args.predictor)
    rep = predictor.predict(args.model, parse_input_shapes(args.input_shape) or None)
    ok = rep.total_ms <= args.budget_ms
    name = predictor.info.get("name", args.predictor)
    if ok:
        print(f"ok: {args.model}: predicted {rep.total_ms:.3f} ms is within the budget of "
              f"{args.budget_ms:.3f} ms ({100 * rep.total_ms / args.budget_ms:.1f} %) "
              f"[predictor {name}]")
        text = ""
    else:
        text = budget_message(rep, args.budget_ms, TOP)
        print(f"FAIL: {args.model}: {text}")
    for w in rep.warnings:
        print(f"warning: {w}")
    if args.junit:
        _write_junit(args.junit, args.model, rep, args.budget_ms, text, time.perf_counter() - start)
    return 0 if ok else 1


def _write_junit(path, model, rep, budget_ms, failure, seconds):
    suite = ET.Element("testsuite", name="nnmeter-tvm check", tests="1",
                       failures="0" if not failure else "1", errors="0", time=f"{seconds:.3f}")
    case = ET.SubElement(suite, "testcase", classname="nnmeter_tvm.check",
                         name=f"latency budget {budget_ms:g} ms: {model}", time=f"{seconds:.3f}")
    props = ET.SubElement(case, "properties")
    for key, value in (("predicted_ms", f"{rep.total_ms:.6f}"), ("budget_ms", f"{budget_ms:g}"),
                       ("predictor", str(rep.predictor.get("name"))),
                       ("kernels", str(len(rep.kernels))),
                       ("fallback_kernels", str(len(rep.fallback_kernels))),
                       ("extrapolated_kernels", str(len(rep.extrapolated_kernels)))):
        ET.SubElement(props, "property", name=key, value=value)
    if failure:
        el = ET.SubElement(case, "failure", type="BudgetExceeded", message=failure.splitlines()[0])
        el.text = failure
    else:
        ET.SubElement(case, "system-out").text = f"predicted {rep.total_ms:.3f} ms"
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
