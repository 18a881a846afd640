"""The generic cost model: latency from FLOPs and bytes moved, for kernels with no trained model.

Every kernel has a cost (never a silent 0 ms).  A kernel whose type has no trained XGBoost model
is priced by a three-coefficient roofline-like linear model

    ms = c0 + c_flop * FLOPs + c_byte * bytes

where FLOPs counts multiply-adds as two, and bytes are the float32 bytes the kernel reads from
tensors made outside it, writes to tensors read outside it, and reads as weights.  The builder
fits the coefficients on all measured kernel samples (non-negative, relative error) and stores
them in the bundle; the defaults below are rough single-thread x86 figures for a predictor with
no bundle.  Every prediction made this way is flagged ``fallback=True``.
"""
from __future__ import annotations

import math

import numpy as np

from ..ops import category

# c0 (ms), ms per FLOP, ms per byte: ~20 GFLOP/s and ~5 GB/s, single-thread, untrained guesses
DEFAULT_COEF = {
    "ort-cpu": (0.002, 1.0 / 20e6, 1.0 / 5e6),
    "tvm-llvm": (0.01, 1.0 / 1e6, 1.0 / 1e6),
}
_GENERIC = (0.005, 1.0 / 10e6, 1.0 / 3e6)


def _numel(shape) -> int:
    return int(math.prod(int(d) for d in shape)) if shape else 1


def const_shapes(node) -> list[tuple[int, ...]]:
    """Shapes of the constant inputs (weights) folded into ``node.attrs["const_inputs"]``."""
    consts = node.attrs.get("const_inputs") or ()
    items = consts.values() if isinstance(consts, dict) else consts
    shapes = []
    for item in items:
        if isinstance(item, dict):
            shape = item.get("shape", ())
        elif isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[1], (list, tuple)):
            shape = item[1]  # (index, shape)
        else:
            shape = item
        try:
            shapes.append(tuple(int(d) for d in shape))
        except (TypeError, ValueError):
            continue
    return shapes


