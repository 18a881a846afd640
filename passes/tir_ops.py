"""Recognise a legalized TIR PrimFunc: which op it computes and the attributes the graph needs.

After ``LegalizeOps`` a Relax module no longer says ``relax.nn.conv2d(strides=2, padding=1)``;
it says ``R.call_tir(cls.conv2d1, ...)`` and the strides and padding live in the TIR index
expressions.  This module reads them back, for :mod:`.relax_graph`:

- the op: the PrimFunc's name without a ``tir_`` prefix and a de-duplication suffix
  (``conv2d1`` -> ``conv2d``, ``tir_sigmoid1`` -> ``sigmoid``), the names ``LegalizeOps`` and
  ``emit_te`` give;
- convolution and pooling windows, from the main block's read of its (padded) input::

      pad_temp[n, c, yy * 2 + ry, xx * 2 + rx]     -> stride 2, dilation 1, kernel = extent(ry)
      input[n, c, i2 - 1, i3 - 1]  (in pad_temp)   -> pad top 1, left 1; bottom, right from shapes

- clip bounds and scalar operands that ``emit_te`` inlined as ``FloatImm``;
- transpose permutations, from the store's load indices.

It reads TIR only; it never schedules or rewrites.  A PrimFunc it cannot read yields an op name
and no attributes, and the converter falls back to shapes.
"""
from __future__ import annotations

import re

from tvm import sym, tirx
from tvm.ir.expr import TensorLoad
from tvm.s_tir.stmt import SBlock, SBlockRealize

_SUFFIX = re.compile(r"^(.*?[123]d|.*?\D)\d*$")  # keep the 2d of conv2d, drop conv2d1's 1


def op_name(name: str) -> str:
    """``conv2d1`` -> ``conv2d``; ``tir_sigmoid1`` -> ``sigmoid``; ``max_pool2d`` stays."""
    base = name.removeprefix("tir_")
    m = _SUFFIX.match(base)
    return m.group(1) if m else base


def shape_of(buf) -> tuple[int, ...]:
    return tuple(int(d) for d in buf.shape)


def blocks(func) -> list:
    """Every SBlock in ``func`` in program order (the root block first)."""
    out = []

    def visit(stmt):
        if stmt is None:
            return
        if isinstance(stmt, SBlockRealize):
            visit(stmt.block)
        elif isinstance(stmt, SBlock):
            out.append(stmt)
            visit(stmt.init)
            visit(stmt.body)
        elif isinstance(stmt, tirx.SeqStmt):
            for s in stmt.seq:
                visit(s)
        else:
            for attr in ("body", "then_case", "else_case"):
                if hasattr(stmt, attr):
                    visit(getattr(stmt, attr))

    visit(func.body)
    return out


def _linear(expr, block):
    """{iter var index: coefficient} and the constant term of ``expr`` over ``block``'s vars."""
    ivars = [iv.var for iv in block.iter_vars]
    coeffs = sym.detect_linear_equation(expr, ivars)
    if len(coeffs) != len(ivars) + 1:
        return None, None
    try:
        values = [int(c) for c in coeffs]
    except TypeError:
        return None, None
    return {i: c for i, c in enumerate(values[:-1]) if c}, values[-1]


def _find(func, names):
    for b in blocks(func):
        if any(b.name_hint.startswith(n) for n in names):
            return b
    return None


def _producer(func, buf):
    for b in blocks(func):
        if any(w.source.same_as(buf) for w in b.writes):
            return b
    return None


