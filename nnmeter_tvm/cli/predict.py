"""``nnmeter-tvm predict MODEL.onnx``: per-kernel predicted latency and the total."""
from __future__ import annotations

import dataclasses

from ..backends.protocol import DRIFT_LIMIT
from . import predictor_help


def add_parser(sub):
    p = sub.add_parser("predict", help="predict a model's latency kernel by kernel")
    p.add_argument("model", help="path of an .onnx model")
    p.add_argument("--predictor", default="ort-cpu", metavar="NAME|DIR",
                   help=predictor_help())
    p.add_argument("--measure", action="store_true",
                   help="also run the model on the predictor's backend and show the error")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=DIMS",
                   help="static shape for an input with symbolic dims, e.g. input=1,3,224,224")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..onnx_import import load_model, parse_input_shapes
    from ..predictors import load_predictor
    from ..predictors.render import render_json, render_table

    predictor = load_predictor(args.predictor)
    shapes = parse_input_shapes(args.input_shape)
    report = predictor.predict(args.model, shapes or None)
    if args.measure:
        report = attach_measurement(report, predictor.backend, load_model(args.model, shapes or None))
    print(render_json(report) if args.json else render_table(report))
    return 0


def _match_key(nodes, name: str):
    """Kernels match by member nodes; inserted ones, which have none, by name (the tensor
    they convert)."""
    return frozenset(nodes) if nodes else name


def attach_measurement(report, backend_name: str, model):
    """The report with the backend's measured total and, where the kernels match, per kernel."""
    from ..backends import get_backend
    from ..kernels.kernel import reorder_direction, reorder_name

    backend = get_backend(backend_name)
    measured = backend.measure(model)
    per_kernel = {}
    try:
        for truth in backend.kernels(model):
            tensor = getattr(truth, "tensor", "")
            if truth.nodes or tensor:
                key = _match_key(truth.nodes,
                                 reorder_name(tensor, reorder_direction(truth.op_type)))
                per_kernel[key] = per_kernel.get(key, 0) + truth.ms
    except Exception:  # a backend without a per-kernel view still gives the total
        per_kernel = {}
    kernels = tuple(k._replace(measured_ms=per_kernel.get(_match_key(k.nodes, k.name)))
                    for k in report.kernels)
    status = getattr(measured, "status", "ok")
    if status not in (None, "ok"):
        warnings = report.warnings + (f"measurement status {status!r}",)
        return dataclasses.replace(report, kernels=kernels, warnings=warnings)
    warnings = report.warnings
    if not measured.steady:  # shown, not hidden: the error below is then the machine's too
        warnings += (f"the measured time is unreliable: the protocol's reference workload "
                     f"drifted {100 * measured.drift:.0f} % (limit {100 * DRIFT_LIMIT:.0f} %) in "
                     f"all {measured.attempts} attempts, so another process or the host's "
                     f"speed changed the timing; measure again when the machine is quieter",)
    return dataclasses.replace(report, kernels=kernels, measured_ms=float(measured.median_ms),
                               warnings=warnings)
