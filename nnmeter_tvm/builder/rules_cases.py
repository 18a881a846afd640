"""The test bench of rule detection: writes a rule's test models at a shape, times them
(interleaved, each minus T0) and reads the backend's own kernels for them (the check).

Shapes are chosen so that every op costs well above the timing noise: large spatial sizes
and few channels (an elementwise op's time grows with the channels, a conv's with their
square, so few channels keep the cheap op of a pair a visible fraction of the dear one).  On
a backend with a blocked layout one shape has block-aligned channels and one does not, and a
binary consumer also meets a second operand left in the plain layout (mixed).

A **launch probe** shape (by default ``c4hw2`` on tvm-llvm, the blocked layout's block of
channels at 2x2 on onnxruntime) counts kernels instead: at 2x2 an op's own work is far below
what launching a kernel costs (~0.34 µs per kernel call on tvm-llvm, ~0.4 µs on onnxruntime,
measured: :meth:`CaseBench.launch_cost`), so, timed as whole runs net of a model with no
kernel, a fused pair costs one launch and a separate pair two, and nn-Meter's criterion
separates them by a launch.  That is what tells an untuned compiler's fusions, whose fused
kernel still writes and reads the intermediate and so saves no time at large shapes, and an
epilogue too cheap to time beside its conv at 32x56 on onnxruntime.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone

from ..kernels.kernel import REORDER_OPS
from .rules_observe import backend_kernels
from .rules_timing import Measurer
from .testcases import (CaseShape, Step, Template, build_case, default_template, empty_case,
                        trivial_case)

ORT_SHAPES = (CaseShape(32, 56), CaseShape(18, 56))
ORT_MIXED = CaseShape(32, 56, plain_other=True)
TVM_SHAPES = (CaseShape(8, 32), CaseShape(12, 24))
LAUNCH_SHAPE = CaseShape(4, 2, launch=True)
BINARY = ("add", "mul", "sub", "div", "concat")
UNRELIABLE = "unreliable"   # observed_case: the backend's own kernel list is broken here


@dataclass(frozen=True)
class Part:
    """One test model of a rule: ``steps`` read the main input (``in_shape``, default the
    shape's), ``outputs`` are the roles the model returns (default: the roles nobody reads)."""

    label: str
    steps: tuple
    outputs: tuple | None = None
    in_shape: tuple | None = None


def single(t: Template, binary_inputs: int = 1, in_shape=None) -> Part:
    """``t`` alone, reading ``in_shape`` (the shape it reads inside the pattern)."""
    ins = ("in", "other") if binary_inputs == 2 else ("in",)
    return Part(f"single/{tlabel(t)}", (Step("a", t, ins),), in_shape=in_shape)


class CaseBench:
    """Writes, times and observes test models for ``backend`` (see module docstring).

    ``repeats``: sessions per test model; ``prefix``: the layout prefix (``"maxpool1"`` when
    the backend has a blocked layout, chosen by :meth:`set_layout`); ``observe``: read the
    backend's own kernels to check timing (when it reports them); ``launch``: the launch
    probe's shape, first of the shapes (``"auto"``: :data:`LAUNCH_SHAPE` on TVM; on a backend
    with a blocked layout, its block of channels at 2x2, set by :meth:`set_layout`: block-aligned
    channels keep the probe in the blocked layout, as at the first test shape, and a probe
    decides only for its own layout context, ``rules_verdicts.decide``)."""

    def __init__(self, backend, *, alpha: float, shapes=None, repeats: int = 3,
                 observe: bool = True, measurer: Measurer, launch="auto"):
        self.backend, self.alpha, self.repeats, self.observe = backend, alpha, repeats, observe
        tvm = backend.name.startswith("tvm")
        self.shapes = tuple(shapes or (TVM_SHAPES if tvm else ORT_SHAPES))
        self._launch_at_block = launch == "auto" and not tvm
        if launch == "auto":
            launch = LAUNCH_SHAPE if tvm else None
        if launch is not None:
            self.shapes = (replace(launch, launch=True),) + self.shapes
        self.measurer = measurer
        self.layout, self.prefix, self.suffix = None, None, None
        self.templates: dict[str, Template] = {}
        self._launch: dict = {}
        self.date = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.version = backend.version()

    def set_layout(self, layout, prefix="auto"):
        """Use ``layout``; a blocked one puts every input through a 1x1 MaxPool (as a conv
        output would be in a real model), reads every output with a one-element Slice
        (onnxruntime fuses no node whose output the graph returns) and, with ``launch="auto"``,
        adds the launch probe at its block size."""
        self.layout = layout
        if self._launch_at_block and layout is not None and not any(s.launch for s in self.shapes):
            self.shapes = (CaseShape(layout.block, 2, launch=True),) + self.shapes
        self.prefix = ("maxpool1" if layout is not None else None) if prefix == "auto" else prefix
        self.suffix = "slice1" if self.prefix == "maxpool1" else None

    def origin(self, method: str) -> dict:
        return {"method": method, "backend": self.backend.name, "version": self.version,
                "date": self.date}

    def template(self, op: str) -> Template:
        return self.templates.get(op) or default_template(op)

    def shapes_for(self, consumer: Template):
        """The test shapes, plus the mixed-layout one when the consumer is binary and the
        backend has a layout (a blocked producer meeting a plain second operand)."""
        timed = tuple(s for s in self.shapes if not s.launch)
        if self.layout is not None and consumer.op in BINARY and timed == ORT_SHAPES:
            return self.shapes + (ORT_MIXED,)
        return self.shapes

    # -- writing ----------------------------------------------------------------------------
    def model(self, label, steps, shape, outputs=None, roles=None, in_shape=None):
        return build_case(list(steps), shape, prefix=self.prefix, suffix=self.suffix,
                          outputs=outputs, name=label.replace("/", "_"), roles=roles,
                          in_shape=in_shape)

    def out_shape(self, steps, shape: CaseShape, role: str) -> tuple:
        """The output shape of ``role`` in a test model (what the next op reads)."""
        shapes = {}
        build_case(list(steps), shape, shapes=shapes)
        return shapes[role]

    # -- timing -----------------------------------------------------------------------------
    def time_parts(self, shape: CaseShape, parts: dict) -> dict | None:
        """{name: Timed with its T0} for ``parts`` ({name: Part}) at ``shape``, the sessions
        interleaved (T0 A B AB, T0 A B AB, ...); None when one cannot be measured."""
        jobs = {name: (self._labelled(p, shape), self._t0(p, shape)) for name, p in parts.items()}
        if any(_empty_tensor(model) for job in jobs.values() for _, model in job):
            return None   # the shape is too small for the pattern (a stride leaves 0 pixels)
        whole = shape.launch
        for r in range(self.repeats):
            for job, t0 in jobs.values():
                self.measurer.session(*t0, r, whole)
                self.measurer.session(*job, r, whole)
        out = {}
        for name, (job, t0) in jobs.items():
            base = self.measurer.timed(*t0, self.repeats, whole)
            timed = self.measurer.timed(*job, self.repeats, whole)
            if base is None or timed is None:
                return None
            out[name] = replace(timed, base=base)
        return out

    def launch_cost(self, shape: CaseShape):
        """What one kernel launch costs at a launch probe (Timed, or None if it cannot be
        timed): a Relu on the probe's input, net of the model with no kernel (its own work on
        16 elements is negligible)."""
        if shape not in self._launch:
            t = self.time_parts(shape, {"launch": single(default_template("relu"))})
            self._launch[shape] = None if t is None else t["launch"]
        return self._launch[shape]

    def _context(self, shape: CaseShape) -> str:
        return f"{shape.label}/{self.prefix or 'none'}-{self.suffix or 'none'}"

    def _labelled(self, part: Part, shape: CaseShape):
        label = part.label + ("/in" + "x".join(map(str, part.in_shape)) if part.in_shape else "")
        model = self.model(label, part.steps, shape, part.outputs, in_shape=part.in_shape)
        return f"{label}/{self._context(shape)}", model

    def _t0(self, part: Part, shape: CaseShape):
        """The part's trivial model (:func:`trivial_case`): its inputs, their layout prefixes
        and a one-element Slice of each.  At a launch probe it must launch exactly the kernels
        the part's model launches besides the pattern's: none (:func:`empty_case`), or, with
        a suffix (onnxruntime), the prefixes and one Slice per output."""
        case = self.model("T0", part.steps, shape, part.outputs, in_shape=part.in_shape)
        ins = "+".join("x".join(str(d.dim_value) for d in v.type.tensor_type.shape.dim)
                       for v in case.graph.input)
        if not shape.launch:
            return f"T0/in{ins}/{self._context(shape)}", trivial_case(case)
        if self.suffix is None:
            return f"T0/in{ins}/{self._context(shape)}", empty_case(case)
        return (f"T0/in{ins}/out{len(case.graph.output)}/{self._context(shape)}",
                trivial_case(case, per_output=True))

    # -- the backend's own view (the check) -------------------------------------------------
    def blocked_at(self, steps, shape: CaseShape, role: str, producer: str) -> tuple | None:
        """``(producer blocked, inputs of role all blocked)`` in this test model by the layout
        model (None without a layout)."""
        if self.layout is None:
            return None
        from nnmeter_tvm.rules import Rules

        from ..kernels.partition import _Partitioner
        from ..onnx_import import load_graph

        roles = {}
        try:
            graph = load_graph(self.model("layout", steps, shape, roles=roles))
        except Exception:  # noqa: BLE001 - a test model the importer cannot read: no context
            return None
        p = _Partitioner(graph, Rules(backend={}, machine={}, alpha=self.alpha, date="",
                                      rules=(), layout=self.layout))
        for v in graph.nodes:
            p.visit(v)
        prod = graph.node(roles[producer])
        return (bool(p.blocked.get(prod.outputs[0], False)),
                p.inputs_blocked(graph.node(roles[role])))

    def observed_case(self, steps, roles_in_order, shape: CaseShape):
        """The grouping of ``roles_in_order`` into the backend's own kernels for a test model
        at ``shape`` (None when the backend does not report kernels, or observe is off;
        UNRELIABLE when its kernel list reports real nodes as inserted)."""
        if not self.observe:
            return None
        roles = {}
        truth = backend_kernels(self.backend, self.model("observe", steps, shape, roles=roles))
        if truth is None:
            return None
        if any(k.inserted and k.op_type not in REORDER_OPS
               for k in truth.kernels):
            return UNRELIABLE
        where = {n: i for i, k in enumerate(truth.kernels) for n in k.nodes}
        groups: dict = {}
        for idx, role in enumerate(roles_in_order):
            groups.setdefault(where.get(roles[role], ("alone", role)), []).append(idx)
        return tuple(sorted(tuple(g) for g in groups.values()))


def _empty_tensor(model) -> bool:
    """Whether a tensor of ``model`` has a dimension of 0: an input, an output, or one between
    its nodes by ONNX shape inference.  Why inside too: the suffix's one-element Slice hides an
    empty output, and onnxruntime may crash on one (a 3x3 MaxPool's 0x0 output at the 16x2
    launch probe killed the process with SIGFPE)."""
    import onnx

    ends = list(model.graph.input) + list(model.graph.output)
    if any(d.dim_value <= 0 for v in ends for d in v.type.tensor_type.shape.dim):
        return True
    inner = onnx.shape_inference.infer_shapes(model).graph.value_info
    return any(d.HasField("dim_value") and d.dim_value <= 0
               for v in inner for d in v.type.tensor_type.shape.dim)


def consumer_inputs(t: Template, src: str) -> tuple:
    """The inputs of ``t`` reading ``src``: binary ops get a fresh second operand."""
    if t.op in ("add", "sub", "mul", "div", "concat", "matmul"):
        return (src, "other")
    return (src,)


def tlabel(t: Template) -> str:
    """A short label of a template for store keys: ``conv(k3x3,s1x1,gconv)``."""
    extra = []
    d = dict(t.params)
    for k in ("kernel_shape", "strides", "group_kind", "broadcast", "rank_in", "axis"):
        if k in d:
            v = d[k]
            extra.append(f"{k[0]}{'x'.join(map(str, v)) if isinstance(v, tuple) else v}")
    if d.get("const_operand"):    # a constant second operand: another test model
        extra.append(f"const{d.get('const_rank', '')}")
    return t.op + ("(" + ",".join(extra) + ")" if extra else "")
