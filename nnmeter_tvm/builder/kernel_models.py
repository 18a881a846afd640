"""Tiny ONNX models that contain one kernel configuration, to measure it as the backend runs it.

A *spec* is a JSON-ready dict that names a kernel's shape and its member ops, e.g.

    {"kind": "conv", "cin": 32, "cout": 64, "h": 56, "w": 56, "k": 3, "s": 1, "groups": 1,
     "pad": 1, "bias": False, "epi": ["bn", "relu"]}

A ``gemm`` is an fc layer on one row, or with ``m`` > 1 rows a projection (MatMul of a
(1, m, cin) activation with a weight, as transformers write it); a ``matmul`` multiplies two
activations, ``b`` batches of (m x k) @ (k x n) (attention); a ``softmax`` is a Softmax or a
LayerNormalization (``op``) over the last axis of a (1, rows, len) tensor.

``spec_from_kernel`` reads one from a kernel of a real model (the sampling prior);
``build_model`` writes a model holding one or several specs side by side, each in its own scope
``k<i>`` with its own input and output, so one session measures several kernels and the
backend's per-kernel profile tells them apart.  The ops are written exactly as the zoo writes
them (conv -> bn -> relu ...), so the backend fuses them as it does in a real model; the builder
checks that with the partition before it trusts a sample.
"""
from __future__ import annotations

import json

import numpy as np

# epilogue ops that the builder can write after an anchor (in the zoo's spelling)
_ACTS = ("relu", "relu6", "hardswish", "hardsigmoid", "sigmoid")
EPILOGUE = ("bn", "add", "swish") + _ACTS
CHANNEL_FIELDS = {"conv": ("cin", "cout"), "gemm": ("cin", "cout"), "pool": ("c",),
                  "gpool": ("c",), "unary": ("c",), "binary": ("c",), "concat": ("cs",),
                  "split": ("sizes",), "pad": ("c",), "softmax": ("len",), "shuffle": ("c",),
                  "matmul": ("k", "n"), "resize": ("c",), "gather": (), "slice": ()}


