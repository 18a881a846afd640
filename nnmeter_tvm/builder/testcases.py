"""Test cases for fusion-rule detection: tiny ONNX models of one op, a pair, a chain, a fork...

The ops are written as the zoo writes them: a :class:`Template` keeps an op's shape-free
configuration (kernel, stride, padding, grouping, axis, broadcast...) read from a zoo node, and
:func:`build_case` writes a small DAG of templates at a test :class:`CaseShape` (channels and
spatial size), so one pattern can be measured at several shapes.

Every graph input may pass through a *prefix* op first (``maxpool1``: a 1x1 MaxPool).  On
onnxruntime it puts the tensor into the blocked NCHWc layout exactly when the channels are
aligned, as a conv output would be in a real model; the prefixes alone are the trivial model
(:func:`trivial_case`) whose time is subtracted from every case.

:func:`collect_patterns` lists what a set of graphs contains: each op's most common template,
every ordered pair ``op1 -> op2``, every fork and diamond (one tensor, two readers), every
binary/concat op with two producers, every three-op chain.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

# ops whose output shape equals their (first) input shape
_UNARY = ("bn", "relu", "relu6", "clip", "sigmoid", "hardsigmoid", "hardswish", "tanh",
          "leakyrelu", "gelu", "erf", "sqrt", "exp", "identity")
_BINARY = ("add", "sub", "mul", "div")
_ONNX_UNARY = {"relu": "Relu", "sigmoid": "Sigmoid", "hardsigmoid": "HardSigmoid",
               "hardswish": "HardSwish", "tanh": "Tanh", "leakyrelu": "LeakyRelu", "gelu": "Gelu",
               "erf": "Erf", "sqrt": "Sqrt", "exp": "Exp", "identity": "Identity"}
_ONNX_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div"}
_TEMPLATE_KEYS = ("kernel_shape", "strides", "pads", "dilations", "ceil_mode", "axis", "perm",
                  "min", "max", "alpha", "beta", "mode", "count_include_pad", "tiny")


@dataclass(frozen=True)
class CaseShape:
    """Channels and square spatial size of a test case's main input (1, c, hw, hw).

    ``launch``: a launch probe, a shape so small that an op's own work is below its launch
    cost; its test models are timed as whole runs, net of a model with no kernel, so the
    criterion counts kernel launches (see :mod:`.rules_cases`)."""

    c: int
    hw: int
    plain_other: bool = False   # the second operand of a binary op skips the layout prefix
    launch: bool = False

    @property
    def label(self) -> str:
        return (f"c{self.c}hw{self.hw}" + ("-plainother" if self.plain_other else "")
                + ("-launch" if self.launch else ""))

    def to_dict(self) -> dict:
        d = {"c": self.c, "h": self.hw, "w": self.hw}
        if self.plain_other:
            d["other_operand"] = "no prefix"
        if self.launch:
            d["probe"] = "launch: whole runs, net of a model with no kernel"
        return d


@dataclass(frozen=True)
class Template:
    """An op as a model uses it, without its tensor sizes: ``op`` plus sorted ``params``."""

    op: str
    params: tuple = ()

    def get(self, key, default=None):
        return dict(self.params).get(key, default)

    @property
    def label(self) -> str:
        return self.op


def template_of(node) -> Template:
    """The shape-free template of a Graph node (see module docstring)."""
    a = dict(node.attrs)
    p = {k: a[k] for k in _TEMPLATE_KEYS if k in a}
    p["rank_in"] = len(node.input_shape) if node.input_shapes else 4
    p["rank_out"] = len(node.output_shape)
    if len(node.input_shape) == 4 and node.input_shape[2:] == (1, 1):
        p["hw1"] = True     # reads a (N, C, 1, 1) tensor: a squeeze-excite or classifier op
    if node.op in ("conv", "dwconv", "gconv"):
        p["group_kind"] = node.op
        p["groups"] = a.get("group", 1)
        p.pop("pads", None)
        k = tuple(a.get("kernel_shape", (3, 3)))
        d = tuple(a.get("dilations", (1, 1)))
        p["pads"] = tuple(d[i] * (k[i] - 1) // 2 for i in range(2)) * 2
    if node.op in _BINARY:
        shapes = list(node.input_shapes)
        p["const_operand"] = bool(a.get("const_inputs"))
        if a.get("const_inputs"):    # a bias (D,) or a scale (): what the operand looks like
            p["const_rank"] = len(next(iter(a["const_inputs"].values())))
        if len(shapes) == 2 and shapes[0] != shapes[1]:
            p["broadcast"] = True
    if node.op == "split":
        p["split_parts"] = len(node.outputs)
        p.pop("split", None)
    if node.op == "reshape":
        p["source"] = node.source_op        # Flatten / Reshape / Squeeze / Unsqueeze
    frozen = tuple(sorted((k, _freeze(v)) for k, v in p.items()))
    return Template(node.op, frozen)


def default_template(op: str) -> Template:
    """A template for an op the zoo does not contain (curated test patterns)."""
    p = {"rank_in": 4, "rank_out": 4}
    if op in ("conv", "dwconv", "gconv"):
        p.update(kernel_shape=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1),
                 group_kind=op, groups={"conv": 1, "gconv": 2}.get(op, 0))
    elif op in ("maxpool", "avgpool"):
        p.update(kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1), ceil_mode=0)
    elif op in ("gemm",):
        p.update(rank_in=2, rank_out=2)
    elif op == "matmul":
        p.update(rank_in=3, rank_out=3)
    elif op == "softmax":
        p.update(axis=-1, rank_in=3, rank_out=3)
    elif op == "transpose":
        p.update(perm=(0, 2, 1), rank_in=3, rank_out=3)
    elif op in ("split", "slice"):
        p.update(axis=1, split_parts=2)
    elif op == "relu6":
        p.update(min=0.0, max=6.0)
    elif op == "clip":
        p.update(min=-1.0, max=1.0)
    elif op == "hardsigmoid":
        p.update(alpha=1 / 6, beta=0.5)
    elif op == "concat":
        p.update(axis=1)
    elif op == "pad":
        p.update(mode="constant")
    return Template(op, tuple(sorted((k, _freeze(v)) for k, v in p.items())))


def _freeze(v):
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), _freeze(x)) for k, x in v.items()))
    if hasattr(v, "item"):
        return v.item()
    return v


# ---- what a set of graphs contains ----------------------------------------------------------

@dataclass
class Patterns:
    """Patterns found in graphs, each with the templates of its first occurrence and a count."""

    templates: dict = field(default_factory=dict)        # op -> most common Template
    variants: dict = field(default_factory=dict)         # op -> every Template seen
    pairs: dict = field(default_factory=dict)            # (op1, op2) -> (t1, t2)
    chains: dict = field(default_factory=dict)           # (op1, op2, op3) -> (t1, t2, t3)
    multi_output: dict = field(default_factory=dict)     # (op1, op2, op3, topology) -> templates
    multi_input: dict = field(default_factory=dict)      # (op1, op2, op3) -> templates
    counts: Counter = field(default_factory=Counter)
    _seen: dict = field(default_factory=dict, repr=False)

    def add(self, kind: str, key: tuple, templates: tuple):
        """Count one occurrence; each pattern keeps its most common templates."""
        table = getattr(self, kind)
        self.counts[(kind,) + key] += 1
        seen = self._seen.setdefault((kind,) + key, Counter())
        seen[templates] += 1
        table[key] = seen.most_common(1)[0][0]


def collect_patterns(graphs) -> Patterns:
    """Every pattern of the graphs (see module docstring), with the zoo's templates."""
    pats = Patterns()
    tcount: dict[str, Counter] = {}
    for g in graphs:
        tmpl = {n.name: template_of(n) for n in g}
        for n in g:
            tcount.setdefault(n.op, Counter())[tmpl[n.name]] += 1
            succ = g.successors(n.name)
            for s in succ:
                sn = g.node(s)
                if not _supported_edge(n, sn):
                    continue
                pats.add("pairs", (n.op, sn.op), (tmpl[n.name], tmpl[s]))
                if len(succ) == 1:
                    for s2 in g.successors(s):
                        s2n = g.node(s2)
                        if _supported_edge(sn, s2n):
                            pats.add("chains", (n.op, sn.op, s2n.op),
                                     (tmpl[n.name], tmpl[s], tmpl[s2]))
            if len(succ) == 2:
                b, c = (g.node(s) for s in succ)
                for x, y in ((b, c), (c, b)):
                    if g.predecessors(x.name) == [n.name] and g.successors(x.name) == [y.name] \
                            and n.name in g.predecessors(y.name):
                        pats.add("multi_output", (n.op, x.op, y.op, "diamond"),
                                 (tmpl[n.name], tmpl[x.name], tmpl[y.name]))
                        break
                else:
                    pats.add("multi_output", (n.op, b.op, c.op, "fork"),
                             (tmpl[n.name], tmpl[b.name], tmpl[c.name]))
            preds = g.predecessors(n.name)
            if len(preds) == 2 and n.op in _BINARY + ("concat",):
                a, b = (g.node(p) for p in preds)
                pats.add("multi_input", (a.op, b.op, n.op), (tmpl[a.name], tmpl[b.name], tmpl[n.name]))
    pats.templates = {op: c.most_common(1)[0][0] for op, c in tcount.items()}
    pats.variants = {op: [t for t, _ in c.most_common()] for op, c in tcount.items()}
    return pats


