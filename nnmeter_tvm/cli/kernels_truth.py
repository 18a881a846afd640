"""The ``--truth`` half of ``nnmeter-tvm kernels MODEL.onnx --backend B --truth [--json]``: the
backend's OWN kernels (what it really executes after its fusions), each with the original ONNX
nodes it runs and its measured time.  The ``kernels`` subcommand itself lives in
``cli/kernels.py``; it calls :func:`add_truth_args` on its parser (after adding its own
options) and :func:`run_truth` when ``args.truth`` is set.

``--json`` prints one object:

- ``backend``, ``backend_version``, ``model`` (the path given), ``timed`` (false with
  ``--untimed``), ``total_ms`` (sum of the kernels' times; null when untimed or when the
  profiler reported no time for some kernel)
- ``kernels``: list, in execution order, of
  ``{name, op_type, nodes, inserted, ms, detail}``: ``name`` is the backend's node or PrimFunc
  name (``+``-joined when one original node runs as several backend nodes), ``op_type`` the
  backend's op(s), ``nodes`` the ORIGINAL node names it executes (``[]`` for a kernel the
  backend inserted, e.g. onnxruntime's ReorderInput/ReorderOutput: ``inserted`` true),
  ``ms`` its median time in the backend's profiler, ``detail`` backend notes (domain, fused
  activation, ``sum`` for a fused Add; the PrimFunc for TVM)
- ``eliminated``: original nodes that run in no kernel (removed, constant-folded, views)

Original node names are the ONNX names, or ``<op_type>_<index>`` for unnamed nodes, as in
``nnmeter-tvm graph``.
"""
from __future__ import annotations

import json


def add_truth_args(parser):
    """Add ``--truth`` and ``--untimed`` (and ``--backend`` / ``--json`` / ``--input-shape``
    unless the parser already has them)."""
    have = set(parser._option_string_actions)   # argparse keeps no public view of this
    parser.add_argument("--truth", action="store_true",
                        help="show the backend's own kernels (ground truth from the runtime) "
                             "with their measured times")
    parser.add_argument("--untimed", action="store_true",
                        help="with --truth: list the kernels without timing them")
    if "--backend" not in have:
        parser.add_argument("--backend", default="ort-cpu", help="backend (default ort-cpu)")
    if "--json" not in have:
        parser.add_argument("--json", action="store_true", help="print JSON")
    if "--input-shape" not in have:
        from .graph import add_input_shape_arg

        add_input_shape_arg(parser)


def run_truth(args) -> int:
    from ..backends import get_backend
    from ..onnx_import import parse_input_shapes

    truth = get_backend(args.backend).truth(
        args.model, timed=not getattr(args, "untimed", False),
        input_shapes=parse_input_shapes(getattr(args, "input_shape", [])))
    if getattr(args, "json", False):
        print(json.dumps({**truth.to_dict(), "model": args.model}, indent=1))
    else:
        print(format_truth(truth, args.model))
    return 0


def format_truth(truth, model: str | None = None) -> str:
    rows = [("kernel", "op type", "ms", "original nodes")]
    for k in truth.kernels:
        ms = "-" if k.ms is None else f"{k.ms:.4f}"
        rows.append((k.name, k.op_type, ms, "(inserted)" if k.inserted else " ".join(k.nodes)))
    widths = [min(max(len(r[i]) for r in rows), 40) for i in range(3)]
    lines = [f"{truth.backend} {truth.backend_version}  {model or truth.model}: "
             f"{len(truth.kernels)} kernels"]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
    if truth.eliminated:
        lines.append(f"eliminated (no kernel): {' '.join(truth.eliminated)}")
    if truth.total_ms is not None:
        lines.append(f"total {truth.total_ms:.4f} ms (sum of kernel times in the profiler)")
    elif truth.timed:
        lines.append("total: n/a (the profiler reported no time for some kernel)")
    return "\n".join(lines)
