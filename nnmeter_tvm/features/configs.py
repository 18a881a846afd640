"""Raw kernel configurations, read from the graph in the order of :mod:`.schema`.

``kernel_config(kernel, graph)`` gives one kernel's ``(family, row)``; ``configs_by_family``
gives the rows of many kernels stacked per family, ready for ``encode``.  NAS calls this
thousands of times, so each family has one plain extractor function and no per-field lookups.
"""
from __future__ import annotations

from math import prod

import numpy as np

from .schema import (BINARY_OPS, ELEMENTWISE_OPS, EPILOGUE_COUNTS, EPILOGUE_FREE, EPILOGUE_KIND,
                     FAMILIES, MOVEMENT_OPS, PAD_MODES, REDUCE_OPS, RESIZE_MODES, SOFTMAX_OPS,
                     SPLIT_OPS, FAMILY_OF_OP, LAYOUT_CODES, anchor_op, family_of)
from ..errors import unknown_name

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1, "uint8": 1,
               "int16": 2, "int32": 4, "int64": 8, "bool": 1}

_EP_INDEX = {kind: i for i, kind in enumerate(EPILOGUE_COUNTS)}
_EP_OF_OP = {op: _EP_INDEX[kind] for op, kind in EPILOGUE_KIND.items()}
_EP_OTHER = _EP_INDEX["ep_other"]
_EP_BINARY = frozenset(i for op, i in _EP_OF_OP.items() if op in BINARY_OPS)
_EP_ZERO = [0] * (len(EPILOGUE_COUNTS) + 1)

_CODE = {name: {op: i for i, op in enumerate(table)} for name, table in (
    ("elementwise", ELEMENTWISE_OPS), ("binary", BINARY_OPS), ("split", SPLIT_OPS),
    ("movement", MOVEMENT_OPS), ("softmax", SOFTMAX_OPS), ("reduce", REDUCE_OPS))}
_RESIZE = {m: i for i, m in enumerate(RESIZE_MODES)}
_PAD = {m: i for i, m in enumerate(PAD_MODES)}
_PLAIN, _BLOCKED = LAYOUT_CODES.index("plain"), LAYOUT_CODES.index("blocked")


def _context(kernel) -> list:
    """The context block: the layout the partition runs the kernel in (``attrs["layout"]``:
    "plain", or the name of the backend's blocked layout; absent: unknown) and its channel
    block (``attrs["block"]``, 0 when not blocked)."""
    layout = kernel.attrs.get("layout")
    if not layout or layout == "plain":
        return [_PLAIN if layout else 0, 0]
    return [_BLOCKED, kernel.attrs.get("block", 0)]


def as_rows(family: str, configs) -> np.ndarray:
    """``configs`` (one raw row or N) of ``family`` as a float64 N x raw-width matrix, or a
    ValueError naming the width expected."""
    width = FAMILIES[family].raw_width
    rows = np.asarray(configs, dtype=np.float64)
    if rows.ndim == 1:
        rows = rows[None, :]
    if rows.ndim != 2 or rows.shape[1] != width:
        raise ValueError(f"feature family {family!r} expects configs of shape (N, {width}), "
                         f"got {rows.shape}")
    return rows


def nchw(shape) -> tuple[int, int, int, int]:
    """Any shape read as (n, c, h, w): missing trailing dims are 1, dims past the fourth fold into w."""
    r = len(shape)
    if r == 4:
        return shape[0], shape[1], shape[2], shape[3]
    if r < 4:
        s = tuple(shape) + (1,) * (4 - r)
        return s[0], s[1], s[2], s[3]
    return shape[0], shape[1], shape[2], prod(shape[3:])


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _const_elems(node) -> int:
    ci = node.attrs.get("const_inputs")
    return sum(map(prod, ci.values())) if ci else 0