def _supported_edge(a, b) -> bool:
    return a.op in EMITTERS and b.op in EMITTERS


# ---- writing test models ----------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One op of a test case: ``role`` names its output; ``inputs`` are roles, ``"in"`` (the
    main input), ``"in2"`` (a second input of the main input's shape) or ``"other"`` (a fresh
    input of the shape the op needs)."""

    role: str
    template: Template
    inputs: tuple = ("in",)


class _Writer:
    def __init__(self, shape: CaseShape, prefix: str | None, seed: int):
        self.shape, self.prefix = shape, prefix
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.inputs = [], [], []
        self.shapes: dict[str, tuple] = {}
        self.n = 0

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, array, base="w") -> str:
        from onnx import numpy_helper

        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, *shape) -> str:
        return self.const((self.rng.standard_normal(shape) * 0.1).astype(np.float32))

    def node(self, op_type, inputs, n_out=1, out_shape=None, name=None, **attrs) -> list[str]:
        from onnx import helper

        name = name or self.name(op_type.lower())
        outs = [name if i == 0 else f"{name}:{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=name, **attrs))
        for o in outs:
            self.shapes[o] = out_shape
        return outs

    def graph_input(self, shape: tuple, prefix: bool = True) -> str:
        from onnx import TensorProto, helper

        name = f"x{len(self.inputs)}"
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        self.shapes[name] = tuple(shape)
        if not prefix:
            return name
        if self.prefix == "maxpool1" and len(shape) == 4:
            return self.node("MaxPool", [name], out_shape=tuple(shape), name=f"prefix{len(self.inputs)}",
                             kernel_shape=[1, 1])[0]
        if self.prefix is not None and self.prefix != "maxpool1":
            raise ValueError(f"unknown prefix {self.prefix!r}; valid: maxpool1, None")
        return name


def main_input_shape(t: Template, shape: CaseShape) -> tuple:
    """The input shape a case starting with template ``t`` reads at ``shape``."""
    rank = t.get("rank_in", 4)
    c, hw = shape.c, shape.hw
    if rank == 3:
        return (1, hw * hw, c)      # (batch, tokens, width): a transformer's activations
    if t.op == "gemm" or rank == 2:
        return (1, c * hw)
    if rank == 5:
        return (1, 2, c // 2, hw, hw)
    if t.get("hw1"):
        return (1, c * 16, 1, 1)
    return (1, c, hw, hw)


def build_case(steps, shape: CaseShape, *, prefix: str | None = None, suffix: str | None = None,
               seed: int = 0, outputs: tuple | None = None, name: str = "case",
               roles: dict | None = None, in_shape: tuple | None = None,
               shapes: dict | None = None):
    """An ONNX model of ``steps`` at ``shape``; the outputs are the roles nobody reads (or
    ``outputs``).  ``suffix="slice1"`` reads each output with a one-element Slice, so that no
    op of the pattern writes a graph output (onnxruntime fuses no node whose output the graph
    returns).  With no steps: the prefix (and suffix) alone, the trivial model.  ``in_shape``
    overrides the main input's shape (an op measured alone at the shape it reads inside a
    pattern).  ``roles`` / ``shapes``, if given, receive role -> node name / output shape."""
    from onnx import TensorProto, helper

    w = _Writer(shape, prefix, seed)
    first = steps[0].template if steps else Template("identity", (("rank_in", 4),))
    env = {"in": w.graph_input(tuple(in_shape) if in_shape else main_input_shape(first, shape))}
    for step in steps:
        ins = []
        for ref in step.inputs:
            if ref == "in2" and "in2" not in env:
                env["in2"] = w.graph_input(w.shapes[env["in"]] if in_shape else
                                           main_input_shape(step.template, shape))
            if ref in ("in", "in2"):
                ins.append(env[ref])
            elif ref == "other":
                ins.append("other")
            else:
                ins.append(env[ref])
        env[step.role] = _emit(w, step.template, ins)
        if roles is not None:
            roles[step.role] = w.nodes[-1].name
        if shapes is not None:
            shapes[step.role] = w.shapes[env[step.role]]
    read = {r for s in steps for r in s.inputs}
    outs = outputs or tuple(s.role for s in steps if s.role not in read) or ("in",)
    out_tensors = []
    for role in outs:
        out_tensors.append(env[role])
    # split outputs nobody reads are outputs too
    used = {i for n in w.nodes for i in n.input}
    for n in w.nodes:
        for o in n.output[1:]:
            if o not in used and o not in out_tensors:
                out_tensors.append(o)
    if suffix == "slice1":
        tiny = Template("slice", (("tiny", True),))
        out_tensors = [_slice(w, tiny, [t], w.shapes[t]) for t in out_tensors]
    elif suffix is not None:
        raise ValueError(f"unknown suffix {suffix!r}; valid: slice1, None")
    graph = helper.make_graph(
        w.nodes, name, w.inputs,
        [helper.make_tensor_value_info(t, TensorProto.FLOAT, list(w.shapes[t])) for t in out_tensors],
        w.inits)
    opset = _opset(w.nodes)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset == 17 else 9
    return model


def _opset(nodes) -> int:
    """17, as the zoo writes; 20 when the case has a Gelu (an op since opset 20)."""
    return 20 if any(n.op_type == "Gelu" for n in nodes) else 17


def trivial_case(model, name: str = "T0", per_output: bool = False):
    """The trivial model of test case ``model``: its inputs, their layout prefixes, and a
    one-element Slice of each tensor the pattern reads: what every run of the case pays that is
    no op of the pattern (a binary op's second operand has a prefix of its own).  (A same-size
    Identity would not do: writing an output of the input's size costs a pass over memory, as
    much as a Relu.)  ``per_output``: one Slice per output of the case instead (of its first
    input), so that the trivial model launches as many kernels as the case's prefixes and
    suffixes: a launch probe's T0 on a backend that needs the suffix."""
    from onnx import TensorProto, helper

    g = model.graph
    prefixes = {n.input[0]: n for n in g.node if n.name.startswith("prefix")}
    w = _Writer(CaseShape(1, 1), None, 0)
    w.nodes = list(prefixes.values())
    tiny = Template("slice", (("tiny", True),))
    reads = []
    for v in g.input:
        shape = tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
        reads.append((prefixes[v.name].output[0] if v.name in prefixes else v.name, shape))
    if per_output:
        reads = reads[:1] * len(g.output)
    outs = [_slice(w, tiny, [read], shape) for read, shape in reads]
    graph = helper.make_graph(
        w.nodes, name, list(g.input),
        [helper.make_tensor_value_info(t, TensorProto.FLOAT, list(w.shapes[t])) for t in outs],
        w.inits)
    trivial = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    trivial.ir_version = 8
    return trivial


