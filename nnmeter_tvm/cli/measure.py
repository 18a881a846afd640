"""``nnmeter-tvm measure MODEL.onnx --backend ort-cpu``: time a model under the protocol of
MEASURE.md and append the result to the measurement store.

``--json`` prints one object, the measurement's fields plus ``model`` and ``store``:

- ``backend``, ``backend_version``: e.g. ``"ort-cpu"``, ``"1.32.0"``
- ``model``: the path given; ``key``: ``<file stem>@<16 hex of the model's sha256>``
- ``status``: ``"ok"`` or ``"failed"`` (then ``error`` says why and the times are null)
- ``median_ms``, ``p10_ms``, ``p90_ms``: over ``runs`` timed runs, one thread, one core
- ``total_s``: wall time of the whole measurement (build, warm-up, reference reads, retries)
- ``drift``: interference during the kept attempt: the larger of the reference workload's
  relative deviation from its session baseline and the share of the timed wall time the
  measuring thread was not running (> 0.05: the machine stayed disturbed after ``attempts``)
- ``attempts``, ``core`` (the core it was pinned to), ``threads``
- ``machine``: ``cpu_model``, ``cpu_flags``, ``cores``, ``cores_allowed``, ``arch``, ``os``,
  ``python``, ``numpy``, ``onnx``, ``onnxruntime``, ``tvm``
- ``timestamp``: ISO 8601, UTC; ``store``: the SQLite file written, or null (``--no-store``)

Exit status: 0 ok; 1 a failed measurement with ``--json``; 2 any error (one line on stderr).
"""
from __future__ import annotations

import argparse
import json


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def add_parser(sub):
    from ..backends import BACKENDS
    from .graph import add_input_shape_arg

    p = sub.add_parser("measure", help="time a model on a backend (median of >= 30 runs, "
                                       "drift-guarded) and store the result")
    p.add_argument("model", help="path of an .onnx model")
    p.add_argument("--backend", default="ort-cpu", help=f"one of: {', '.join(BACKENDS)} "
                                                        "(default ort-cpu)")
    add_input_shape_arg(p)
    p.add_argument("--json", action="store_true", help="print the measurement as JSON")
    p.add_argument("--timeout", type=_positive, default=60.0, metavar="S",
                   help="time limit in seconds, build included (default 60); past it the "
                        "measurement is recorded as failed")
    p.add_argument("--store", metavar="PATH", help="SQLite store to append to (default "
                   "$NNMETER_TVM_STORE or ~/.cache/nnmeter-tvm/measurements.sqlite)")
    p.add_argument("--no-store", action="store_true", help="do not record the measurement")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..backends import get_backend
    from ..backends.store import Store
    from ..errors import MeasurementError
    from ..onnx_import import parse_input_shapes

    backend = get_backend(args.backend)
    store = None if args.no_store else Store(args.store)
    try:
        m = backend.measure(args.model, timeout_s=args.timeout, store=store,
                            input_shapes=parse_input_shapes(getattr(args, "input_shape", [])))
    finally:
        if store is not None:
            store.close()
    if args.json:
        print(json.dumps({**m.to_dict(), "model": args.model,
                          "store": None if store is None else str(store.path)}, indent=1))
        return 0 if m.ok else 1
    if not m.ok:
        raise MeasurementError(m.error)
    print(format_measurement(m, args.model))
    return 0


def format_measurement(m, model: str) -> str:
    warn = "" if (m.drift or 0) <= 0.05 else "  (machine stayed disturbed: drift above 5 %)"
    return (f"{m.backend} {m.backend_version}  {model}\n"
            f"  median {m.median_ms:.4f} ms  (p10 {m.p10_ms:.4f}, p90 {m.p90_ms:.4f}; "
            f"{m.runs} runs on core {m.core}, {m.threads} thread)\n"
            f"  drift {100 * (m.drift or 0):.1f} % after {m.attempts} attempt(s){warn}")