def _conv_window(node) -> int:
    """Input channels per group times kernel area, from the weight or the attributes."""
    for shape in const_shapes(node):
        if len(shape) == 4:
            return shape[1] * shape[2] * shape[3]
    k = node.attrs.get("kernel_shape") or (1, 1)
    groups = int(node.attrs.get("group", node.attrs.get("groups", 1)) or 1)
    cin = node.input_shape[1] if len(node.input_shape) > 1 else 1
    return max(1, cin // groups) * _numel(k)


def node_flops(node) -> float:
    """FLOPs of one node (a multiply-add counts two)."""
    out = _numel(node.output_shape) if node.output_shapes else 0
    op = node.op
    if op in ("conv", "dwconv", "gconv"):
        return 2.0 * out * _conv_window(node)
    if op == "convtranspose":
        return 2.0 * _numel(node.input_shape) * _conv_window(node)
    if op in ("gemm", "matmul"):
        k = node.input_shape[-1] if node.input_shape else 1
        return 2.0 * out * k
    if op in ("maxpool", "avgpool"):
        return float(out * _numel(node.attrs.get("kernel_shape") or (1, 1)))
    if op in ("globalavgpool", "globalmaxpool", "reducemean", "reducesum", "reducemax"):
        return float(_numel(node.input_shape))
    if op in ("softmax", "layernorm"):
        return 5.0 * out
    if category(op) in ("unary", "binary"):
        return float(out)
    return 0.0


def kernel_stats(kernel, graph) -> tuple[float, float]:
    """(FLOPs, bytes) of a kernel; an inserted layout kernel copies ``attrs["shape"]`` once."""
    if kernel.inserted or not kernel.nodes:
        n = _numel(kernel.attrs.get("shape") or ())
        return float(n), 8.0 * n
    members = set(kernel.nodes)
    flops = 0.0
    elems = 0
    seen_in = set()
    for name in kernel.nodes:
        node = graph.node(name)
        flops += node_flops(node)
        for t, shape in zip(node.inputs, node.input_shapes):
            if t not in seen_in and graph.producer(t) not in members:
                seen_in.add(t)
                elems += _numel(shape)
        elems += sum(_numel(s) for s in const_shapes(node))
        for t, shape in zip(node.outputs, node.output_shapes):
            if graph.is_graph_output(t) or any(c not in members for c in graph.consumers(t)):
                elems += _numel(shape)
    return flops, 4.0 * elems


def generic_stats(features, family: str, x) -> np.ndarray:
    """(FLOPs, bytes) columns from a family's encoded features (its shared cost block); the
    FLOPs of the channels a blocked layout really runs (``flops_blocked``, schema.py)."""
    cols = features.generic_columns(family)
    names = features.GENERIC_FEATURES
    x = np.asarray(x, dtype=np.float64)
    col = {n: c for n, c in zip(names, cols)}
    moved = x[:, col["bytes_in"]] + x[:, col["bytes_weight"]] + x[:, col["bytes_out"]]
    flops = x[:, features.feature_names(family).index("flops_blocked")]
    return np.column_stack([flops, moved])


class GenericModel:
    """``ms = c0 + c_flop * FLOPs + c_byte * bytes`` with non-negative coefficients."""

    def __init__(self, coef=None, backend: str | None = None, fitted_on: int = 0):
        self.coef = tuple(float(c) for c in (coef or DEFAULT_COEF.get(backend, _GENERIC)))
        self.fitted_on = fitted_on

    def predict(self, stats) -> np.ndarray:
        stats = np.asarray(stats, dtype=np.float64).reshape(-1, 2)
        c0, cf, cb = self.coef
        return c0 + cf * stats[:, 0] + cb * stats[:, 1]

    def predict_encoded(self, family: str, x) -> np.ndarray:
        """ms for rows of ``family``'s encoded features."""
        from .. import features

        return self.predict(generic_stats(features, family, x))

    def fit(self, stats, ms) -> "GenericModel":
        """Least squares on relative error (rows weighted by 1/ms), coefficients kept >= 0."""
        stats = np.asarray(stats, dtype=np.float64).reshape(-1, 2)
        ms = np.asarray(ms, dtype=np.float64)
        keep = ms > 0
        stats, ms = stats[keep], ms[keep]
        if len(ms) < 3:
            return self
        design = np.column_stack([np.ones(len(ms)), stats]) / ms[:, None]
        scale = np.maximum(np.abs(design).max(axis=0), 1e-30)
        coef = _nnls(design / scale, np.ones(len(ms))) / scale
        self.coef = tuple(float(c) for c in coef)
        self.fitted_on = int(len(ms))
        return self

    def to_dict(self) -> dict:
        return {"formula": "ms = c0 + c_flop * FLOPs + c_byte * bytes",
                "c0": self.coef[0], "c_flop": self.coef[1], "c_byte": self.coef[2],
                "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, d: dict) -> "GenericModel":
        return cls((d["c0"], d["c_flop"], d["c_byte"]), fitted_on=int(d.get("fitted_on", 0)))


class LayoutLines:
    """A family's FLOPs/bytes line fitted apart for each layout its kernels run in (the
    features' context): one backend path can cost 10x another for the same work (onnxruntime's
    plain-NCHW depthwise conv against its NCHWc one), which one line cannot follow.  A layout
    with fewer than ``MIN_ROWS`` samples uses the line of all of them.  :class:`OpLines` is the
    same per op."""

    MIN_ROWS = 8
    FIELD, KEY = "layout", "by_layout"  # the code column the lines split on; the bundle's key

    def __init__(self, overall: GenericModel, lines: dict[int, GenericModel] | None = None):
        self.overall = overall
        self.lines = dict(lines or {})

    @classmethod
    def fit_encoded(cls, family: str, x, ms) -> "LayoutLines":
        from .. import features

        stats, ms = generic_stats(features, family, x), np.asarray(ms, dtype=np.float64)
        codes = code_column(features, family, x, cls.FIELD)
        lines = {int(c): GenericModel().fit(stats[codes == c], ms[codes == c])
                 for c in np.unique(codes) if np.sum(codes == c) >= cls.MIN_ROWS}
        return cls(GenericModel().fit(stats, ms), lines)

    def predict_encoded(self, family: str, x) -> np.ndarray:
        from .. import features

        stats = generic_stats(features, family, x)
        out = self.overall.predict(stats)
        codes = code_column(features, family, x, self.FIELD)
        for code, line in self.lines.items():
            at = codes == code
            if at.any():
                out[at] = line.predict(stats[at])
        return out

    @staticmethod
    def _name(code: int) -> str:
        from ..features.schema import LAYOUT_CODES

        return LAYOUT_CODES[code]

    @staticmethod
    def _code(name: str) -> int:
        from ..features.schema import LAYOUT_CODES

        return LAYOUT_CODES.index(name)

    def to_dict(self) -> dict:
        return {**self.overall.to_dict(),
                self.KEY: {self._name(c): line.to_dict() for c, line in self.lines.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "LayoutLines":
        return cls(GenericModel.from_dict(d), {cls._code(name): GenericModel.from_dict(v)
                                               for name, v in d[cls.KEY].items()})


class OpLines(LayoutLines):
    """One line per op of a family whose ops cost differently per element for the same FLOPs
    and bytes (a Pow 15x an Add, a Resize 5-10x a Transpose: ``results/unseen-ops/``); the bundle
    names each line by its op code (the family's op table, ``features/schema.py``)."""

    FIELD, KEY = "op_code", "by_op_code"

    @staticmethod
    def _name(code: int) -> str:
        return str(code)

    @staticmethod
    def _code(name: str) -> int:
        return int(name)


def baseline_from_dict(d: dict):
    """A family baseline from a bundle: one line, or one per layout or per op."""
    for kind in (LayoutLines, OpLines):
        if kind.KEY in d:
            return kind.from_dict(d)
    return GenericModel.from_dict(d)


def code_column(features, family: str, x, field: str = "layout") -> np.ndarray:
    """A code column (the context's ``layout``, or ``op_code``) of a family's encoded rows, as
    integer codes."""
    return np.asarray(x)[:, features.feature_names(family).index(field)].astype(int)


def _nnls(a: np.ndarray, b: np.ndarray, iters: int = 200) -> np.ndarray:
    """Small non-negative least squares by active-set elimination (3 unknowns)."""
    free = list(range(a.shape[1]))
    x = np.zeros(a.shape[1])
    for _ in range(iters):
        sol, *_ = np.linalg.lstsq(a[:, free], b, rcond=None)
        if (sol >= 0).all():
            x[:] = 0
            x[free] = sol
            return x
        free.pop(int(np.argmin(sol)))
        if not free:
            return x
    return x