def _all_inputs(node) -> list[tuple[tuple, bool]]:
    """(shape, is_constant) of every input in input-index order, folded constants included."""
    ci = node.attrs.get("const_inputs")
    if not ci:
        return [(s, False) for s in node.input_shapes]
    out, act = [], iter(node.input_shapes)
    for i in range(len(node.input_shapes) + len(ci)):
        if i in ci:
            out.append((tuple(ci[i]), True))
        else:
            out.append((next(act, ()), False))
    return out


def _pair(v, default):
    if not v:
        return default, default
    return (v[0], v[1]) if len(v) > 1 else (v[0], default)


def _pads(a, key="pads"):
    p = a.get(key)
    if p is None:
        return None
    if len(p) >= 4:
        return p[0], p[1], p[2], p[3]
    if len(p) == 2:  # 1-D: (begin, end)
        return p[0], 0, p[1], 0
    return 0, 0, 0, 0


def _same_pads(total_h, total_w):
    """Explicit pads for an auto_pad (SAME_UPPER: the extra one at the end)."""
    th, tw = max(total_h, 0), max(total_w, 0)
    return th // 2, tw // 2, th - th // 2, tw - tw // 2


# ------------------------------------------------------------------------------ extractors
def _conv(node, kernel):
    a = node.attrs
    try:  # the importer's conventions, 2-D: the fast path
        n, c, hin, win = node.input_shapes[0]
        kh, kw = a["kernel_shape"]
        sh, sw = a["strides"]
        dh, dw = a["dilations"]
        pt, pl, pb, pr = a["pads"]
        row = [n, a["cin"], hin, win, a["cout"], kh, kw, sh, sw, dh, dw, a["group"],
               pt, pl, pb, pr, 0, 0, 1 if a["has_bias"] else 0]
    except (KeyError, ValueError, TypeError):
        row = _conv_general(node)
    if node.op == "convtranspose":  # output_padding: whatever makes the real output shape
        _, _, hout, wout = nchw(node.output_shapes[0])
        row[16] = hout - ((row[2] - 1) * row[7] - row[12] - row[14] + row[9] * (row[5] - 1) + 1)
        row[17] = wout - ((row[3] - 1) * row[8] - row[13] - row[15] + row[10] * (row[6] - 1) + 1)
    return row


def _conv_general(node):
    """Conv of any rank or with attributes missing (1-D convs, hand-made graphs)."""
    a = node.attrs
    n, c, hin, win = nchw(node.input_shapes[0])
    on, oc, hout, wout = nchw(node.output_shapes[0])
    kh, kw = _pair(a.get("kernel_shape"), 1)
    sh, sw = _pair(a.get("strides"), 1)
    dh, dw = _pair(a.get("dilations"), 1)
    pads = _pads(a)
    if pads is None:
        if node.op == "convtranspose":
            pads = _same_pads((hin - 1) * sh + dh * (kh - 1) + 1 - hout,
                              (win - 1) * sw + dw * (kw - 1) + 1 - wout)
        else:
            pads = _same_pads((hout - 1) * sh + dh * (kh - 1) + 1 - hin,
                              (wout - 1) * sw + dw * (kw - 1) + 1 - win)
    has_bias = a.get("has_bias")
    if has_bias is None:
        has_bias = len(a.get("const_inputs") or ()) + len(node.input_shapes) > 2
    return [n, a.get("cin", c), hin, win, a.get("cout", oc), kh, kw, sh, sw, dh, dw,
            a.get("group", 1), pads[0], pads[1], pads[2], pads[3], 0, 0, int(bool(has_bias))]


def _gemm(node, kernel):
    a = node.attrs
    if node.op == "gemm" and "k" in a and "n" in a:  # fc: activation x weight (+ bias)
        return [1, a.get("m", 1), a["k"], a["n"], 1, 1, int(a.get("has_bias", 0))]
    ins = _all_inputs(node)  # matmul: batch x (m x k) @ (k x n), B broadcast or not
    (sa, _), (sb, b_const) = ins[0], (ins[1] if len(ins) > 1 else ((1,), True))
    m, k = (1, sa[0]) if len(sa) == 1 else (sa[-2], sa[-1])
    nn = 1 if len(sb) == 1 else sb[-1]
    out = node.output_shapes[0]
    return [prod(out[:-2]) if len(out) > 2 else 1, m, k, nn, prod(sb[:-2]) if len(sb) > 2 else 1,
            int(b_const), int(len(ins) > 2)]


