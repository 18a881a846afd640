"""Sampling kernel configurations: a prior drawn from real models, then nn-Meter's adaptive rounds.

The **prior** is the multiset of kernel specs (:mod:`.kernel_models`) found in the layers of
the zoo's models: what real CNNs use, with their frequencies.  The **initial** draw takes specs
from the prior (the frequent ones first, then their channel-rescaled neighbours); each
**adaptive** round takes the held-out configurations the current model gets wrong by more than
10 % and draws new specs near them: every channel count times a factor in [0.5, 1.2], HW,
kernel size, stride, padding and epilogue kept (nn-Meter's rule).  A spec already measured or
already drawn is never drawn again.

The **grid** draw is family-agnostic: every field of a spec drawn from a fixed distribution
written here (log-uniform HW and channels, the usual kernel sizes, strides and epilogues), not
from the zoo.  It covers what the zoo's layers do not (a new architecture's odd channel counts,
a standalone bn at 3x3, a projection over many tokens), so the cost models generalise beyond
the families they were drawn from, and leave-one-family-out keeps these samples for every
family (none was drawn from it).  The **wide** grid (``build --grid wide``) draws, on top of
it, layers no zoo model runs: those of transformers, and standalone pads (:meth:`Sampler.wide`).
The **ops** grid (``build --extend BUNDLE --grid ops``) draws standalone kernels of the ops the
feature schema codes but no other draw runs (tanh, erf, resize, gather...: :meth:`Sampler.ops`),
so that a cost model prices them from samples of their own.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .kernel_models import CHANNEL_FIELDS, rescale, spec_flops, spec_from_kernel, spec_key

LOW, HIGH = 0.5, 1.2

# the grid's distributions: (value, weight) pairs, and log-uniform ranges
GRID_KINDS = (("conv", 0.30), ("dwconv", 0.15), ("gconv", 0.05), ("gemm", 0.05),
              ("pool", 0.07), ("gpool", 0.05), ("unary", 0.15), ("binary", 0.10),
              ("concat", 0.05), ("split", 0.03))
# the wide grid's layers, drawn on top of the grid's (``Sampler.wide``), in these shares: gemms
# over many rows (projections of tokens), matmuls of two activations (attention), softmax and
# layernorm, residual adds of two (tokens, width) activations, and standalone zero pads
# (onnxruntime folds a pad before a conv into it, so no zoo model runs one).  Drawn instead of a
# share of the grid, the first three cost CNN accuracy: four builds so averaged 91.2 % within
# ±10 % on the zoo against the cnn grid's 93.8 % (results/build-from-scratch-wide/).  Without
# the residuals, an encoder's adds were priced from CNN adds alone: 0.97x or 4.2x their time,
# as the binary model's target happened to be chosen (results/conv-add-operand/)
WIDE_KINDS = (("gemm", 0.20), ("projection", 0.15), ("matmul", 0.15), ("softmax", 0.20),
              ("skipnorm", 0.10), ("residual", 0.10), ("pad", 0.10))
GRIDS = ("cnn", "wide")
# the ops grid: (spec kind, op) of the ops the schema's op tables code (features/schema.py)
# that the zoo and the other grids do not run; without samples of their own, a family's trees
# price a Resize as a reshape (6-100x low), a Gather up to 20x low, an Exp up to 3x high
# (results/unseen-ops/).  Not the binary ops: their samples here (standalone, in packs) priced
# a large Add after them at 2.1x its time, against 1.2x before; Sub and Div are then priced as
# Add and Mul (about as dear), Pow 6-12x low and flagged.  gelu (an ONNX op since opset 20;
# exporters write erf) and identity (which onnxruntime removes) are left out too.
OPS_GRID = (("unary", "clip"), ("unary", "hardsigmoid"), ("unary", "tanh"),
            ("unary", "leakyrelu"), ("unary", "erf"), ("unary", "sqrt"), ("unary", "exp"),
            ("resize", "nearest"), ("resize", "linear"), ("gather", None), ("slice", None))
OPS_PER_OP = 16            # specs of each op the ops grid draws
EXTEND_GRIDS = ("wide", "ops")  # the grids ``build --extend BUNDLE --grid G`` adds to a bundle
GRID_RESIZE_HW = (1, 56)   # log-uniform input HW of a resize (its output is 4x larger)
GRID_HW = (1, 112)         # log-uniform (conv, pool, elementwise inputs)
GRID_CHANNELS = (4, 1024)  # log-uniform
GRID_GEMM = (8, 4096)      # log-uniform, input and output features
GRID_ROWS = (2, 256)       # wide: log-uniform rows of a projection (the zoo's fc layers have 1)
GRID_HEADS = ((1, 1), (2, 1), (4, 1), (8, 1), (12, 1))  # batches of a matmul of activations
# a projection's bias is read back into heads (Reshape) or not (0), as attention's q/k/v are
GRID_SPLIT_HEADS = ((0, 1), (2, 1), (4, 1), (8, 1))
GRID_MATMUL = (8, 256)     # log-uniform m, k and n of a matmul of activations
GRID_SOFTMAX_ROWS = (1, 2048)  # log-uniform rows and length of a softmax / layernorm
GRID_SOFTMAX_LEN = (8, 1024)
GRID_PAD = (1, 3)          # wide: zero pad on each side of H and W (symmetric)
GRID_ACTS = ((None, 0.3), ("relu", 0.35), ("relu6", 0.1), ("hardswish", 0.1),
             ("swish", 0.1), ("sigmoid", 0.05))
GRID_MAX_FLOPS = 4e8       # a spec above this is drawn again (what one packed model holds)


def prior_from_kernels(pairs) -> Counter:
    """Count specs over ``(graph, kernels)`` pairs: ``Counter(spec_key -> count)``."""
    counts = Counter()
    for graph, kernels in pairs:
        for kernel in kernels:
            spec = spec_from_kernel(kernel, graph)
            if spec is not None:
                counts[spec_key(spec)] += 1
    return counts


def _channels(spec: dict) -> list[int]:
    out = []
    for field in CHANNEL_FIELDS.get(spec["kind"], ()):
        value = spec[field]
        out.extend(value if isinstance(value, list) else [value])
    return out


def in_bounds(source: dict, spec: dict, low: float = LOW, high: float = HIGH) -> bool:
    """True when ``spec`` is a neighbour of ``source``: same everything but the channel counts,
    each within [low, high] x the source's (rounding to the group multiple allowed)."""
    fixed = {k: v for k, v in source.items() if k not in CHANNEL_FIELDS.get(source["kind"], ())
             and k != "groups"}
    if any(spec.get(k) != v for k, v in fixed.items()):
        return False
    a, b = _channels(source), _channels(spec)
    if len(a) != len(b):
        return False
    slack = max(1, source.get("groups", 1)) if source["kind"] == "conv" else 1
    if source["kind"] == "conv" and source["groups"] == source["cin"] == source["cout"]:
        slack = 1
    return all(low * x - slack <= y <= high * x + slack and y >= 1 for x, y in zip(a, b))