def spec_key(spec: dict) -> str:
    """A canonical string for deduplication."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


# ---- reading a spec from a kernel of a real model -----------------------------------------------
def _epilogue(ops) -> list[str] | None:
    out, i = [], 0
    while i < len(ops):
        op = ops[i]
        if op == "sigmoid" and i + 1 < len(ops) and ops[i + 1] == "mul":
            out.append("swish")
            i += 2
            continue
        if op in ("bn", "add") + _ACTS:
            out.append(op)
        elif op == "clip":
            out.append("relu6")
        else:
            return None
        i += 1
    return out


def _projection_spec(nodes, ishape) -> dict | None:
    """A MatMul + bias Add (+ Reshape into heads) kernel as a projection spec, or None."""
    m, cout = int(ishape[1]), int(nodes[0].output_shape[-1])
    bias = nodes[1].attrs.get("const_inputs") or {}
    if list(bias.values()) != [(cout,)]:
        return None
    heads = 0
    if len(nodes) == 3:
        out = tuple(nodes[2].output_shape)
        if len(out) != 4 or out[:2] != (1, m) or out[2] * out[3] != cout:
            return None
        heads = int(out[2])
    return {"kind": "gemm", "cin": int(ishape[2]), "cout": cout, "m": m, "epi": [],
            "bias": True, "heads": heads}


def spec_from_kernel(kernel, graph) -> dict | None:
    """The spec of a kernel in ``graph``, or None when its shape is outside what we can write."""
    if kernel.inserted or not kernel.nodes:
        return None
    nodes = [graph.node(n) for n in kernel.nodes]
    anchor = graph.node(kernel.anchor) if kernel.anchor in kernel.nodes else nodes[0]
    if nodes[0] is not anchor:
        return None
    ops = [n.op for n in nodes]
    a, rest = anchor.attrs, ops[1:]
    ishape = anchor.input_shape
    if anchor.op in ("conv", "dwconv", "gconv") and len(ishape) == 4:
        epi = _epilogue(rest)
        k, s, pads = a.get("kernel_shape"), a.get("strides"), a.get("pads")
        if epi is None or not k or k[0] != k[1] or s[0] != s[1] or len(set(pads)) != 1 \
                or tuple(a.get("dilations", (1, 1))) != (1, 1):
            return None
        return {"kind": "conv", "cin": int(ishape[1]), "cout": int(anchor.output_shape[1]),
                "h": int(ishape[2]), "w": int(ishape[3]), "k": int(k[0]), "s": int(s[0]),
                "groups": int(a.get("group", 1)), "pad": int(pads[0]),
                "bias": bool(a.get("has_bias", False)), "epi": epi}
    if anchor.op == "gemm" and len(ishape) == 2 and ishape[0] == 1:
        epi = _epilogue(rest)
        if epi is None or "bn" in epi or "add" in epi:
            return None
        return {"kind": "gemm", "cin": int(ishape[1]), "cout": int(anchor.output_shape[1]),
                "epi": epi}
    if anchor.op == "gemm" and len(ishape) == 3 and ishape[0] == 1 and not rest:
        return {"kind": "gemm", "cin": int(ishape[2]), "cout": int(anchor.output_shape[-1]),
                "m": int(ishape[1]), "epi": []}
    if anchor.op == "gemm" and len(ishape) == 3 and ishape[0] == 1 and \
            rest in (["add"], ["add", "reshape"]):
        return _projection_spec(nodes, ishape)
    if anchor.op == "matmul" and not rest and len(ishape) == 4 and ishape[0] == 1 \
            and tuple(anchor.input_shapes[1][:2]) == tuple(ishape[:2]):
        return {"kind": "matmul", "b": int(ishape[1]), "m": int(ishape[2]), "k": int(ishape[3]),
                "n": int(anchor.output_shape[-1])}
    if anchor.op in ("softmax", "layernorm") and not rest and len(ishape) == 3 \
            and ishape[0] == 1 and a.get("axis", -1) in (-1, 2):
        return {"kind": "softmax", "op": anchor.op, "rows": int(ishape[1]), "len": int(ishape[2])}
    if anchor.op == "add" and rest == ["layernorm"] and len(ishape) == 3 and ishape[0] == 1 \
            and not a.get("const_inputs") and list(anchor.input_shapes) == [ishape, ishape] \
            and nodes[1].attrs.get("axis", -1) in (-1, 2):
        return {"kind": "softmax", "op": "layernorm", "skip": True, "rows": int(ishape[1]),
                "len": int(ishape[2])}
    if len(ishape) != 4:
        return None
    n, c, h, w = (int(d) for d in ishape)
    if anchor.op in ("maxpool", "avgpool") and not rest:
        k, s, pads = a.get("kernel_shape"), a.get("strides"), a.get("pads")
        if not k or k[0] != k[1] or s[0] != s[1] or len(set(pads)) != 1:
            return None
        return {"kind": "pool", "op": anchor.op, "c": c, "h": h, "w": w, "k": int(k[0]),
                "s": int(s[0]), "pad": int(pads[0]), "ceil": int(a.get("ceil_mode", 0))}
    if anchor.op == "globalavgpool" and not rest:
        return {"kind": "gpool", "c": c, "h": h, "w": w}
    if anchor.op in _ACTS + ("bn", "clip"):
        epi = _epilogue(ops)
        if epi is None or "add" in epi:
            return None
        return {"kind": "unary", "c": c, "h": h, "w": w, "epi": epi}
    if anchor.op in ("add", "mul") and len(anchor.input_shapes) == 2:
        epi = _epilogue(rest)
        other = anchor.input_shapes[1]
        if epi is None or "add" in epi or "bn" in epi or len(other) != 4:
            return None
        if tuple(other) == tuple(ishape):
            bc = False
        elif tuple(other) == (n, c, 1, 1):
            bc = True
        else:
            return None
        return {"kind": "binary", "op": anchor.op, "c": c, "h": h, "w": w, "bc": bc, "epi": epi}
    if anchor.op == "concat" and not rest and a.get("axis") in (1, -3):
        cs = [int(s[1]) for s in anchor.input_shapes]
        if any(len(s) != 4 or s[2:] != ishape[2:] for s in anchor.input_shapes):
            return None
        return {"kind": "concat", "cs": cs, "h": h, "w": w}
    if anchor.op == "pad" and not rest and a.get("mode", "constant") in ("constant", b"constant"):
        p = a.get("pads")
        if p is None or len(p) != 8 or any(p[i] for i in (0, 1, 4, 5)):
            return None
        return {"kind": "pad", "c": c, "h": h, "w": w,
                "pads": [int(p[2]), int(p[3]), int(p[6]), int(p[7])]}
    if anchor.op == "split" and not rest and a.get("axis") in (1, -3):
        return {"kind": "split", "sizes": [int(s[1]) for s in anchor.output_shapes],
                "h": h, "w": w}
    return None


# ---- neighbours: channels rescaled, HW / kernel / stride kept -----------------------------------
def _round_ch(value: float, multiple: int = 1) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def rescale(spec: dict, rng, low: float = 0.5, high: float = 1.2) -> dict:
    """A neighbour of ``spec``: every channel count times a factor drawn in [low, high]."""
    out = json.loads(json.dumps(spec))
    kind = spec["kind"]
    f = lambda: rng.uniform(low, high)  # noqa: E731
    if kind == "conv":
        g = spec["groups"]
        if g == spec["cin"] == spec["cout"]:  # depthwise stays depthwise
            c = _round_ch(spec["cin"] * f())
            out.update(cin=c, cout=c, groups=c)
        else:
            out["cin"] = _round_ch(spec["cin"] * f(), g)
            out["cout"] = _round_ch(spec["cout"] * f(), g)
    elif kind in ("concat", "split"):
        field = "cs" if kind == "concat" else "sizes"
        out[field] = [_round_ch(c * f()) for c in spec[field]]
    else:
        for field in CHANNEL_FIELDS.get(kind, ()):
            out[field] = _round_ch(spec[field] * f())
    return out


# ---- writing models -----------------------------------------------------------------------------
# channels of the graph input a conv's add operand is computed from (see ``_epi``)
OPERAND_CHANNELS = 4


def _epi(b, x, epi, inputs, name_of_extra, conv_operand: bool = False):
    """The epilogue ops of a spec after its anchor ``x``.  A fused add reads an outside operand:
    a graph input, or with ``conv_operand`` (a conv's add) the output of a 1x1 conv over
    ``OPERAND_CHANNELS`` channels.  Why: onnxruntime fuses an add into a conv in its blocked
    layout only when the other operand is blocked too, which a graph input never is, so packs
    never showed a blocked conv-add kernel (4 of 2,981 samples, all in situ) while NAS-Bench-201
    cells run hundreds.  A conv over so few channels runs blocked whatever the layout of the
    conv it feeds, and is one more small kernel (a sample too; ``results/conv-add-operand/``)."""
    for i, op in enumerate(epi):
        if op == "bn":
            x = b.bn(x, name=f"bn{i}")
        elif op == "add":
            n, c, *hw = b.shape(x)
            if conv_operand:
                src = b.input((n, OPERAND_CHANNELS, *hw), name=name_of_extra(i))
                extra = b.conv(src, c, 1, bias=True, name=f"operand{i}")
            else:
                src = extra = b.input(b.shape(x), name=name_of_extra(i))
            inputs.append(src)
            x = b.add(x, extra, name=f"add{i}")
        elif op == "swish":
            x = b.swish(x, name=f"swish{i}")
        else:
            x = b.act(x, op, name=f"{op}{i}")
    return x


def _write(b, spec: dict, tag: str) -> list[str]:
    """Write one spec into builder ``b`` in the current scope; returns its input names."""
    kind = spec["kind"]
    extra = lambda i: f"{tag}.extra{i}"  # noqa: E731
    if kind == "conv":
        inputs = [b.input((1, spec["cin"], spec["h"], spec["w"]), name=f"{tag}.in")]
        x = b.conv(inputs[0], spec["cout"], spec["k"], spec["s"], spec["groups"], spec["pad"],
                   bias=spec.get("bias", False), name="conv")
        x = _epi(b, x, spec.get("epi", ()), inputs, extra, conv_operand=True)
    elif kind == "gemm":  # one row: an fc layer (Gemm); more: a projection (MatMul)
        rows = spec.get("m", 1)
        inputs = [b.input((1, rows, spec["cin"]) if rows > 1 else (1, spec["cin"]),
                          name=f"{tag}.in")]
        layer = b.linear if rows > 1 else b.gemm
        x = layer(inputs[0], spec["cout"], name="gemm")
        if spec.get("bias"):  # a projection: + bias, then split into heads
            x = b.bias_add(x, name="bias")
            if spec.get("heads"):
                h = spec["heads"]
                x = b.reshape(x, (1, rows, h, spec["cout"] // h), name="heads")
        x = _epi(b, x, spec.get("epi", ()), inputs, extra)
    elif kind == "matmul":
        inputs = [b.input((1, spec["b"], spec["m"], spec["k"]), name=f"{tag}.a"),
                  b.input((1, spec["b"], spec["k"], spec["n"]), name=f"{tag}.b")]
        x = b.matmul(*inputs, name="matmul")
    elif kind == "softmax":
        inputs = [b.input((1, spec["rows"], spec["len"]), name=f"{tag}.in")]
        x = inputs[0]
        if spec.get("skip"):  # a residual Add first
            inputs.append(b.input((1, spec["rows"], spec["len"]), name=extra(0)))
            x = b.add(x, inputs[1], name="residual")
        x = getattr(b, spec["op"])(x, name=spec["op"])
    elif kind in ("pool", "gpool", "unary", "binary", "pad"):
        inputs = [b.input((1, spec["c"], spec["h"], spec["w"]), name=f"{tag}.in")]
        x = inputs[0]
        if kind == "pool":
            x = getattr(b, spec["op"])(x, spec["k"], spec["s"], spec["pad"], bool(spec["ceil"]),
                                       name=spec["op"])
        elif kind == "gpool":
            x = b.global_avgpool(x, name="gap")
        elif kind == "unary":
            x = _epi(b, x, spec["epi"], inputs, extra)
        elif kind == "binary":
            shape = (1, spec["c"], 1, 1) if spec["bc"] else (1, spec["c"], spec["h"], spec["w"])
            other = b.input(shape, name=f"{tag}.other")
            inputs.append(other)
            x = getattr(b, spec["op"])(x, other, name=spec["op"])
            x = _epi(b, x, spec.get("epi", ()), inputs, extra)
        else:
            x = b.pad(x, spec["pads"], name="pad")
    elif kind in ("resize", "gather", "slice"):  # the ops grid's (``Sampler.ops``)
        inputs = [b.input((1, spec["c"], spec["h"], spec["w"]), name=f"{tag}.in")]
        if kind == "resize":
            x = b.resize(inputs[0], spec["scale"], spec["mode"], name="resize")
        elif kind == "gather":
            x = b.gather(inputs[0], spec["n"], name="gather")
        else:
            x = b.slice(inputs[0], spec["start"], spec["end"], name="slice")
    elif kind == "concat":
        inputs = [b.input((1, c, spec["h"], spec["w"]), name=f"{tag}.in{i}")
                  for i, c in enumerate(spec["cs"])]
        x = b.concat(inputs, name="concat")
    elif kind == "split":
        inputs = [b.input((1, sum(spec["sizes"]), spec["h"], spec["w"]), name=f"{tag}.in")]
        for out in b.split(inputs[0], spec["sizes"], name="split"):
            b.output(out)
        return inputs
    else:
        raise ValueError(f"kernel spec kind {kind!r} cannot be written; valid: "
                         f"{', '.join(sorted(CHANNEL_FIELDS))}")
    b.output(x)
    return inputs


def build_model(specs, seed: int = 0, name: str = "kernels"):
    """An ONNX model with each spec side by side in its own scope (:func:`specs_by_scope`);
    returns the ModelProto."""
    from ..zoo.builder import ModelBuilder

    b = ModelBuilder(name)
    for tag, spec in specs_by_scope(specs).items():
        with b.scope(tag):
            _write(b, spec, tag)
    return b.model(np.random.default_rng(seed))


CHAIN_ACTS = ("relu", "sigmoid", "hardswish", "relu6")


def chain_model(n: int, seed: int = 0):
    """A chain of ``n`` one-input activations (relu, sigmoid, hardswish, relu6 in turn) on a
    1x16x8x8 tensor: ``n`` kernels of almost no work.  Timed whole, it shows what a kernel
    costs a run beyond its work, which no zoo family isolates (the overhead calibration's
    family-agnostic rows)."""
    from ..zoo.builder import ModelBuilder

    b = ModelBuilder(f"chain{n}")
    x = b.input((1, 16, 8, 8), name="in")
    for i in range(n):
        x = b.act(x, CHAIN_ACTS[i % len(CHAIN_ACTS)], name=f"a{i}")
    b.output(x)
    return b.model(np.random.default_rng(seed))


def specs_by_scope(specs) -> dict[str, dict]:
    """``{scope: spec}`` of a model written by :func:`build_model`: spec ``i`` in scope
    ``k<i>``, whose nodes are named ``k<i>.<op>`` (:func:`scope_of` reads it back)."""
    return {f"k{i}": spec for i, spec in enumerate(specs)}


def scope_of(node_name: str) -> str:
    """The scope of a node of a model written by :func:`build_model`."""
    return node_name.split(".")[0]


def _conv_out_hw(spec: dict) -> tuple[int, int]:
    return ((spec["h"] + 2 * spec["pad"] - spec["k"]) // spec["s"] + 1,
            (spec["w"] + 2 * spec["pad"] - spec["k"]) // spec["s"] + 1)


def spec_flops(spec: dict) -> float:
    """Rough FLOPs of a spec (for budgeting how many fit in one model)."""
    kind = spec["kind"]
    if kind == "conv":
        ho, wo = _conv_out_hw(spec)
        return 2.0 * spec["cout"] * ho * wo * spec["cin"] // spec["groups"] * spec["k"] ** 2
    if kind == "gemm":
        return 2.0 * spec.get("m", 1) * spec["cin"] * spec["cout"]
    if kind == "matmul":
        return 2.0 * spec["b"] * spec["m"] * spec["k"] * spec["n"]
    if kind == "softmax":
        return (6.0 if spec.get("skip") else 5.0) * spec["rows"] * spec["len"]
    if kind == "concat":
        return float(sum(spec["cs"]) * spec["h"] * spec["w"])
    if kind == "split":
        return float(sum(spec["sizes"]) * spec["h"] * spec["w"])
    return float(spec.get("c", 1) * spec.get("h", 1) * spec.get("w", 1)) * max(1, spec.get("k", 1)) ** 2


def spec_bytes(spec: dict) -> float:
    """Rough bytes a spec reads and writes (activations and weights, float32): how much of the
    cache the kernel sweeps, which decides how cold it leaves the next kernel's inputs."""
    kind, hw = spec["kind"], spec.get("h", 1) * spec.get("w", 1)
    if kind == "conv":
        ho, wo = _conv_out_hw(spec)
        weights = spec["cout"] * spec["cin"] // spec["groups"] * spec["k"] ** 2
        elems = spec["cin"] * hw + spec["cout"] * ho * wo + weights
    elif kind == "gemm":
        elems = spec.get("m", 1) * (spec["cin"] + spec["cout"]) + spec["cin"] * spec["cout"]
    elif kind == "matmul":
        elems = spec["b"] * (spec["m"] * spec["k"] + spec["k"] * spec["n"] + spec["m"] * spec["n"])
    elif kind == "softmax":
        elems = (3 if spec.get("skip") else 2) * spec["rows"] * spec["len"]
    elif kind in ("concat", "split"):
        elems = 2 * sum(spec["cs" if kind == "concat" else "sizes"]) * hw
    elif kind == "resize":
        elems = (1 + spec["scale"] ** 2) * spec["c"] * hw
    else:  # one input read, one output written (binary: a second input)
        elems = (3 if kind == "binary" else 2) * spec.get("c", 1) * hw
    return 4.0 * elems


def pack_specs(specs: list[dict], most: int, max_flops: float) -> list[list[dict]]:
    """``specs`` in packs of at most ``most`` specs and ``max_flops`` FLOPs (a lone bigger spec
    gets a pack of its own), in order of the bytes each sweeps.  Why sorted: in a pack a kernel
    runs among its neighbours, and among big convs a small add finds its inputs evicted and
    times several times slower than in a real model, where it reads tensors just written;
    packed with kernels of its own size it times as it does in situ
    (``benchmarks/pack_context.py``)."""
    packs, cur, flops = [], [], 0.0
    for spec in sorted(specs, key=spec_bytes):
        f = spec_flops(spec)
        if cur and (len(cur) >= most or flops + f > max_flops):
            packs.append(cur)
            cur, flops = [], 0.0
        cur.append(spec)
        flops += f
    if cur:
        packs.append(cur)
    return packs