def _pool(node, kernel):
    a = node.attrs
    n, c, hin, win = nchw(node.input_shapes[0])
    kh, kw = _pair(a.get("kernel_shape"), 1)
    sh, sw = _pair(a.get("strides"), 1)
    pads = _pads(a)
    if pads is None:
        _, _, hout, wout = nchw(node.output_shapes[0])
        pads = _same_pads((hout - 1) * sh + kh - hin, (wout - 1) * sw + kw - win)
    return [n, c, hin, win, kh, kw, sh, sw, pads[0], pads[1], pads[2], pads[3],
            int(a.get("ceil_mode", 0)), int(node.op == "maxpool")]


def _globalpool(node, kernel):
    n, c, h, w = nchw(node.input_shapes[0])
    return [n, c, h, w, int(node.op == "globalmaxpool")]


def _elementwise(node, kernel):
    n, c, h, w = nchw(node.output_shapes[0])
    return [n, c, h, w, _CODE["elementwise"][node.op], _const_elems(node)]


def _binary(node, kernel):
    n, c, h, w = nchw(node.output_shapes[0])
    ins = _all_inputs(node)
    if len(ins) < 2:
        ea, eb, b_const = prod(ins[0][0]) if ins else n * c * h * w, 1, True
    else:
        (s0, k0), (s1, k1) = ins[0], ins[1]
        e0, e1 = prod(s0), prod(s1)
        if e1 > e0 or (e1 == e0 and k0 and not k1):
            e0, e1, k1 = e1, e0, k0
        ea, eb, b_const = e0, e1, k1
    return [n, c, h, w, ea, eb, int(b_const), _CODE["binary"][node.op]]


def _concat(node, kernel):
    out = node.output_shapes[0]
    r = len(out)
    axis = node.attrs.get("axis", 1)
    axis = axis + r if axis < 0 else axis
    shapes = node.input_shapes if not node.attrs.get("const_inputs") else [s for s, _ in _all_inputs(node)]
    ext = [s[axis] if len(s) > axis else 1 for s in shapes]
    m4 = m8 = m16 = 0
    for e in ext:
        if e % 16:
            m16 += 1
            if e % 8:
                m8 += 1
                if e % 4:
                    m4 += 1
    c = ext + [0, 0, 0, 0] if len(ext) < 4 else ext
    return [prod(out[:axis]), prod(out[axis + 1:]), len(ext), c[0], c[1], c[2], c[3], sum(ext[4:]),
            m4, m8, m16, 1 if axis == 1 else 0]


def _split(node, kernel):
    s = node.input_shapes[0]
    r = len(s)
    if node.op == "split":
        axis = node.attrs.get("axis", 0)
    else:
        axes = node.attrs.get("axes")
        if axes:
            axis = axes[0]
        else:
            o = node.output_shapes[0]
            axis = next((i for i in range(min(r, len(o))) if s[i] != o[i]), 0)
    axis = axis + r if axis < 0 else axis
    if r == 0:
        return [1, 1, 1, len(node.output_shapes), 1, _CODE["split"][node.op]]
    outer, inner = prod(s[:axis]), prod(s[axis + 1:])
    total = sum(prod(o) for o in node.output_shapes)
    return [outer, s[axis], inner, len(node.output_shapes), total / max(outer * inner, 1),
            _CODE["split"][node.op]]