def empty_case(model, name: str = "T0-empty"):
    """A model with the inputs of test case ``model`` and no kernel: each input goes to an
    output through an Identity (which a compiler removes).  What a whole run pays that is no
    kernel launch: the launch probe's T0."""
    from onnx import helper

    g = model.graph
    outs = [helper.make_tensor_value_info(f"{v.name}_out", v.type.tensor_type.elem_type,
                                          [d.dim_value for d in v.type.tensor_type.shape.dim])
            for v in g.input]
    nodes = [helper.make_node("Identity", [v.name], [o.name], name=f"id_{v.name}")
             for v, o in zip(g.input, outs)]
    empty = helper.make_model(helper.make_graph(nodes, name, list(g.input), outs),
                              opset_imports=[helper.make_opsetid("", 17)])
    empty.ir_version = 8
    return empty


def _other(w: _Writer, shape: tuple) -> str:
    return w.graph_input(shape, prefix=not w.shape.plain_other)


def _emit(w: _Writer, t: Template, ins: list) -> str:
    """Write template ``t`` reading ``ins`` ("other" = a fresh input); returns its output."""
    shapes = [w.shapes.get(i) for i in ins if i != "other"]
    s = shapes[0] if shapes else None
    return EMITTERS[t.op](w, t, ins, s)