def _spatial_window(func, main, data_param, axes=(2, 3)):
    """Kernel, strides, dilations and pads of a sliding window over ``data_param``'s H, W."""
    read = next((r for r in main.reads if len(r.source.shape) == 4
                 and (r.source.same_as(data_param) or not any(r.source.same_as(p) for p in func.params))),
                None)
    if read is None:
        return None
    kernel, strides, dilations = [], [], []
    for ax in axes:
        coef, _ = _linear(read.region[ax].min, main)
        if coef is None:
            return None
        s = [c for i, c in coef.items() if int(main.iter_vars[i].iter_type) == 0]
        r = [(i, c) for i, c in coef.items() if int(main.iter_vars[i].iter_type) != 0]
        strides.append(s[0] if s else 1)
        dilations.append(r[0][1] if r else 1)
        kernel.append(int(main.iter_vars[r[0][0]].dom.extent) if r else 1)
    top = [0, 0]
    padded = read.source
    if not padded.same_as(data_param):
        pad_block = _producer(func, padded)
        src = next((r for r in pad_block.reads if r.source.same_as(data_param)), None) if pad_block else None
        if src is None:
            return None
        for j, ax in enumerate(axes):
            _, base = _linear(src.region[ax].min, pad_block)
            top[j] = -base if base is not None else 0
    full = shape_of(padded)
    h, w = shape_of(data_param)[2:4]
    pads = (top[0], top[1], full[2] - h - top[0], full[3] - w - top[1])
    return {"kernel_shape": tuple(kernel), "strides": tuple(strides),
            "dilations": tuple(dilations), "pads": pads}


def conv_attrs(func) -> dict:
    """strides, dilations, pads (top, left, bottom, right) of a legalized conv2d, or {}."""
    main = _find(func, ("conv2d_nchw", "group_conv2d_nchw", "depthwise_conv2d_nchw"))
    if main is None:
        return {}
    win = _spatial_window(func, main, func.params[0])
    return {k: v for k, v in (win or {}).items() if k != "kernel_shape"}


def pool_attrs(func) -> dict:
    """kernel_shape, strides, pads of a legalized max_pool2d / avg_pool2d, or {}."""
    main = _find(func, ("pool_max", "pool_sum"))
    if main is None:
        return {}
    return _spatial_window(func, main, func.params[0]) or {}


def pad_attrs(func) -> dict:
    """ONNX-ordered ``pads`` (all begins, then all ends) of a legalized pad, or {}."""
    src, out = func.params[0], func.params[-1]
    for b in blocks(func):
        read = next((r for r in b.reads if r.source.same_as(src)), None)
        if read is None or not any(w.source.same_as(out) for w in b.writes):
            continue
        begins = []
        for rng in read.region:
            _, base = _linear(rng.min, b)
            if base is None:
                return {}
            begins.append(-base)
        ends = [o - i - t for o, i, t in zip(shape_of(out), shape_of(src), begins)]
        return {"pads": tuple(begins + ends)}
    return {}


def _stores(func):
    for b in blocks(func):
        if isinstance(b.body, tirx.BufferStore):
            yield b.body


def float_consts(func) -> list[float]:
    """The float literals in the stored values, outermost first (inlined scalar operands)."""
    found = []

    def visit(e):
        if isinstance(e, tirx.FloatImm):
            found.append(float(e.value))
        for attr in ("a", "b", "value", "true_value", "false_value", "condition"):
            if hasattr(e, attr) and not isinstance(getattr(e, attr), (int, float, str)):
                visit(getattr(e, attr))
        for arg in getattr(e, "args", ()) or ():
            visit(arg)

    for store in _stores(func):
        visit(store.value)
    return found


def clip_bounds(func) -> tuple[float, float] | None:
    """(min, max) of a legalized clip: ``max(min(x, hi), lo)``."""
    for store in _stores(func):
        v = store.value
        if isinstance(v, tirx.Max) and isinstance(v.a, tirx.Min):
            lo, hi = v.b, v.a.b
            if isinstance(lo, tirx.FloatImm) and isinstance(hi, tirx.FloatImm):
                return float(lo.value), float(hi.value)
    return None


def transpose_perm(func) -> tuple[int, ...] | None:
    """``perm`` of a legalized transpose: out[v0..vn] = in[v_perm[0]..]."""
    for b in blocks(func):
        store = b.body
        if not isinstance(store, tirx.BufferStore) or not isinstance(store.value, TensorLoad):
            continue
        out_idx = [str(i) for i in store.indices]
        in_idx = [str(i) for i in store.value.indices]
        if sorted(out_idx) != sorted(in_idx):
            return None
        return tuple(in_idx.index(v) for v in out_idx)
    return None