def _pad(node, kernel):
    s = node.input_shapes[0]
    n, c, h, w = nchw(s)
    on, oc, oh, ow = nchw(node.output_shapes[0])
    p = node.attrs.get("pads")
    if p is not None and len(s) == 4 and len(p) == 8:
        pt, pl, pb, pr, pc = p[2], p[3], p[6], p[7], p[1] + p[5]
    else:
        pt, pl, pb, pr = _same_pads(oh - h, ow - w)
        pc = oc - c
    mode = _PAD.get(_text(node.attrs.get("mode", "constant")), 0)
    return [n, c, h, w, pt, pl, pb, pr, pc, mode]


def _movement(node, kernel):
    a = node.attrs
    n, c, h, w = nchw(node.input_shapes[0] if node.input_shapes else node.output_shapes[0])
    on, oc, oh, ow = nchw(node.output_shapes[0])
    moves = 0
    if node.op == "transpose":
        perm = a.get("perm")
        moves = int(bool(perm) and perm[-1] != len(perm) - 1) if perm is not None else 1
    mode = _RESIZE.get(_text(a.get("mode", "nearest")), 0) if node.op == "resize" else 0
    return [_CODE["movement"][node.op], n, c, h, w, on, oc, oh, ow, moves, mode]


def _softmax(node, kernel):
    s = node.input_shapes[0]
    r = len(s)
    axis = node.attrs.get("axis", -1)
    axis = axis + r if axis < 0 else axis
    if node.op == "layernorm":
        return [1, prod(s[:axis]), prod(s[axis:]), 1, _const_elems(node)]
    return [0, prod(s[:axis]), s[axis] if r else 1, prod(s[axis + 1:]), _const_elems(node)]