class Sampler:
    """Draws specs without repeats.

    ``prior`` is a ``Counter`` of spec keys (or a list of specs); ``seed`` seeds the generator.
    Learned state: ``seen_`` holds the keys of every spec drawn or marked measured.
    """

    def __init__(self, prior, seed: int = 0, low: float = LOW, high: float = HIGH,
                 max_channels: int = 4096):
        self.prior = prior if isinstance(prior, Counter) else Counter(spec_key(s) for s in prior)
        self.seed = seed
        self.low, self.high = low, high
        self.max_channels = max_channels
        self.rng_ = np.random.default_rng(seed)
        self.seen_: set[str] = set()

    def mark(self, specs) -> None:
        """Record specs measured before (a resumed build) so they are not drawn again."""
        for spec in specs:
            self.seen_.add(spec if isinstance(spec, str) else spec_key(spec))

    def _take(self, spec: dict) -> bool:
        key = spec_key(spec)
        if key in self.seen_ or max(_channels(spec) or [1]) > self.max_channels:
            return False
        self.seen_.add(key)
        return True

    def initial(self, n: int, keep=None) -> list[dict]:
        """Up to ``n`` specs: prior specs in random order weighted by frequency, then rescaled
        neighbours of prior specs.  ``keep(spec) -> bool`` filters (e.g. by family)."""
        import json

        keys = [k for k in self.prior if keep is None or keep(json.loads(k))]
        if not keys:
            return []
        weights = np.array([self.prior[k] for k in keys], float)
        order = self.rng_.choice(len(keys), size=len(keys), replace=False, p=weights / weights.sum())
        out = []
        for i in order:
            if len(out) >= n:
                return out
            spec = json.loads(keys[i])
            if self._take(spec):
                out.append(spec)
        tries = 0
        while len(out) < n and tries < 20 * n:
            tries += 1
            source = json.loads(keys[self.rng_.choice(len(keys), p=weights / weights.sum())])
            spec = rescale(source, self.rng_, self.low, self.high)
            if self._take(spec):
                out.append(spec)
        return out

    def grid(self, n: int) -> list[dict]:
        """Up to ``n`` family-agnostic specs of CNN layers (see the module docstring)."""
        return self._draw(n, grid_spec)

    def wide(self, counts: dict) -> list[dict]:
        """Family-agnostic specs of the wide grid's layers: up to ``counts[kind]`` of each kind
        of ``WIDE_KINDS`` (``wide_counts``)."""
        out = []
        for kind, n in counts.items():
            out += self._draw(n, lambda rng, kind=kind: wide_spec(rng, kind))
        return out

    def ops(self, counts: dict) -> list[dict]:
        """Family-agnostic specs of the ops grid: up to ``counts[(kind, op)]`` of each op of
        ``OPS_GRID``."""
        out = []
        for (kind, op), n in counts.items():
            out += self._draw(n, lambda rng, kind=kind, op=op: ops_spec(rng, kind, op))
        return out

    def _draw(self, n: int, draw) -> list[dict]:
        out, tries = [], 0
        while len(out) < n and tries < 20 * n:
            tries += 1
            spec = draw(self.rng_)
            if spec_flops(spec) <= GRID_MAX_FLOPS and self._take(spec):
                out.append(spec)
        return out

    def near(self, source: dict, n: int) -> list[dict]:
        """Up to ``n`` new specs near ``source`` (channels x [low, high], the rest kept)."""
        out, tries = [], 0
        while len(out) < n and tries < 20 * n:
            tries += 1
            spec = rescale(source, self.rng_, self.low, self.high)
            if in_bounds(source, spec, self.low, self.high) and self._take(spec):
                out.append(spec)
        return out


