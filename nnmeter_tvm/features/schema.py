"""THE feature schema: one table, versioned, read by training and by prediction alike.

A kernel is costed by the model of its **family** (``conv``, ``gemm``, ``concat``...).  Each family
has an ordered tuple of **raw fields** (the kernel's configuration, extracted from the graph by
:mod:`.configs` or drawn by the sampler) and an ordered tuple of **features**: the raw fields
passed through unchanged, then the **derived** features the C++ encoder computes from them.

Every family with member ops ends its raw fields with the same epilogue block (``ep_*``: how
many fused ops of each kind, plus the elements the fused binary ops read from outside the
kernel) and ``dtype_bytes``; every family ends its features with the same cost block
(``flops``, ``params``, ``bytes_in``, ``bytes_weight``, ``bytes_out``, ``arith_intensity``),
which is also the input of the ``generic`` fallback model (see ``generic_columns``).

Conventions of the derived features (the C++ encoder and ``reference.py`` follow them):

* FLOPs count a multiply-add as 2; a bias add is 1 per output; pooling 1 per window element;
  an elementwise op 1 per element (bn 2); a reduction 1 per input element; softmax/layernorm
  5 per element; data movement and layout reorders 0.
* ``params`` are the weight elements (conv/gemm weights and bias, bn scale/shift, constant
  operands); ``bytes_*`` are element counts times ``dtype_bytes``; ``bytes_in`` holds the
  activations read, including the epilogue's outside operands; ``bytes_weight`` the params.
* ``arith_intensity`` = flops / max(bytes_in + bytes_weight + bytes_out, 1).
* ``X_up{4,8,16}`` is X rounded up to that multiple and ``X_rem{4,8,16}`` is X mod it: latency
  steps at SIMD-width multiples of the channel count.
* Output H, W are derived, never given: conv ``(h + pt + pb - d*(k-1) - 1) // s + 1``;
  conv-transpose ``(h-1)*s - pt - pb + d*(k-1) + out_pad + 1``; pools as ONNX, ``ceil_mode``
  included.  Strides, groups, dilations and block sizes below 1 are read as 1.
* Shapes of any rank are read as NCHW by :func:`nchw`: missing trailing dims are 1, dims beyond
  the fourth fold into W.

Every family's raw row ends with the **context block** (``CONTEXT``): not the kernel's shapes but
how the backend runs it, as the partition decided (``layout``: indexes ``LAYOUT_CODES``; on
onnxruntime a depthwise conv with channels not a multiple of 4 runs in plain NCHW, at 9-19x the
time of the same conv in NCHWc: ``benchmarks/results/layout_paths-ort-cpu.md``;
``channel_block``: the channel block of a blocked layout, 0 otherwise).  The compiled encoder
never reads it: its columns are placed after the derived features, and after them the one
feature derived from it (``CONTEXT_DERIVED``, computed by ``features.encode``):

* ``flops_blocked``: ``flops`` with the channels a blocked conv or depthwise conv really runs,
  each rounded up to the block (a dense conv's input channels only from one block up: below
  it onnxruntime reads plain NCHW input).  onnxruntime pads NCHWc channels so: a 3x3 conv
  20 -> 20 at 32x32 runs as long as 32 -> 32, 3.7x the 16 -> 16 one
  (``benchmarks/results/blocked-flops/``).  The FLOPs/bytes lines the cost models correct
  (``predictors.fallback.generic_stats``) read it instead of ``flops``.

Change any of this -- a field, a name, an order, a formula -- and bump ``SCHEMA_VERSION`` (and
the same constant in ``cpp_ext/feature_encoder.h``): bundles trained under another version are
refused, and the extension refuses to run against another version of this table.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import unknown_name

SCHEMA_VERSION = 3

# ---------------------------------------------------------------------------------- op tables
# Op codes are indexes into these tuples (a raw field ``op_code``).  Append only; bump the version.
ELEMENTWISE_OPS = ("bn", "relu", "relu6", "clip", "sigmoid", "hardsigmoid", "hardswish", "tanh",
                   "leakyrelu", "gelu", "erf", "sqrt", "exp", "identity")
BINARY_OPS = ("add", "sub", "mul", "div", "pow")
SPLIT_OPS = ("split", "slice")
MOVEMENT_OPS = ("reshape", "transpose", "resize", "gather")
SOFTMAX_OPS = ("softmax", "layernorm")
REDUCE_OPS = ("reducemean", "reducesum", "reducemax")
RESIZE_MODES = ("nearest", "linear", "cubic")
PAD_MODES = ("constant", "reflect", "edge")
# layout kernels: direction of the reorder (0 when the backend does not say)
LAYOUT_DIRECTIONS = ("unknown", "to_blocked", "from_blocked")
# the context field ``layout``: how the partition says the backend runs a kernel ("unknown":
# the backend has no layout rules, or the kernels were formed elsewhere)
LAYOUT_CODES = ("unknown", "plain", "blocked")
# raw fields holding a code, not a size: a code no training row of a family had is an op (or a
# mode) its cost model never saw, whose trees price it as whichever code their splits put it
# with; the predictor flags such a kernel and names its op (``FamilyModel.unseen``)
CODE_FIELDS = ("op_code", "mode")

# anchor op -> family (an op missing here, e.g. ``unknown``, is costed by ``generic``)
FAMILY_OF_OP: dict[str, str] = {
    "conv": "conv", "dwconv": "dwconv", "gconv": "gconv", "convtranspose": "convtranspose",
    "gemm": "gemm", "matmul": "gemm",
    "maxpool": "pool", "avgpool": "pool",
    "globalavgpool": "globalpool", "globalmaxpool": "globalpool",
    **{op: "elementwise" for op in ELEMENTWISE_OPS},
    **{op: "binary" for op in BINARY_OPS},
    "concat": "concat",
    **{op: "split" for op in SPLIT_OPS},
    "pad": "pad",
    **{op: "movement" for op in MOVEMENT_OPS},
    **{op: "softmax" for op in SOFTMAX_OPS},
    **{op: "reduce" for op in REDUCE_OPS},
    "reorder": "layout",
}

# ------------------------------------------------------------------------------ epilogue block
# fused member op (any member but the anchor) -> the count it adds to; ``identity`` is free.
EPILOGUE_KIND: dict[str, str] = {
    "bn": "ep_bn",
    "relu": "ep_relu", "leakyrelu": "ep_relu",
    "relu6": "ep_clip", "clip": "ep_clip",
    "sigmoid": "ep_sigmoid", "hardsigmoid": "ep_sigmoid",
    "hardswish": "ep_hardswish",
    "tanh": "ep_transcendental", "gelu": "ep_transcendental", "erf": "ep_transcendental",
    "sqrt": "ep_transcendental", "exp": "ep_transcendental",
    "add": "ep_add", "mul": "ep_mul",
    "sub": "ep_other_binary", "div": "ep_other_binary", "pow": "ep_other_binary",
    "concat": "ep_movement", "split": "ep_movement", "slice": "ep_movement", "pad": "ep_movement",
    "reshape": "ep_movement", "transpose": "ep_movement", "resize": "ep_movement",
    "gather": "ep_movement",
}
EPILOGUE_FREE = frozenset({"identity"})
EPILOGUE_COUNTS = ("ep_bn", "ep_relu", "ep_clip", "ep_sigmoid", "ep_hardswish", "ep_transcendental",
                   "ep_add", "ep_mul", "ep_other_binary", "ep_movement", "ep_other")
# ep_extra_elems: elements the fused binary ops read from outside the kernel (residual, SE scale)
EPILOGUE_FIELDS = EPILOGUE_COUNTS + ("ep_extra_elems",)
# ep_ops: sum of the counts; ep_flops: (ep_ops - ep_movement - ep_other + ep_bn) * output elements
EPILOGUE_DERIVED = ("ep_ops", "ep_flops", "ep_bytes_in")

COST = ("flops", "params", "bytes_in", "bytes_weight", "bytes_out", "arith_intensity")
CONTEXT = ("layout", "channel_block")
CONTEXT_DERIVED = ("flops_blocked",)


def align(name: str) -> tuple[str, ...]:
    """The alignment features of one extent: rounded up to 4/8/16, then the remainders."""
    return tuple(f"{name}_{kind}{m}" for kind in ("up", "rem") for m in (4, 8, 16))


@dataclass(frozen=True)
class Family:
    """One cost-model family: its ordered raw fields and derived features.

    ``raw`` is a raw row: the fields the compiled encoder reads (``encoded_raw``), then the
    context block, which the encoder passes through after its derived features."""

    name: str
    encoded_raw: tuple[str, ...]
    derived: tuple[str, ...]
    doc: str

    @property
    def raw(self) -> tuple[str, ...]:
        return self.encoded_raw + CONTEXT

    @property
    def features(self) -> tuple[str, ...]:
        return self.encoded_raw + self.derived + CONTEXT + CONTEXT_DERIVED

    @property
    def raw_width(self) -> int:
        return len(self.raw)

    @property
    def width(self) -> int:
        return len(self.features)


def _family(name: str, raw: tuple, derived: tuple, doc: str, epilogue: bool = True) -> Family:
    if epilogue:
        return Family(name, raw + EPILOGUE_FIELDS + ("dtype_bytes",), derived + EPILOGUE_DERIVED + COST, doc)
    return Family(name, raw + ("dtype_bytes",), derived + COST, doc)


_CONV_RAW = ("batch", "cin", "hin", "win", "cout", "kh", "kw", "sh", "sw", "dh", "dw", "groups",
             "pad_t", "pad_l", "pad_b", "pad_r", "out_pad_h", "out_pad_w", "has_bias")
_CONV_DERIVED = ("hout", "wout", "cin_per_group", "cout_per_group") + align("cin") + align("cout")

FAMILIES: dict[str, Family] = {f.name: f for f in (
    _family("conv", _CONV_RAW, _CONV_DERIVED, "dense 2-D convolution (groups == 1)"),
    _family("dwconv", _CONV_RAW, _CONV_DERIVED, "depthwise convolution (groups == cin == cout)"),
    _family("gconv", _CONV_RAW, _CONV_DERIVED, "grouped convolution, not depthwise"),
    _family("convtranspose", _CONV_RAW, _CONV_DERIVED,
            "transposed convolution; weight (cin, cout/groups, kh, kw)"),
    _family("gemm", ("batch", "m", "k", "n", "b_batch", "b_const", "has_bias"),
            align("k") + align("n"),
            "fc and matmul: batch x (m x k) @ (k x n); b_batch distinct B matrices (1 when "
            "broadcast); b_const 1 when B is a weight"),
    _family("pool", ("batch", "c", "hin", "win", "kh", "kw", "sh", "sw",
                     "pad_t", "pad_l", "pad_b", "pad_r", "ceil_mode", "is_max"),
            ("hout", "wout") + align("c"), "max / average pooling"),
    _family("globalpool", ("batch", "c", "hin", "win", "is_max"), align("c"),
            "global average / max pooling"),
    _family("elementwise", ("batch", "c", "h", "w", "op_code", "weight_elems"), ("elems",) + align("c"),
            "one-input elementwise op alone (activations, bn); op_code indexes ELEMENTWISE_OPS"),
    _family("binary", ("batch", "c", "h", "w", "a_elems", "b_elems", "b_const", "op_code"),
            ("elems", "a_bcast", "b_bcast", "bcast_ratio") + align("c"),
            "two-input elementwise op; (batch, c, h, w) is the output, a the larger operand, "
            "b the other (broadcast when b_elems < elems); op_code indexes BINARY_OPS"),
    _family("concat", ("outer", "inner", "n_inputs", "c1", "c2", "c3", "c4", "c_rest",
                       "n_misaligned4", "n_misaligned8", "n_misaligned16", "axis_is_channel"),
            ("c_total",) + align("c_total"),
            "concat of any number of inputs at a fixed width: extents c1..c4 along the axis of "
            "the first four inputs (0 when absent), c_rest their sum over the others, "
            "n_misaligned{4,8,16} inputs whose extent is not a multiple; outer/inner the "
            "products of the dims before/after the axis"),
    _family("split", ("outer", "axis_len", "inner", "n_outputs", "out_axis_total", "op_code"),
            ("in_elems", "out_elems") + align("axis_len"),
            "split / slice along one axis: out_axis_total is the outputs' summed extent; "
            "op_code indexes SPLIT_OPS"),
    _family("pad", ("batch", "c", "hin", "win", "pad_t", "pad_l", "pad_b", "pad_r", "pad_c", "mode"),
            ("hout", "wout", "cout") + align("c"),
            "explicit padding; pad_c the total channel padding; mode indexes PAD_MODES"),
    _family("movement", ("op_code", "n", "c", "h", "w", "on", "oc", "oh", "ow", "moves_inner", "mode"),
            ("in_elems", "out_elems", "size_ratio") + align("c"),
            "reshape / transpose / resize / gather (op_code indexes MOVEMENT_OPS); moves_inner 1 "
            "when a transpose moves the innermost axis; mode indexes RESIZE_MODES"),
    _family("softmax", ("op_code", "outer", "axis_len", "inner", "weight_elems"),
            ("elems",) + align("axis_len"),
            "softmax / layernorm over axis_len (op_code indexes SOFTMAX_OPS)"),
    _family("reduce", ("op_code", "outer", "axis_len", "inner"),
            ("in_elems", "out_elems") + align("axis_len"),
            "reduction of axis_len elements (product of the reduced dims); op_code indexes REDUCE_OPS"),
    _family("layout", ("n", "c", "h", "w", "direction", "block"),
            ("elems", "blocked_elems") + align("c"),
            "layout reorder a backend inserts (e.g. NCHW <-> NCHWc); direction indexes "
            "LAYOUT_DIRECTIONS; block the channel block (0 when unknown)", epilogue=False),
    _family("generic", ("flops_est", "weight_elems", "in_elems", "out_elems", "n_inputs", "n_outputs"),
            (), "fallback for any kernel: bytes moved and FLOPs only"),
)}

# what the generic fallback model reads: present in every family's features
GENERIC_FEATURES = COST


def family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise unknown_name("feature family", name, FAMILIES) from None


def raw_fields(name: str) -> tuple[str, ...]:
    return family(name).raw


def feature_names(name: str) -> tuple[str, ...]:
    return family(name).features


def generic_columns(name: str) -> tuple[int, ...]:
    """Column indexes of ``GENERIC_FEATURES`` in family ``name``'s features (for the fallback)."""
    feats = family(name).features
    return tuple(feats.index(f) for f in GENERIC_FEATURES)


def conv_family(cin: int, cout: int, groups: int) -> str:
    """``conv``, ``dwconv`` or ``gconv`` for a 2-D convolution (depthwise: groups == cin == cout)."""
    if groups <= 1:
        return "conv"
    if groups == cin == cout:
        return "dwconv"
    return "gconv"


def family_of(kernel) -> str:
    """The family that costs ``kernel``: from its anchor's op (``inserted`` kernels are layout)."""
    if kernel.inserted:
        return "layout"
    return FAMILY_OF_OP.get(anchor_op(kernel), "generic")


def anchor_op(kernel) -> str:
    """The op of the kernel's anchor node (its first member when it has no anchor)."""
    ops = kernel.ops
    if not ops:
        return "unknown"
    anchor = kernel.anchor
    if anchor is None:
        return ops[0]
    nodes = kernel.nodes
    if nodes and nodes[0] == anchor:
        return ops[0]
    try:
        return ops[nodes.index(anchor)]
    except ValueError:
        return ops[0]