def _reduce(node, kernel):
    s = node.input_shapes[0]
    r = len(s)
    axes = node.attrs.get("axes")
    if not axes or r == 0:  # axes not recorded (an input tensor): read the reduction off the shapes
        total, out = prod(s), prod(node.output_shapes[0])
        return [_CODE["reduce"][node.op], out, total // max(out, 1), 1]
    axes = sorted(a + r if a < 0 else a for a in axes)
    return [_CODE["reduce"][node.op], prod(s[:axes[0]]), prod(s[i] for i in axes),
            prod(s[axes[-1] + 1:])]


def _generic(node, kernel):
    ins = node.input_shapes
    out = sum(prod(o) for o in node.output_shapes)
    ci = node.attrs.get("const_inputs") or ()
    return [out, _const_elems(node), sum(prod(i) for i in ins), out, len(ins) + len(ci),
            len(node.output_shapes)]


_EXTRACT = {
    "conv": _conv, "dwconv": _conv, "gconv": _conv, "convtranspose": _conv, "gemm": _gemm,
    "pool": _pool, "globalpool": _globalpool, "elementwise": _elementwise, "binary": _binary,
    "concat": _concat, "split": _split, "pad": _pad, "movement": _movement,
    "softmax": _softmax, "reduce": _reduce, "generic": _generic,
}
assert set(_EXTRACT) | {"layout"} == set(FAMILIES), "every family needs an extractor"


# the directions the partition writes, read without parsing (the general case below agrees)
_DIRECTION = {"to_blocked": 1, "from_blocked": 2}


def _layout(kernel) -> list:
    a = kernel.attrs
    n, c, h, w = nchw(tuple(a.get("shape") or ()))
    d = a.get("direction")
    direction = _DIRECTION.get(d) if type(d) is str else None
    if direction is None and isinstance(d, (int, np.integer)):
        direction = int(d)
    elif direction is None:
        text = (_text(d) if d is not None else f"{kernel.type} {kernel.name}").lower()
        direction = (1 if ("to_blocked" in text or "input" in text)
                     else 2 if ("from_blocked" in text or "output" in text) else 0)
    return [n, c, h, w, direction, a.get("block", 0), DTYPE_BYTES.get(a.get("dtype", "float32"), 4)]


def _epilogue(kernel, graph, anchor) -> list:
    """Counts of the fused ops by kind, then the elements their binary ops read from outside."""
    ep = [0] * (len(EPILOGUE_COUNTS) + 1)
    members = kernel.nodes
    extra = 0
    for name, op in zip(members, kernel.ops):
        if name == anchor or op in EPILOGUE_FREE:
            continue
        i = _EP_OF_OP.get(op, _EP_OTHER)
        ep[i] += 1
        if i in _EP_BINARY:
            node = graph.node(name)
            for t, shape in zip(node.inputs, node.input_shapes):
                if graph.producer(t) not in members:
                    extra += prod(shape)
            extra += _const_elems(node)
    ep[-1] = extra
    return ep


def _row(kernel, graph, family: str) -> list:
    if family == "layout":
        return _layout(kernel) + _context(kernel)
    nodes = kernel.nodes
    anchor = kernel.anchor or (nodes[0] if nodes else None)
    if anchor is None:  # an empty, non-inserted kernel: nothing to cost but its existence
        return [0] * (len(FAMILIES["generic"].encoded_raw) - 1) + [4] + _context(kernel)
    node = graph.node(anchor)
    row = _EXTRACT[family](node, kernel)
    row += _EP_ZERO if len(nodes) == 1 else _epilogue(kernel, graph, anchor)
    row.append(DTYPE_BYTES.get(node.dtype, 4))
    row += _context(kernel)  # in place: no copy of the row (the hot path of NAS)
    return row


def kernel_config(kernel, graph, family: str | None = None) -> tuple[str, np.ndarray]:
    """``(family, raw row)`` of one kernel; ``family="generic"`` forces the fallback family."""
    if family is None:
        family = family_of(kernel)
    elif family not in FAMILIES:
        raise unknown_name("feature family", family, FAMILIES)
    elif family not in ("generic", family_of(kernel)):
        raise ValueError(f"kernel {kernel.name!r} is of family {family_of(kernel)!r}; it can be "
                         f"read as that family or as 'generic', not as {family!r}")
    if family == "generic" and kernel.inserted:  # a reorder read as bytes moved
        n, c, h, w, _, _, db = _layout(kernel)
        e = n * c * h * w
        return family, np.array([0, 0, e, e, 1, 1] + _EP_ZERO + [db] + _context(kernel),
                                dtype=np.float64)
    return family, np.array(_row(kernel, graph, family), dtype=np.float64)


def configs_by_family(kernels_and_graphs, graph=None, return_index: bool = False):
    """Raw rows of many kernels, stacked per family: ``{family: float64 array N_f x raw}``.

    ``kernels_and_graphs`` is an iterable of ``(kernel, graph)`` pairs, or of kernels when
    ``graph`` is given.  Rows keep the input order within each family; with
    ``return_index=True`` also returns ``{family: int array}`` of each row's input position.
    """
    rows: dict[str, list] = {}
    where: dict[str, list] = {}
    items = ((k, graph) for k in kernels_and_graphs) if graph is not None else kernels_and_graphs
    family_of_op = FAMILY_OF_OP.get
    for i, item in enumerate(items):
        try:
            kernel, g = item
        except TypeError:
            raise TypeError(f"configs_by_family: expected (kernel, graph) pairs, got a "
                            f"{type(item).__name__}; pass graph=... for kernels of one graph") from None
        if kernel.inserted:
            fam = "layout"
        else:  # family_of, inlined: this loop is the hot path of NAS
            ops = kernel.ops
            if not ops:
                fam = "generic"
            else:
                anchor, nodes = kernel.anchor, kernel.nodes
                op = ops[0] if anchor is None or nodes[0] == anchor else anchor_op(kernel)
                fam = family_of_op(op, "generic")
        row = _row(kernel, g, fam)
        if fam in rows:
            rows[fam].extend(row)
            where[fam].append(i)
        else:
            rows[fam] = row
            where[fam] = [i]
    configs = {fam: np.array(r, dtype=np.float64).reshape(len(where[fam]), -1)
               for fam, r in rows.items()}
    if return_index:
        return configs, {fam: np.array(w, dtype=np.intp) for fam, w in where.items()}
    return configs
