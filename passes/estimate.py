"""``NNMeterEstimate``: predict a Relax module's latency kernel by kernel and annotate it.

Where it goes in a pipeline: anywhere on a Relax module whose entry function is ``main``, from
the ONNX frontend's output (or hand-written TVMScript) up to ``FuseOps``; after ``FuseTIR`` the
fused PrimFuncs can no longer be read back into ops.  It changes no binding, so the module
compiles to the same code and gives the same outputs; it only adds attributes:

- module: ``nnmeter.total_latency_ms`` (float), ``nnmeter.kernels`` (the per-kernel table, one
  map per kernel: ``name``, ``nnmeter.kernel`` (type), ``nnmeter.latency_ms``, ``fallback``,
  ``extrapolated``, ``cost_model``, ``nodes``, ``bindings``, ``functions``),
  ``nnmeter.predictor``,
  ``nnmeter.warnings``.  :func:`report` reads them back into a :class:`Report`.
- after FuseOps, each fused (``Primitive``) function: ``nnmeter.kernel`` (the kernel type,
  ``+``-joined when several predicted kernels are anchored there) and ``nnmeter.latency_ms``.
  With the ``tvm-llvm`` predictor the kernels *are* TVM's kernels: the fused functions plus the
  PrimFuncs ``main`` calls alone.  Those PrimFuncs are left untouched (an attribute would change
  their structural hash, and MetaSchedule's database matches on it): their kernels are rows of
  the table.  Another predictor's kernels are hosted by the function holding their anchor.
  Before FuseOps there are no functions to annotate: each kernel group is a row of the table,
  with the Relax bindings it covers.

What it ignores: functions other than ``main`` (and the fused ones ``main`` calls), control flow
(an ``If`` is read as an unknown op), dynamic shapes (refused with the frontend hint).

Budget: with ``budget_ms`` (or a :class:`LatencyBudget` instrument in the PassContext) a
prediction over the budget raises :class:`BudgetExceededError` naming the total, the budget and
the heaviest kernels, so ``tvm.compile`` fails.  TVM 0.27 cannot register a new PassContext
config key from Python (``PassContext(config={"nnmeter.budget_ms": 5})`` raises "Invalid config
option"); the instrument is the PassContext-level equivalent.
"""
from __future__ import annotations

import collections

import tvm
import tvm_ffi
from tvm import relax
from tvm.ir.instrument import pass_instrument

from ..errors import BudgetExceededError
from ..kernels.kernel import Kernel
from ..kernels.partition import anchor_of, kernel_type
from ..report import KernelPrediction, Report
from .relax_graph import relax_to_graph

PASS_NAME = "NNMeterEstimate"
CONFIG_KEY = "nnmeter.budget_ms"
TOP_KERNELS = 5

# a BudgetExceededError raised inside the pass crosses TVM's FFI and comes out as itself
tvm_ffi.register_error("nnmeter_tvm.BudgetExceededError", BudgetExceededError)


@tvm.transform.module_pass(opt_level=0, name=PASS_NAME)
class NNMeterEstimate:
    """Module pass: predicted latency per kernel and in total, as attributes (module docstring).

    ``predictor``: a shipped predictor name (``"ort-cpu"``, ``"tvm-llvm"``), a bundle folder, or
    a :class:`~nnmeter_tvm.predictors.Predictor`.  ``budget_ms``: fail over this many ms.
    """

    def __init__(self, predictor="ort-cpu", budget_ms=None):
        self.predictor = predictor
        self.budget_ms = budget_ms
        self._loaded = None

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        conv = relax_to_graph(mod)
        pred = self._load()
        if conv.fused and pred.backend == "tvm-llvm":
            report = pred.predict_kernels(conv.graph, tvm_kernels(conv))
        else:
            report = pred.predict_graph(conv.graph)
        mod = annotate(mod, conv, report)
        budget = self.budget_ms
        if budget is None and ctx is not None and ctx.config is not None and CONFIG_KEY in ctx.config:
            budget = float(ctx.config[CONFIG_KEY])  # only if a TVM build registers the key
        check_budget(report, budget)
        return mod

    def _load(self):
        if self._loaded is None:
            from ..predictors import load_predictor

            self._loaded = load_predictor(self.predictor)
        return self._loaded


@pass_instrument
class LatencyBudget:
    """PassContext-level latency budget: ``PassContext(instruments=[LatencyBudget(5.0)])``.

    After every ``NNMeterEstimate`` pass in the context it checks the module's predicted total
    and raises :class:`BudgetExceededError` when it is over ``budget_ms``.  It stands in for a
    ``nnmeter.budget_ms`` config key, which TVM 0.27 cannot register from Python.
    """

    def __init__(self, budget_ms: float):
        self.budget_ms = float(budget_ms)

    def run_after_pass(self, mod, info):
        if info.name == PASS_NAME:
            check_budget(report(mod), self.budget_ms)


# ------------------------------------------------------------------------------ kernels


def tvm_kernels(conv) -> list[Kernel]:
    """TVM's own kernels after FuseOps: one per fused-function call or lone call_tir in main."""
    graph = conv.graph
    counts = {}
    for tk in conv.tvm_kernels:
        counts[tk.name] = counts.get(tk.name, 0) + 1
    kernels = []
    for tk in conv.tvm_kernels:
        nodes = [graph.node(n) for n in tk.nodes]
        ops = tuple(n.op for n in nodes)
        name = tk.name if counts[tk.name] == 1 else f"{tk.name}@{tk.var}"
        kernels.append(Kernel(name=name, type=kernel_type(ops), nodes=tk.nodes,
                              anchor=anchor_of(nodes).name, ops=ops, rule="tvm.FuseOps",
                              attrs={"function": tk.name}))
    return kernels