# ---- the grid ----------------------------------------------------------------------------------
def _pick(rng, pairs):
    values, weights = zip(*pairs)
    w = np.array(weights, float)
    return values[int(rng.choice(len(values), p=w / w.sum()))]


def _log_int(rng, low: int, high: int, multiple: int = 1) -> int:
    value = float(np.exp(rng.uniform(np.log(low), np.log(high + 1))))
    return max(multiple, int(value) // multiple * multiple)


def grid_spec(rng) -> dict:
    """One CNN layer's spec with every field drawn from the grid's distributions."""
    kind = _pick(rng, GRID_KINDS)
    hw = _log_int(rng, *GRID_HW)
    ch = lambda m=1: _log_int(rng, *GRID_CHANNELS, multiple=m)  # noqa: E731
    act = _pick(rng, GRID_ACTS)
    if kind in ("conv", "dwconv", "gconv"):
        k = _pick(rng, ((1, 0.45), (3, 0.4), (5, 0.05), (7, 0.1)) if kind == "conv"
                  else ((3, 0.6), (5, 0.3), (7, 0.1)))
        s = _pick(rng, ((1, 0.75), (2, 0.25)))
        if kind == "dwconv":
            cin = cout = groups = ch()
        else:
            groups = 1 if kind == "conv" else _pick(rng, ((2, 1), (4, 1), (8, 1)))
            cin, cout = ch(groups), ch(groups)
        bn = rng.random() < 0.7
        epi = ["bn"] * bn + ["add"] * (rng.random() < 0.15) + [act] * bool(act)
        return {"kind": "conv", "cin": cin, "cout": cout, "h": hw, "w": hw, "k": k, "s": s,
                "groups": groups, "pad": k // 2, "bias": not bn, "epi": epi}
    if kind == "gemm":
        return {"kind": "gemm", "cin": _log_int(rng, *GRID_GEMM),
                "cout": _log_int(rng, *GRID_GEMM), "epi": [act] if act else []}
    if kind == "pool":
        k = _pick(rng, ((2, 0.3), (3, 0.7)))
        s = _pick(rng, ((1, 0.3), (2, 0.7)))
        hw = max(hw, k)
        return {"kind": "pool", "op": _pick(rng, (("maxpool", 0.7), ("avgpool", 0.3))),
                "c": ch(), "h": hw, "w": hw, "k": k, "s": s,
                "pad": _pick(rng, ((0, 1), (k // 2, 1))), "ceil": 0}
    if kind == "gpool":
        return {"kind": "gpool", "c": ch(), "h": hw, "w": hw}
    if kind == "unary":
        epi = (["bn"] if rng.random() < 0.5 else []) + ([act] if act else [])
        return {"kind": "unary", "c": ch(), "h": hw, "w": hw,
                "epi": epi or [_pick(rng, GRID_ACTS[1:])]}
    if kind == "binary":
        op = _pick(rng, (("add", 0.7), ("mul", 0.3)))
        return {"kind": "binary", "op": op, "c": ch(), "h": hw, "w": hw,
                "bc": bool(op == "mul" and rng.random() < 0.7),
                "epi": [act] if act and rng.random() < 0.3 else []}
    parts = [ch() for _ in range(int(rng.integers(2, 5)))]
    if kind == "concat":
        return {"kind": "concat", "cs": parts, "h": hw, "w": hw}
    return {"kind": "split", "sizes": parts[:3], "h": hw, "w": hw}


def wide_kind(spec: dict) -> str:
    """The wide-grid kind a spec was drawn as (a projection is a gemm spec with a bias, a
    skipnorm a layernorm spec with a residual Add before it, a residual a binary spec)."""
    if spec.get("bias") and spec["kind"] == "gemm":
        return "projection"
    if spec["kind"] == "binary":
        return "residual"
    return "skipnorm" if spec.get("skip") else spec["kind"]


def wide_counts(total: int) -> dict:
    """How many specs of each of ``WIDE_KINDS`` a wide grid of ``total`` specs draws."""
    return {kind: int(round(share * total)) for kind, share in WIDE_KINDS}


def wide_spec(rng, kind: str) -> dict:
    """One spec of a wide-grid ``kind``: a gemm over ``m`` rows (written as MatMul, without
    epilogue), a projection (the same plus a bias Add, then split into ``heads`` by a Reshape
    unless ``heads`` is 0: onnxruntime runs the three as one Gemm), a batched matmul of two
    activations, a softmax / layernorm over ``rows`` x ``len`` (a skipnorm: a layernorm reading
    the sum of two activations, as a post-norm transformer's residual), a residual Add of two
    ``rows`` x ``len`` activations (written as a binary spec of ``c`` = rows, ``h`` = len,
    ``w`` = 1: the features read a (1, tokens, width) tensor so), or a zero pad of a CNN
    activation."""
    if kind == "pad":
        t, l = (_log_int(rng, *GRID_PAD) for _ in range(2))
        hw = _log_int(rng, *GRID_HW)
        return {"kind": "pad", "c": _log_int(rng, *GRID_CHANNELS), "h": hw, "w": hw,
                "pads": [t, l, t, l]}
    if kind == "gemm":
        return {"kind": "gemm", "cin": _log_int(rng, *GRID_GEMM),
                "cout": _log_int(rng, *GRID_GEMM), "epi": [], "m": _log_int(rng, *GRID_ROWS)}
    if kind == "projection":
        heads = _pick(rng, GRID_SPLIT_HEADS)
        cout = _log_int(rng, *GRID_GEMM)
        if heads:
            cout = max(heads, cout // heads * heads)
        return {"kind": "gemm", "cin": _log_int(rng, *GRID_GEMM), "cout": cout, "epi": [],
                "m": _log_int(rng, *GRID_ROWS), "bias": True, "heads": heads}
    if kind == "matmul":
        return {"kind": "matmul", "b": _pick(rng, GRID_HEADS),
                **{f: _log_int(rng, *GRID_MATMUL) for f in ("m", "k", "n")}}
    if kind == "skipnorm":  # residual Add + LayerNorm: onnxruntime's SkipLayerNormalization
        return {"kind": "softmax", "op": "layernorm", "skip": True,
                "rows": _log_int(rng, *GRID_SOFTMAX_ROWS), "len": _log_int(rng, *GRID_SOFTMAX_LEN)}
    if kind == "residual":
        return {"kind": "binary", "op": "add", "c": _log_int(rng, *GRID_SOFTMAX_ROWS),
                "h": _log_int(rng, *GRID_SOFTMAX_LEN), "w": 1, "bc": False, "epi": []}
    if kind == "softmax":
        return {"kind": "softmax", "op": _pick(rng, (("softmax", 1), ("layernorm", 1))),
                "rows": _log_int(rng, *GRID_SOFTMAX_ROWS),
                "len": _log_int(rng, *GRID_SOFTMAX_LEN)}
    raise ValueError(f"wide-grid kind {kind!r}; valid: {', '.join(k for k, _ in WIDE_KINDS)}")


def ops_op(spec: dict) -> tuple:
    """The (kind, op) of ``OPS_GRID`` an ops-grid spec was drawn as."""
    kind = spec["kind"]
    return kind, {"unary": (spec.get("epi") or [None])[0], "resize": spec.get("mode")}.get(kind)


def ops_spec(rng, kind: str, op: str | None) -> dict:
    """One standalone kernel of an ops-grid ``op`` on a CNN activation (grid HW and channels):
    a one-input op, a 2x resize, a gather of some channels, or a slice of a channel range."""
    c = _log_int(rng, *GRID_CHANNELS)
    hw = _log_int(rng, *(GRID_RESIZE_HW if kind == "resize" else GRID_HW))
    if kind == "unary":
        return {"kind": "unary", "c": c, "h": hw, "w": hw, "epi": [op]}
    if kind == "resize":
        return {"kind": "resize", "mode": op, "scale": 2, "c": min(c, 512), "h": hw, "w": hw}
    if kind == "gather":
        return {"kind": "gather", "c": c, "h": hw, "w": hw, "n": int(rng.integers(1, c + 1))}
    if kind == "slice":
        start = int(rng.integers(0, c))
        return {"kind": "slice", "c": c, "h": hw, "w": hw, "start": start,
                "end": int(rng.integers(start + 1, c + 1))}
    raise ValueError(f"ops-grid kind {kind!r}; valid: unary, resize, gather, slice")
