"""A small ONNX graph builder that tracks shapes, MACs and parameter counts.

Every op method takes a tensor name, emits one node (two for ``swish``), and returns the name of
the node's output tensor, which is the node's name.  Node names are the scope path plus a local
name (``stage2.block1.conv1``) and must be unique: the rest of the project maps kernels back to
them.  A missing local name becomes ``<op><n>`` counted per scope.

Weights are only *declared* while the graph is built; :meth:`ModelBuilder.model` draws them
from the generator it is given.  So a graph can be built cheaply to check its size and cost,
and the weights are independent of how many candidate graphs were tried before.

Layout is NCHW, batch 1, float32.  Shapes are static and written into ``value_info``.
"""

import contextlib
import math

import numpy as np
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # onnxruntime 1.x loads IR 8 with opset 17


def _conv_out(size, k, stride, pad, ceil_mode=False):
    span = size + 2 * pad - k
    steps = math.ceil(span / stride) if ceil_mode else span // stride
    out = steps + 1
    if ceil_mode and (out - 1) * stride >= size + pad:  # last window must start inside input
        out -= 1
    return out


class ModelBuilder:
    """Collects nodes, declared weights and shapes for one ONNX graph."""

    def __init__(self, name):
        self.name = name
        self.nodes = []
        self.shapes = {}  # tensor name -> tuple
        self.macs = 0  # multiply-accumulates of Conv and Gemm
        self.dw_macs = 0  # the part of macs in depthwise convs
        self.params = 0  # float weights declared
        self._weights = []  # (name, shape, kind, fan_in)
        self._consts = {}  # name -> numpy array, stored as given
        self._inputs, self._outputs = [], []
        self._scope = []
        self._counters = {}
        self._node_names = set()

    # ---- naming -------------------------------------------------------------------------
    @contextlib.contextmanager
    def scope(self, name):
        """Prefix every node emitted inside the block with ``name.``."""
        self._scope.append(str(name))
        try:
            yield
        finally:
            self._scope.pop()

    def _auto_name(self, op):
        key = (tuple(self._scope), op)
        self._counters[key] = self._counters.get(key, 0) + 1
        return f"{op}{self._counters[key]}"

    def _node_name(self, op, name):
        if name is None:
            name = self._auto_name(op)
        full = ".".join(self._scope + [str(name)])
        assert full not in self._node_names, f"duplicate node name {full!r}"
        self._node_names.add(full)
        return full

    def _emit(self, op_type, inputs, shape, name, short=None, **attrs):
        node = self._node_name(short or op_type.lower(), name)
        return self._emit_named(op_type, node, inputs, shape, **attrs)

    def _emit_named(self, op_type, node, inputs, shape, **attrs):
        assert all(d >= 1 for d in shape), f"{node}: non-positive shape {shape}"
        self.nodes.append(helper.make_node(op_type, inputs, [node], name=node, **attrs))
        self.shapes[node] = tuple(int(d) for d in shape)
        return node

    def _weight(self, node, suffix, shape, kind, fan_in=1):
        name = f"{node}.{suffix}"
        self._weights.append((name, tuple(shape), kind, fan_in))
        self.params += int(np.prod(shape))
        return name

    def _const(self, name, array):
        if name not in self._consts:
            self._consts[name] = np.asarray(array)
        return name

    # ---- graph ends ---------------------------------------------------------------------
    def input(self, shape, name="input"):
        self._inputs.append(name)
        self.shapes[name] = tuple(shape)
        return name

    def output(self, x):
        self._outputs.append(x)
        return x

    def shape(self, x):
        return self.shapes[x]

    # ---- convolution and linear ---------------------------------------------------------
    def conv(self, x, cout, k, stride=1, groups=1, pad=None, bias=True, name=None):
        n, cin, h, w = self.shapes[x]
        assert cin % groups == 0 and cout % groups == 0, (cin, cout, groups)
        pad = k // 2 if pad is None else pad
        ho, wo = _conv_out(h, k, stride, pad), _conv_out(w, k, stride, pad)
        node = self._node_name("conv", name)
        inputs = [x, self._weight(node, "weight", (cout, cin // groups, k, k), "he",
                                  cin // groups * k * k)]
        if bias:
            inputs.append(self._weight(node, "bias", (cout,), "bias"))
        self.macs += cout * ho * wo * (cin // groups) * k * k
        if groups == cin == cout and groups > 1:
            self.dw_macs += cout * ho * wo * k * k
        return self._emit_named("Conv", node, inputs, (n, cout, ho, wo), kernel_shape=[k, k],
                                strides=[stride, stride], pads=[pad] * 4, group=groups)

    def gemm(self, x, cout, name=None):
        """Fully connected layer on a (1, K) tensor: ``x @ W.T + b``."""
        n, cin = self.shapes[x]
        node = self._node_name("gemm", name)
        w = self._weight(node, "weight", (cout, cin), "he", cin)
        b = self._weight(node, "bias", (cout,), "bias")
        self.macs += cin * cout
        return self._emit_named("Gemm", node, [x, w, b], (n, cout), transB=1)

    fc = gemm

    def linear(self, x, cout, name=None):
        """``x @ W`` on a (..., K) tensor, as a transformer writes its projections (MatMul)."""
        *lead, cin = self.shapes[x]
        node = self._node_name("linear", name)
        w = self._weight(node, "weight", (cin, cout), "he", cin)
        self.macs += int(np.prod(lead)) * cin * cout
        return self._emit_named("MatMul", node, [x, w], (*lead, cout))

    def bias_add(self, x, name=None):
        """``x + b``, b a learned bias over the last axis: a projection's bias as transformers
        write it (MatMul, then Add)."""
        node = self._node_name("bias", name)
        b = self._weight(node, "value", (self.shapes[x][-1],), "bias")
        return self._emit_named("Add", node, [x, b], self.shapes[x])

    def matmul(self, a, b, name=None):
        """``a @ b`` of two activations (..., M, K) and (..., K, N), e.g. attention scores."""
        sa, sb = self.shapes[a], self.shapes[b]
        lead = np.broadcast_shapes(sa[:-2], sb[:-2])
        self.macs += int(np.prod(lead)) * sa[-2] * sa[-1] * sb[-1]
        return self._emit("MatMul", [a, b], (*lead, sa[-2], sb[-1]), name)

    def bn(self, x, name=None):
        c = self.shapes[x][1]
        node = self._node_name("bn", name)
        inputs = [x] + [self._weight(node, s, (c,), s)
                        for s in ("scale", "bias", "mean", "var")]
        return self._emit_named("BatchNormalization", node, inputs, self.shapes[x], epsilon=1e-5)

    # ---- activations and elementwise ----------------------------------------------------
    def relu(self, x, name=None):
        return self._emit("Relu", [x], self.shapes[x], name)

    def relu6(self, x, name=None):
        lo = self._const("const.zero", np.array(0.0, np.float32))
        hi = self._const("const.six", np.array(6.0, np.float32))
        return self._emit("Clip", [x, lo, hi], self.shapes[x], name, "relu6")

    def hardswish(self, x, name=None):
        return self._emit("HardSwish", [x], self.shapes[x], name)

    def hardsigmoid(self, x, name=None):
        # alpha 1/6, beta 1/2: relu6(x + 3) / 6 as in MobileNetV3 (the ONNX default is 0.2)
        return self._emit("HardSigmoid", [x], self.shapes[x], name, alpha=1.0 / 6, beta=0.5)

    def sigmoid(self, x, name=None):
        return self._emit("Sigmoid", [x], self.shapes[x], name)

    def swish(self, x, name=None):
        """x * sigmoid(x) as two nodes, ``<name>.sigmoid`` and ``<name>.mul``."""
        with self.scope(self._auto_name("swish") if name is None else name):
            return self.mul(x, self.sigmoid(x, "sigmoid"), "mul")

    # one-input ops no zoo family uses (the ops grid samples them: ``Sampler.ops``)
    def tanh(self, x, name=None):
        return self._emit("Tanh", [x], self.shapes[x], name)

    def leakyrelu(self, x, name=None):
        return self._emit("LeakyRelu", [x], self.shapes[x], name, alpha=0.1)

    def erf(self, x, name=None):
        return self._emit("Erf", [x], self.shapes[x], name)

    def sqrt(self, x, name=None):
        return self._emit("Sqrt", [x], self.shapes[x], name)

    def exp(self, x, name=None):
        return self._emit("Exp", [x], self.shapes[x], name)

    def clip(self, x, name=None):
        """Clip to [0, 1] (a Clip to [0, 6] is ``relu6``)."""
        lo = self._const("const.zero", np.array(0.0, np.float32))
        hi = self._const("const.one", np.array(1.0, np.float32))
        return self._emit("Clip", [x, lo, hi], self.shapes[x], name)

    def act(self, x, kind, name=None):
        """Apply the one-input op named ``kind`` (relu, relu6, hardswish, sigmoid, swish, or
        one of the ops above)."""
        return getattr(self, kind)(x, name=name)

    def _binary(self, op_type, a, b, name):
        return self._emit(op_type, [a, b], np.broadcast_shapes(self.shapes[a], self.shapes[b]),
                          name)

    def add(self, a, b, name=None):
        return self._binary("Add", a, b, name)

    def mul(self, a, b, name=None):
        return self._binary("Mul", a, b, name)

    def sub(self, a, b, name=None):
        return self._binary("Sub", a, b, name)

    def div(self, a, b, name=None):
        return self._binary("Div", a, b, name)

    def pow(self, a, b, name=None):
        return self._binary("Pow", a, b, name)

    def softmax(self, x, name=None):
        return self._emit("Softmax", [x], self.shapes[x], name, axis=-1)

    def layernorm(self, x, name=None):
        """LayerNormalization over the last axis, with a scale and a bias."""
        c = self.shapes[x][-1]
        node = self._node_name("layernorm", name)
        inputs = [x] + [self._weight(node, s, (c,), s) for s in ("scale", "bias")]
        return self._emit_named("LayerNormalization", node, inputs, self.shapes[x], axis=-1,
                                epsilon=1e-5)

    # ---- pooling ------------------------------------------------------------------------
    def _pool(self, op, short, x, k, stride, pad, ceil_mode, name, **extra):
        n, c, h, w = self.shapes[x]
        ho, wo = (_conv_out(s, k, stride, pad, ceil_mode) for s in (h, w))
        return self._emit(op, [x], (n, c, ho, wo), name, short, kernel_shape=[k, k],
                          strides=[stride, stride], pads=[pad] * 4, ceil_mode=int(ceil_mode),
                          **extra)

    def maxpool(self, x, k, stride, pad=0, ceil_mode=False, name=None):
        return self._pool("MaxPool", "maxpool", x, k, stride, pad, ceil_mode, name)

    def avgpool(self, x, k, stride, pad=0, ceil_mode=False, name=None):
        return self._pool("AveragePool", "avgpool", x, k, stride, pad, ceil_mode, name,
                          count_include_pad=0)

    def global_avgpool(self, x, name=None):
        n, c = self.shapes[x][:2]
        return self._emit("GlobalAveragePool", [x], (n, c, 1, 1), name, "gap")

    # ---- shape ops ----------------------------------------------------------------------
    def flatten(self, x, name=None):
        shp = self.shapes[x]
        return self._emit("Flatten", [x], (shp[0], int(np.prod(shp[1:]))), name, axis=1)

    def reshape(self, x, shape, name=None):
        node = self._node_name("reshape", name)
        target = self._const(f"{node}.shape", np.array(shape, np.int64))
        assert np.prod(shape) == np.prod(self.shapes[x]), (shape, self.shapes[x])
        return self._emit_named("Reshape", node, [x, target], shape)

    def transpose(self, x, perm, name=None):
        shp = self.shapes[x]
        return self._emit("Transpose", [x], tuple(shp[p] for p in perm), name, perm=list(perm))

    def concat(self, xs, name=None):
        shp = list(self.shapes[xs[0]])
        shp[1] = sum(self.shapes[x][1] for x in xs)
        return self._emit("Concat", list(xs), tuple(shp), name, axis=1)

    def split(self, x, sizes, name=None):
        """Split along channels; returns one tensor name per part (``<node>:0``, ...)."""
        node = self._node_name("split", name)
        sizes = [int(s) for s in sizes]
        assert sum(sizes) == self.shapes[x][1], (sizes, self.shapes[x])
        target = self._const(f"{node}.split", np.array(sizes, np.int64))
        outs = [f"{node}:{i}" for i in range(len(sizes))]
        self.nodes.append(helper.make_node("Split", [x, target], outs, name=node, axis=1))
        for out, s in zip(outs, sizes):
            self.shapes[out] = self.shapes[x][:1] + (s,) + self.shapes[x][2:]
        return outs

    def resize(self, x, scale, mode, name=None):
        """Resize H and W by the integer ``scale`` (``mode``: nearest or linear)."""
        node = self._node_name("resize", name)
        scales = self._const(f"{node}.scales", np.array([1, 1, scale, scale], np.float32))
        n, c, h, w = self.shapes[x]
        return self._emit_named("Resize", node, [x, "", scales], (n, c, h * scale, w * scale),
                                mode=mode)

    def gather(self, x, count, name=None):
        """The first ``count`` channels in reverse order (Gather with constant indices)."""
        node = self._node_name("gather", name)
        index = self._const(f"{node}.index", np.arange(count - 1, -1, -1, dtype=np.int64))
        n, c, h, w = self.shapes[x]
        return self._emit_named("Gather", node, [x, index], (n, count, h, w), axis=1)

    def slice(self, x, start, end, name=None):
        """Channels ``start`` to ``end`` (Slice)."""
        node = self._node_name("slice", name)
        consts = [self._const(f"{node}.{k}", np.array([v], np.int64))
                  for k, v in (("starts", start), ("ends", end), ("axes", 1))]
        n, c, h, w = self.shapes[x]
        return self._emit_named("Slice", node, [x] + consts, (n, end - start, h, w))

    def pad(self, x, pads, name=None):
        """Zero-pad H and W by ``pads = (top, left, bottom, right)``."""
        node = self._node_name("pad", name)
        t, l, btm, r = pads
        target = self._const(f"{node}.pads", np.array([0, 0, t, l, 0, 0, btm, r], np.int64))
        n, c, h, w = self.shapes[x]
        return self._emit_named("Pad", node, [x, target], (n, c, h + t + btm, w + l + r),
                                mode="constant")

    # ---- composites ---------------------------------------------------------------------
    def conv_bn_act(self, x, cout, k, stride=1, groups=1, act="relu", bn=True, tag="",
                    bias=None):
        """conv<tag> [-> bn<tag>] [-> <act><tag>]; the conv has a bias only without BN."""
        x = self.conv(x, cout, k, stride, groups, bias=(not bn) if bias is None else bias,
                      name=f"conv{tag}")
        if bn:
            x = self.bn(x, name=f"bn{tag}")
        if act:
            sep = "_" if act[-1].isdigit() and tag else ""  # relu6_1, not relu61
            x = self.act(x, act, name=f"{act}{sep}{tag}")
        return x

    # ---- finish -------------------------------------------------------------------------
    @property
    def param_bytes(self):
        return 4 * self.params

    def _draw(self, rng, shape, kind, fan_in):
        if kind == "he":
            return rng.standard_normal(shape, dtype=np.float32) * np.float32(
                math.sqrt(2.0 / fan_in))
        if kind in ("scale", "var"):
            return rng.uniform(0.5, 1.5, shape).astype(np.float32)
        return (0.1 * rng.standard_normal(shape)).astype(np.float32)  # bias, mean

    def model(self, rng):
        """The finished ``ModelProto``, weights drawn from ``rng`` in declaration order."""
        inits = [numpy_helper.from_array(self._draw(rng, s, k, f), n)
                 for n, s, k, f in self._weights]
        inits += [numpy_helper.from_array(a, n) for n, a in self._consts.items()]

        def info(t):
            return helper.make_tensor_value_info(t, TensorProto.FLOAT, list(self.shapes[t]))

        io = set(self._inputs) | set(self._outputs)
        inner = [o for nd in self.nodes for o in nd.output if o not in io]
        graph = helper.make_graph(self.nodes, self.name, [info(t) for t in self._inputs],
                                  [info(t) for t in self._outputs], inits,
                                  value_info=[info(t) for t in inner])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                 producer_name="nnmeter_tvm.zoo", ir_version=IR_VERSION)