# ------------------------------------------------------------------------------ annotate


def annotate(mod: tvm.IRModule, conv, report: Report) -> tvm.IRModule:
    """Attach ``report`` to ``mod`` (module attrs, and function attrs after FuseOps)."""
    host = {n: tk for tk in conv.tvm_kernels for n in tk.nodes} if conv.fused else {}
    rows = []
    for k in report.kernels:
        bindings = [b for n in k.nodes for b in conv.placement[n].bindings] if k.nodes else []
        functions = list(dict.fromkeys(host[n].name for n in k.nodes if n in host))
        rows.append({"name": k.name, "nnmeter.kernel": k.type, "nnmeter.latency_ms": float(k.ms),
                     "fallback": bool(k.fallback), "extrapolated": bool(k.extrapolated),
                     "cost_model": k.cost_model,
                     "nodes": list(k.nodes), "bindings": bindings, "functions": functions})
    info = {key: str(value) for key, value in report.predictor.items()
            if key in ("name", "backend", "backend_version", "source") and value is not None}
    info["fixed_overhead_ms"] = float(report.predictor.get("fixed_overhead_ms") or 0.0)
    mod = mod.with_attrs({"nnmeter.total_latency_ms": float(report.total_ms),
                          "nnmeter.kernels": rows, "nnmeter.predictor": info,
                          "nnmeter.warnings": list(report.warnings), "nnmeter.model": report.model})
    if conv.fused:
        mod = _annotate_functions(mod, conv, report, host)
    return mod


def _annotate_functions(mod, conv, report, host):
    """Each fused function gets the kernels anchored in it."""
    types, ms, parts = {}, {}, {}
    fused = collections.Counter(tk.name for tk in conv.tvm_kernels if tk.kind == "fused")
    for k in report.kernels:
        if not k.nodes:
            continue
        anchor = host.get(k.nodes[0])
        if anchor is not None:
            types.setdefault(anchor.name, []).append(k.type)
            ms[anchor.name] = ms.get(anchor.name, 0.0) + float(k.ms)
        for n in k.nodes[1:]:
            if n in host and host[n] is not anchor:
                parts.setdefault(host[n].name, []).append(k.name)
    for gv in mod.get_global_vars():
        name = gv.name_hint
        func = mod[gv]
        if name not in fused or not isinstance(func, relax.Function):
            continue  # PrimFuncs stay untouched: MetaSchedule matches them structurally
        if name in types:
            kernel = "+".join(dict.fromkeys(types[name]))
        else:  # every op here belongs to a kernel anchored in another function
            kernel = "(part of " + ", ".join(dict.fromkeys(parts.get(name, ["?"]))) + ")"
        attrs = {"nnmeter.kernel": kernel, "nnmeter.latency_ms": ms.get(name, 0.0) / fused[name]}
        if fused[name] > 1:  # FuseOps shares one function between identical groups: ms per call
            attrs["nnmeter.calls"] = fused[name]
        mod[gv] = func.with_attrs(attrs)
    return mod


# ------------------------------------------------------------------------------ read back


def report(mod: tvm.IRModule) -> Report:
    """The per-kernel table :class:`NNMeterEstimate` attached to ``mod``, as a :class:`Report`.

    Render it with :func:`nnmeter_tvm.predictors.render.render_table`.
    """
    attrs = mod.attrs
    if attrs is None or "nnmeter.total_latency_ms" not in attrs:
        raise ValueError("this IRModule carries no nnmeter prediction: run "
                         "nnmeter_tvm.passes.NNMeterEstimate() on it first")
    kernels = tuple(
        KernelPrediction(name=str(r["name"]), type=str(r["nnmeter.kernel"]),
                         nodes=tuple(str(n) for n in r["nodes"]), ms=float(r["nnmeter.latency_ms"]),
                         fallback=bool(r["fallback"]), cost_model=str(r["cost_model"]),
                         extrapolated="extrapolated" in r and bool(r["extrapolated"]))
        for r in attrs["nnmeter.kernels"])
    predictor = {str(k): (float(v) if k == "fixed_overhead_ms" else str(v))
                 for k, v in attrs["nnmeter.predictor"].items()}
    return Report(model=str(attrs["nnmeter.model"]), predictor=predictor,
                  total_ms=float(attrs["nnmeter.total_latency_ms"]), kernels=kernels,
                  warnings=tuple(str(w) for w in attrs["nnmeter.warnings"]))


def check_budget(rep: Report, budget_ms) -> None:
    """Raise :class:`BudgetExceededError` when ``rep.total_ms`` is over ``budget_ms``."""
    if budget_ms is None or rep.total_ms <= float(budget_ms):
        return
    raise BudgetExceededError(budget_message(rep, float(budget_ms)))


def budget_message(rep: Report, budget_ms: float, top: int = TOP_KERNELS) -> str:
    """Total, budget, and the heaviest kernels: the text of every budget failure."""
    over = rep.total_ms - budget_ms
    lines = [f"predicted latency {rep.total_ms:.3f} ms exceeds the budget of {budget_ms:.3f} ms "
             f"by {over:.3f} ms ({100 * over / budget_ms:.1f} %) "
             f"[model {rep.model}, predictor {rep.predictor.get('name', '?')}]",
             f"heaviest kernels (of {len(rep.kernels)}):"]
    for k in sorted(rep.kernels, key=lambda k: -k.ms)[:top]:
        flag = ("  (fallback estimate)" if k.fallback else
                "  (beyond its cost model's training range)" if k.extrapolated else "")
        lines.append(f"  {k.ms:9.3f} ms  {100 * k.ms / max(rep.total_ms, 1e-12):5.1f} %  "
                     f"{k.type:<24s} {k.name}{flag}")
    return "\n".join(lines)
