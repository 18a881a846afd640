"""Model zoo: seeded variants of the 12 CNN families nn-Meter evaluated, plus NAS-Bench-201.

Each family module writes the network from its paper with :class:`ModelBuilder`; a variant
scales every layer's (or stage's) output channels by a factor drawn in [0.2, 1.8] and draws the
free kernel sizes from {1, 3, 5, 7, 9}.  Models are ONNX opset 17 (IR 8), batch 1, float32,
static shapes, random weights.

Determinism: ``generate(family, seed, index, input_size)`` depends on nothing else.  The
architecture is drawn from ``default_rng([crc32(family), seed, index, attempt])``; a draw over
the family's cost budget (:func:`cost` at the family's default input size) or over 38 MiB of
weights (at the default and at the requested size; files stay under 40 MB) is dropped and the
next ``attempt`` drawn.  As the cost is always checked at the default size, the same (seed,
index) gives the *same architecture* at every ``input_size`` up to the default (above it too,
unless a flatten classifier's weights no longer fit).  Pools whose window exceeds a small
feature map are left out, so very small inputs (16, 32) lose some pools.  Weights come from
their own generator, ``default_rng([crc32(family), seed, index, 1 << 20])``.

Cost and size budgets, default input sizes and depths are in each family module's docstring.
"""

import pathlib
import zlib

import numpy as np

from ..errors import NNMeterError, unknown_name
from . import classic, densenet, googlenet, mnasnet, mobilenet, mobilenetv3, nasbench201
from . import proxylessnas, resnet, shufflenet, squeezenet
from .builder import ModelBuilder

__all__ = ["FAMILIES", "generate", "variants", "write", "default_input_size", "cost",
           "ModelBuilder", "ZooArgumentError"]

_REGISTRY = {f.name: f for m in (classic, densenet, resnet, squeezenet, googlenet, mobilenet,
                                 mobilenetv3, shufflenet, mnasnet, proxylessnas, nasbench201)
             for f in m.FAMILIES}
FAMILIES = ("alexnet", "vgg", "densenet", "resnet", "squeezenet", "googlenet", "mobilenetv1",
            "mobilenetv2", "mobilenetv3", "shufflenetv2", "mnasnet", "proxylessnas",
            "nasbench201")
assert set(FAMILIES) == set(_REGISTRY), sorted(_REGISTRY)

MAX_BYTES = 38 * 2**20  # weights of one model file: the file stays under 40 MB (40e6 bytes)
DW_WEIGHT = 10  # a depthwise MAC costs 5-20 dense ones (onnxruntime, 1 x86 thread)
MAX_ATTEMPTS = 64
MIN_INPUT_SIZE = 16


class ZooArgumentError(NNMeterError, ValueError):
    """A seed, index, count or input size the zoo cannot use."""


def _check_int(what, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ZooArgumentError(f"zoo: {what} must be an integer >= {low}, got {value!r}")
    return int(value)


def _family(name):
    if name not in _REGISTRY:
        raise unknown_name("zoo family", name, FAMILIES)
    return _REGISTRY[name]


def _build(fam, seed_seq, size):
    b = ModelBuilder("")
    x = b.input((1, 3, size, size))
    b.output(fam.build(b, np.random.default_rng(seed_seq), x))
    return b


def default_input_size(family):
    """The input height and width ``family`` is generated at when no ``input_size`` is given."""
    return _family(family).input_size


def cost(b):
    """Dense-equivalent MACs of a built graph: what the family budgets bound."""
    return b.macs + (DW_WEIGHT - 1) * b.dw_macs


def _draw(fam, key, seed, index, size):
    """The builder, at ``size``, of the first draw within budget (else of the cheapest)."""
    cheapest = None
    for attempt in range(MAX_ATTEMPTS):
        seq = [key, seed, index, attempt]
        b = _build(fam, seq, fam.input_size)
        sized = b if size == fam.input_size else _build(fam, seq, size)
        if max(b.param_bytes, sized.param_bytes) > MAX_BYTES:
            continue
        if cost(b) <= fam.max_cost:
            return sized
        if cheapest is None or cost(b) < cheapest[0]:
            cheapest = (cost(b), sized)
    if cheapest is None:
        raise ZooArgumentError(f"zoo: no {fam.name} variant fits {MAX_BYTES >> 20} MiB of "
                               f"weights at input size {size}; use a smaller input_size")
    return cheapest[1]


def generate(family, seed, index=0, input_size=None):
    """Variant ``index`` of ``family`` for ``seed``: an ``onnx.ModelProto`` named
    ``<family>_s<seed>_i<index>``, with input ``input`` (1, 3, S, S) and output logits,
    S = ``input_size`` or the family's default (see each family module)."""
    fam = _family(family)
    seed, index = _check_int("seed", seed, 0), _check_int("index", index, 0)
    size = fam.input_size if input_size is None else _check_int(
        "input_size", input_size, MIN_INPUT_SIZE)
    key = zlib.crc32(family.encode())
    b = _draw(fam, key, seed, index, size)
    b.name = f"{family}_s{seed}_i{index}"
    return b.model(np.random.default_rng([key, seed, index, 1 << 20]))


def variants(family, count, seed=0, input_size=None):
    """Variants 0 .. count-1 of ``family`` for ``seed``."""
    count = _check_int("count", count, 0)
    return [generate(family, seed, i, input_size) for i in range(count)]


def write(family, count, seed, outdir, input_size=None):
    """Write ``count`` variants as ``<outdir>/<family>_s<seed>_i<index>.onnx``; returns paths."""
    _family(family)
    count, seed = _check_int("count", count, 0), _check_int("seed", seed, 0)
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = outdir / f"{family}_s{seed}_i{i}.onnx"
        path.write_bytes(generate(family, seed, i, input_size).SerializeToString())
        paths.append(path)
    return paths
