"""``nnmeter-tvm graph MODEL.onnx``: print the normalized graph."""
from __future__ import annotations

import json


def add_parser(sub):
    p = sub.add_parser("graph", help="print a model's normalized graph (ops, shapes, attributes)")
    p.add_argument("model", help="path of an .onnx model")
    add_input_shape_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def add_input_shape_arg(parser):
    """The shared ``--input-shape NAME=1,3,224,224`` option (repeatable)."""
    parser.add_argument("--input-shape", action="append", default=[], metavar="NAME=DIMS",
                        help="static shape for an input with symbolic dims, e.g. input=1,3,224,224")


def run(args) -> int:
    from ..onnx_import import load_graph, parse_input_shapes

    graph = load_graph(args.model, parse_input_shapes(args.input_shape))
    if args.json:
        print(json.dumps(graph.to_dict(), indent=1))
    else:
        print(format_graph(graph))
    return 0


_KEY_ATTRS = ("kernel_shape", "strides", "group", "m", "k", "n", "axis", "perm", "min", "max")


def format_graph(graph) -> str:
    rows = [("node", "op", "source", "input shapes", "output shape", "attributes")]
    for n in graph:
        key = " ".join(f"{k}={_short(n.attrs[k])}" for k in _KEY_ATTRS if k in n.attrs)
        rows.append((n.name, n.op, n.source_op, " ".join(_short(s) for s in n.input_shapes),
                     _short(n.output_shape), key))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    head = f"{graph.name}: {len(graph)} nodes, inputs " + ", ".join(
        f"{t.name}{_short(t.shape)}" for t in graph.inputs)
    return "\n".join([head, *lines])


def _short(value) -> str:
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value) if value else "-"
    return str(value)