def _conv(w, t, ins, s):
    c, h, wd = s[1], s[2], s[3]
    kind = t.get("group_kind", t.op)
    k = t.get("kernel_shape", (3, 3))
    st = t.get("strides", (1, 1))
    d = t.get("dilations", (1, 1))
    pads = t.get("pads", (1, 1, 1, 1))
    if kind == "dwconv":
        groups = c
    elif kind == "gconv":
        groups = t.get("groups", 2)
        groups = groups if groups > 1 and c % groups == 0 else 2
    else:
        groups = 1
    cout = c
    oh = (h + pads[0] + pads[2] - d[0] * (k[0] - 1) - 1) // st[0] + 1
    ow = (wd + pads[1] + pads[3] - d[1] * (k[1] - 1) - 1) // st[1] + 1
    return w.node("Conv", [ins[0], w.weight(cout, c // groups, *k), w.weight(cout)],
                  out_shape=(1, cout, oh, ow), kernel_shape=list(k), strides=list(st),
                  pads=list(pads), dilations=list(d), group=groups)[0]


def _bn(w, t, ins, s):
    c = s[1]
    var = w.const((np.abs(w.rng.standard_normal(c)) + 0.5).astype(np.float32))
    return w.node("BatchNormalization",
                  [ins[0], w.weight(c), w.weight(c), w.weight(c), var], out_shape=s)[0]


def _unary(w, t, ins, s):
    attrs = {}
    if t.op == "hardsigmoid":
        attrs = {"alpha": float(t.get("alpha", 0.2)), "beta": float(t.get("beta", 0.5))}
    return w.node(_ONNX_UNARY[t.op], [ins[0]], out_shape=s, **attrs)[0]


def _clip(w, t, ins, s):
    lo, hi = (0.0, 6.0) if t.op == "relu6" else (float(t.get("min", -1.0)), float(t.get("max", 1.0)))
    return w.node("Clip", [ins[0], w.const(np.float32(lo)), w.const(np.float32(hi))],
                  out_shape=s)[0]


def _binary(w, t, ins, s):
    """``a op other``: same shape, or the squeeze-excite broadcast (N,C,H,W) x (N,C,1,1)."""
    a = ins[0]
    if len(ins) > 1 and ins[1] != "other":
        b = ins[1]
        sb = w.shapes[b]
        out = tuple(max(x, y) for x, y in zip(s, sb))
    elif t.get("const_operand"):
        b = w.weight(*_const_shape(t, s))
        out = s
    elif t.get("broadcast") and len(s) == 4:
        if s[2] == 1 and s[3] == 1:       # the small operand comes in: the big one is other
            big = (1, s[1], w.shape.hw, w.shape.hw)
            b, out = _other(w, big), big
            a, b = b, a                    # zoo order: x * s
        else:
            b, out = _other(w, (1, s[1], 1, 1)), s
    else:
        b, out = _other(w, s), s
    return w.node(_ONNX_BINARY[t.op], [a, b], out_shape=out)[0]


def _const_shape(t, s) -> tuple:
    """A binary op's constant operand: a scalar (a scale), a bias over the last axis of a
    token tensor, else per channel (N, C, 1, 1) or, in a template without its rank, full."""
    rank = t.get("const_rank")
    if rank == 0:
        return ()
    if len(s) == 4:
        return (1, s[1], 1, 1)
    if rank == 1:
        return (s[-1],)
    return s


def _layernorm(w, t, ins, s):
    return w.node("LayerNormalization", [ins[0], w.weight(s[-1]), w.weight(s[-1])],
                  out_shape=s, axis=-1)[0]


def _pool(w, t, ins, s):
    k = t.get("kernel_shape", (3, 3))
    st = t.get("strides", (2, 2))
    pads = t.get("pads", (1, 1, 1, 1))
    ceil = int(t.get("ceil_mode", 0) or 0)

    def out(n, i):
        v = (n + pads[i] + pads[i + 2] - k[i]) / st[i] + 1
        return int(np.ceil(v)) if ceil else int(np.floor(v))
    attrs = dict(kernel_shape=list(k), strides=list(st), pads=list(pads), ceil_mode=ceil)
    if t.op == "avgpool":
        attrs["count_include_pad"] = int(t.get("count_include_pad", 0) or 0)
    op = "MaxPool" if t.op == "maxpool" else "AveragePool"
    return w.node(op, [ins[0]], out_shape=(1, s[1], out(s[2], 0), out(s[3], 1)), **attrs)[0]


def _gpool(w, t, ins, s):
    op = "GlobalAveragePool" if t.op == "globalavgpool" else "GlobalMaxPool"
    return w.node(op, [ins[0]], out_shape=(1, s[1], 1, 1))[0]


def _concat(w, t, ins, s):
    others = [i for i in ins[1:] if i != "other"]
    if not others:
        others = [_other(w, s)]
    parts = [ins[0]] + others
    c = sum(w.shapes[p][1] for p in parts)
    return w.node("Concat", parts, out_shape=(s[0], c) + tuple(s[2:]), axis=1)[0]


def _reshape(w, t, ins, s):
    rank_out = t.get("rank_out", 2)
    if t.get("source") == "Flatten" and len(s) >= 2:
        out = (s[0], int(np.prod(s[1:])))
        return w.node("Flatten", [ins[0]], out_shape=out, axis=1)[0]
    if rank_out == 2 or len(s) == 2:
        out = (1, int(np.prod(s[1:])))
    elif rank_out == 5 and len(s) == 4:
        out = (1, 2, s[1] // 2, s[2], s[3])
    elif len(s) == 5:
        out = (1, s[1] * s[2], s[3], s[4])
    elif rank_out == 4 and len(s) == 3:      # tokens split into two heads
        out = (1, s[1], 2, s[2] // 2)
    elif rank_out == 3 and len(s) == 4:      # heads merged back
        out = (1, s[1], s[2] * s[3])
    else:
        out = s
    return w.node("Reshape", [ins[0], w.const(np.array(out, dtype=np.int64), "shape")],
                  out_shape=out)[0]


def _transpose(w, t, ins, s):
    if len(s) == 5:
        perm = (0, 2, 1, 3, 4)
    elif len(s) == 4:
        perm = tuple(t.get("perm", (0, 1, 3, 2)))
        perm = perm if len(perm) == 4 else (0, 1, 3, 2)
    else:
        perm = tuple(range(len(s) - 2)) + (len(s) - 1, len(s) - 2)
    return w.node("Transpose", [ins[0]], out_shape=tuple(s[p] for p in perm), perm=list(perm))[0]


def _split(w, t, ins, s):
    half = s[1] // 2
    out = (s[0], half) + tuple(s[2:])
    outs = w.node("Split", [ins[0], w.const(np.array([half, s[1] - half], dtype=np.int64), "split")],
                  n_out=2, out_shape=out, axis=1)
    w.shapes[outs[1]] = (s[0], s[1] - half) + tuple(s[2:])
    return outs[0]


def _slice(w, t, ins, s):
    if t.get("tiny"):      # one element: the trivial model of the rule tester
        n = len(s)
        return w.node("Slice", [ins[0], w.const(np.zeros(n, np.int64)), w.const(np.ones(n, np.int64)),
                                w.const(np.arange(n, dtype=np.int64))], out_shape=(1,) * n)[0]
    half = s[1] // 2
    return w.node("Slice", [ins[0], w.const(np.array([0], np.int64)), w.const(np.array([half], np.int64)),
                            w.const(np.array([1], np.int64))],
                  out_shape=(s[0], half) + tuple(s[2:]))[0]


def _pad(w, t, ins, s):
    pads = [0, 0, 1, 1, 0, 0, 1, 1] if len(s) == 4 else [0] * (2 * len(s))
    out = tuple(d + pads[i] + pads[i + len(s)] for i, d in enumerate(s))
    return w.node("Pad", [ins[0], w.const(np.array(pads, np.int64), "pads")], out_shape=out,
                  mode=str(t.get("mode", "constant") or "constant"))[0]


def _gemm(w, t, ins, s):
    if len(s) == 3:      # a token tensor times a weight: MatMul, as transformers write it
        n = s[-1]
        return w.node("MatMul", [ins[0], w.weight(s[-1], n)], out_shape=s[:-1] + (n,))[0]
    if len(s) != 2:
        s2 = (1, int(np.prod(s[1:])))
        x = w.node("Flatten", [ins[0]], out_shape=s2, axis=1)[0]
        s = s2
    else:
        x = ins[0]
    k = s[1]
    n = min(k, 1024)
    return w.node("Gemm", [x, w.weight(n, k), w.weight(n)], out_shape=(1, n), transB=1)[0]


def _matmul(w, t, ins, s):
    if len(ins) > 1 and ins[1] != "other":
        b = ins[1]
    else:
        b = _other(w, tuple(s[:-2]) + (s[-1], s[-2]))
    sb = w.shapes[b]
    return w.node("MatMul", [ins[0], b], out_shape=tuple(s[:-1]) + (sb[-1],))[0]


def _softmax(w, t, ins, s):
    axis = int(t.get("axis", -1))
    return w.node("Softmax", [ins[0]], out_shape=s, axis=axis)[0]


EMITTERS = {
    "conv": _conv, "dwconv": _conv, "gconv": _conv, "bn": _bn,
    **{op: _unary for op in _ONNX_UNARY}, "relu6": _clip, "clip": _clip,
    **{op: _binary for op in _ONNX_BINARY},
    "maxpool": _pool, "avgpool": _pool, "globalavgpool": _gpool, "globalmaxpool": _gpool,
    "concat": _concat, "reshape": _reshape, "transpose": _transpose, "split": _split,
    "slice": _slice, "pad": _pad, "gemm": _gemm, "matmul": _matmul, "softmax": _softmax,
    "layernorm": _layernorm,
}
