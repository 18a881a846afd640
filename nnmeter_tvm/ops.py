"""The op vocabulary: the normalized op names every part of the project speaks.

A table from normalized name to its category.  Categories group ops whose cost behaves alike and
decide the kernel type of a fused group (the first ``compute`` op anchors a kernel; the ops fused
after it form its epilogue).  ONNX op types map onto these names in ``onnx_import``; Relax ops in
``passes.relax_graph``.  Anything else becomes ``unknown`` and keeps its shapes.
"""

# name: (category, one-line description)
VOCAB: dict[str, tuple[str, str]] = {
    # compute: the ops that anchor a kernel
    "conv": ("compute", "dense 2-D convolution (groups == 1)"),
    "dwconv": ("compute", "depthwise convolution: groups == in-channels == out-channels"),
    "gconv": ("compute", "grouped convolution, 1 < groups, not depthwise"),
    "convtranspose": ("compute", "transposed 2-D convolution"),
    "gemm": ("compute", "fully connected: Gemm, or MatMul against a constant 2-D weight"),
    "matmul": ("compute", "MatMul of two activations, or batched"),
    "maxpool": ("pool", "max pooling"),
    "avgpool": ("pool", "average pooling"),
    "globalavgpool": ("pool", "global average pooling (also ReduceMean over H, W)"),
    "globalmaxpool": ("pool", "global max pooling"),
    # elementwise on one tensor: candidates for a conv's epilogue
    "bn": ("unary", "BatchNormalization (inference)"),
    "relu": ("unary", "Relu"),
    "relu6": ("unary", "Clip to [0, 6]"),
    "clip": ("unary", "Clip to another range"),
    "sigmoid": ("unary", "Sigmoid"),
    "hardsigmoid": ("unary", "HardSigmoid"),
    "hardswish": ("unary", "HardSwish"),
    "tanh": ("unary", "Tanh"),
    "leakyrelu": ("unary", "LeakyRelu"),
    "gelu": ("unary", "Gelu"),
    "erf": ("unary", "Erf"),
    "sqrt": ("unary", "Sqrt"),
    "exp": ("unary", "Exp"),
    "identity": ("unary", "Identity or Dropout at inference"),
    # elementwise on two tensors (or one and a constant)
    "add": ("binary", "Add"),
    "sub": ("binary", "Sub"),
    "mul": ("binary", "Mul"),
    "div": ("binary", "Div"),
    "pow": ("binary", "Pow"),
    # data movement
    "concat": ("movement", "Concat"),
    "split": ("movement", "Split"),
    "slice": ("movement", "Slice"),
    "pad": ("movement", "Pad"),
    "reshape": ("movement", "Reshape, Flatten, Squeeze, Unsqueeze"),
    "transpose": ("movement", "Transpose"),
    "resize": ("movement", "Resize / Upsample"),
    "gather": ("movement", "Gather"),
    # reductions and normalizations
    "softmax": ("reduce", "Softmax"),
    "reducemean": ("reduce", "ReduceMean over axes other than H, W"),
    "reducesum": ("reduce", "ReduceSum"),
    "reducemax": ("reduce", "ReduceMax"),
    "layernorm": ("reduce", "LayerNormalization"),
    # layout kernels that a backend inserts (never in a source model)
    "reorder": ("layout", "layout conversion a backend inserts, e.g. onnxruntime's NCHWc ReorderInput/Output"),
    "unknown": ("unknown", "an op outside the vocabulary; kept with its shapes, never dropped"),
}

CATEGORIES = ("compute", "pool", "unary", "binary", "movement", "reduce", "layout", "unknown")


def category(op: str) -> str:
    return VOCAB.get(op, VOCAB["unknown"])[0]


def is_known(op: str) -> bool:
    return op in VOCAB and op != "unknown"
