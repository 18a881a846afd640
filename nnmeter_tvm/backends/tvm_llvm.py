"""``tvm-llvm``: Apache TVM (Relax), the default CPU pipeline for ``llvm``, one thread, run by
``relax.VirtualMachine``.

Which pipeline: ``tvm.compile(mod, target="llvm")`` with ``relax_pipeline="default"`` runs
``relax.pipeline.default_build_pipeline``, which on CPU never runs FuseOps (TVM 0.27 keeps the
CPU-specific pipeline off that path).  The backend therefore compiles with the default CPU
pipeline, ``relax.get_default_pipeline(Target("llvm"))`` (= ``backend.cpu_generic``): library
dispatch, then LegalizeOps, AnnotateTIROpPattern, FoldConstant, FuseOps, FuseTIR, then the
dataflow-lowering and finalize passes.  No scheduling (no MetaSchedule, no DLight on CPU), so
kernels are plain loop nests: slow, but what this pipeline produces.

Kernels (ground truth): the same pass list run in three stages (up to FuseOps, FuseOps, the
rest) so the ``Primitive`` functions FuseOps creates can be read, mapped back to ONNX nodes
through :mod:`.relax_import`'s provenance, and each call timed in the VM (an instrument
callback around every ``call_tir``) in ``profile_sessions`` fresh VMs, each timed under the
protocol: the interquartile mean of a call's runs, then the median across the VMs.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

# before TVM's thread pool starts: one thread, and no pinning of its own (the protocol pins)
os.environ["TVM_NUM_THREADS"] = "1"
os.environ["TVM_BIND_THREADS"] = "0"

from ..errors import BackendError  # noqa: E402
from . import protocol  # noqa: E402
from .base import (Backend, KernelTruth, Runner, TruthKernel, across_sessions,  # noqa: E402
                   load, make_inputs, middle_mean)
from .relax_import import bindings, import_onnx, var_id  # noqa: E402

TARGET = "llvm"


def _tvm():
    import tvm

    threads = tvm.get_global_func("runtime.NumThreads")()
    if threads != 1:  # TVM was imported and its pool started before this module set the env
        tvm.get_global_func("runtime.config_threadpool")(1, 1)   # (big cores, 1 thread)
    return tvm


def pipeline_passes(target) -> list:
    """The default CPU pipeline's passes, in order (what ``get_default_pipeline`` runs)."""
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    return (cpu.library_dispatch_passes(target) + cpu.legalize_passes(target)
            + cpu.dataflow_lower_passes(target) + cpu.finalize_passes(target))


class TvmRunner(Runner):
    def __init__(self, vm, args: list, label: str, executable=None):
        self.vm, self.args, self.label, self.executable = vm, args, label, executable
        self._main = vm["main"]

    def __call__(self):
        return self._main(*self.args)

    def fresh(self) -> "TvmRunner":
        from tvm import relax

        if self.executable is None:
            return self
        return TvmRunner(relax.VirtualMachine(self.executable, _tvm().cpu()), self.args,
                         self.label, self.executable)

    def outputs(self) -> list:
        out = self()
        items = list(out) if not hasattr(out, "numpy") else [out]
        return [np.asarray(o.numpy()) for o in items]


@dataclass(frozen=True)
class _Call:
    """One kernel call in ``main`` after the pipeline: its variable and PrimFunc."""

    var: str
    func: str
    ops: tuple[str, ...]
    onnx_vars: tuple[int, ...]   # import-time variables (ids) whose work it does


class TvmLlvm(Backend):
    """TVM Relax on llvm (see module docstring)."""

    name = "tvm-llvm"

    def version(self) -> str:
        return _tvm().__version__

    def _build(self, mod, label, passes=None):
        tvm = _tvm()
        from tvm import relax

        target = tvm.target.Target(TARGET)
        pipeline = passes if passes is not None else relax.get_default_pipeline(target)
        try:
            ex = tvm.compile(mod, target=target, relax_pipeline=pipeline)
            return ex, relax.VirtualMachine(ex, tvm.cpu())
        except Exception as exc:
            text = str(exc).strip().splitlines()
            raise BackendError(f"{self.name}: {label}: compilation failed: "
                               f"{text[-1] if text else type(exc).__name__}") from None

    def _args(self, loaded):
        tvm = _tvm()
        return [tvm.runtime.tensor(a) for a in make_inputs(loaded.proto).values()]

    def prepare(self, model, *, input_shapes: dict | None = None) -> TvmRunner:
        loaded = load(model, input_shapes)
        imported = import_onnx(loaded, backend=self.name)
        ex, vm = self._build(imported.mod, loaded.label)
        runner = TvmRunner(vm, self._args(loaded), loaded.label, ex)
        try:
            runner()
        except Exception as exc:
            raise BackendError(f"{self.name}: {loaded.label}: run failed: "
                               f"{str(exc).strip().splitlines()[-1]}") from None
        return runner

    def truth(self, model, *, timed: bool = True, input_shapes: dict | None = None) -> KernelTruth:
        tvm = _tvm()
        loaded = load(model, input_shapes)
        imported = import_onnx(loaded, backend=self.name)
        target = tvm.target.Target(TARGET)
        passes = pipeline_passes(target)
        names = [p.info.name for p in passes]
        if "FuseOps" not in names:
            raise BackendError(f"{self.name}: the default CPU pipeline of TVM {tvm.__version__} "
                               "has no FuseOps pass; the kernel mapping needs updating")
        i = names.index("FuseOps")
        seq = tvm.transform.Sequential
        with target:
            m1 = seq(passes[:i])(imported.mod)
            m2 = seq([passes[i]])(m1)
            lowered = passes[i + 1:]
            j = next((k for k, p in enumerate(lowered) if p.info.name == "FuseTIR"), -1)
            m3 = seq(lowered[:j + 1])(m2)
            m3r = seq([p for p in lowered[j + 1:] if p.info.name == "RewriteDataflowReshape"])(m3)
        calls = _kernel_calls(m1, m2, m3r)
        times, drift = {}, None
        if timed:
            ex, vm = self._build(m3, loaded.label, passes=seq(lowered[j + 1:]))
            runner = TvmRunner(vm, self._args(loaded), loaded.label, ex)
            times, drift = across_sessions([self._profile_session(runner.fresh(), calls)
                                            for _ in range(max(1, self.profile_sessions))])
        kernels, used = [], set()
        count: dict[str, int] = {}
        for n, call in enumerate(calls):
            nodes = {imported.by_id[v] for v in call.onnx_vars if v in imported.by_id}
            nodes = tuple(x for x in loaded.node_names if x in nodes)   # ONNX order
            used.update(nodes)
            count[call.func] = count.get(call.func, 0) + 1
            label = call.func if count[call.func] == 1 else f"{call.func}#{count[call.func]}"
            kernels.append(TruthKernel(label, "+".join(call.ops), nodes, inserted=not nodes,
                                       ms=times.get(n) if timed else None,
                                       detail=f"PrimFunc {call.func} (bound to {call.var})"))
        kernels = _merge_shared(kernels)
        eliminated = tuple(x for x in loaded.node_names if x not in used)
        return KernelTruth(self.name, self.version(), loaded.label, tuple(kernels), eliminated,
                           timed, drift)

    def _profile_session(self, runner: TvmRunner, calls) -> tuple[dict[int, float], float]:
        """ms of each kernel call in one VM timed under the protocol (warm-up, run counts,
        drift and CPU-share guard): the interquartile mean of its runs in the kept attempt;
        and that attempt's drift."""
        by_func: dict[str, list[int]] = {}
        for n, c in enumerate(calls):
            by_func.setdefault(c.func, []).append(n)
        timing, runs = timed_calls(runner, self.config, by_func.__contains__)
        if not timing.ok:
            raise BackendError(f"{self.name}: {runner.label}: profiling failed: {timing.error}")
        durations: dict[int, list[float]] = {}
        for run in runs:
            seen: dict[str, int] = {}
            for symbol, ms in run:
                i = seen.get(symbol, 0)
                seen[symbol] = i + 1
                n = by_func[symbol][i % len(by_func[symbol])]
                durations.setdefault(n, []).append(ms)
        return {n: middle_mean(v) for n, v in durations.items()}, timing.drift


def timed_calls(runner: TvmRunner, config, keep, timeout_s: float = 300.0, start=None):
    """Time ``runner`` under the protocol with a VM instrument around every call whose symbol
    ``keep(symbol)`` accepts.  Returns the Timing and, for each run of the kept attempt, its
    calls as ``(symbol, ms)`` in call order (empty when the timing failed)."""
    runs: list[list] = []

    def instrument(func, symbol, before, ret, *rest):
        now = time.perf_counter_ns()
        if keep(symbol):
            runs[-1].append((symbol, before, now))
        return 0

    def run():
        runs.append([])
        runner()

    runner.vm.set_instrument(instrument)
    timing = protocol.measure_callable(run, config=config, timeout_s=timeout_s, start=start)
    return timing, [_call_times(events) for events in timing.kept(runs)]


def _call_times(events) -> list[tuple[str, float]]:
    """``(symbol, ms)`` of each call from one run's ``(symbol, before, ns)`` events."""
    out, opened = [], {}
    for symbol, before, t in events:
        if before:
            opened[symbol] = t
        else:
            out.append((symbol, (t - opened.pop(symbol, t)) * 1e-6))
    return out


def _callee(value):
    """(kind, name) of a binding's value: ("call_tir", prim) / ("func", gv) / (None, None)."""
    from tvm import ir, relax

    if isinstance(value, relax.Call):
        if isinstance(value.op, ir.Op) and value.op.name == "relax.call_tir":
            return "call_tir", value.args[0].name_hint
        if isinstance(value.op, ir.GlobalVar):
            return "func", value.op.name_hint
    return None, None


def _op_name(prim: str) -> str:
    return prim.rstrip("0123456789") or prim


def _kernel_calls(m1, m2, m3r) -> list[_Call]:
    """The call_tir bindings of the final ``main``, each with the M1 (pre-FuseOps) variables
    whose work it does.

    M1 keeps the import's variables (LegalizeOps and FoldConstant preserve them).  FuseOps
    moves a group's bindings into a ``Primitive`` function, which it may share between
    identical groups, and binds each call to a new variable; so each call's bindings are
    matched to M1 by their computation (callee and arguments, through the call's actual
    arguments), never by name or by the function's own variables.  FuseTIR and the final
    passes keep ``main``'s variables.
    """
    from tvm import relax

    m1_index: dict[tuple, list[int]] = {}     # computation -> M1 variables, in order
    for b in bindings(m1["main"]):
        m1_index.setdefault(_signature(b.value, {}), []).append(var_id(b.var))
    claimed: set[int] = set()

    def match(sig):
        for v in m1_index.get(sig, ()):
            if v not in claimed:
                claimed.add(v)
                return v
        return None

    covers: dict[int, tuple[int, ...]] = {}    # M2 variable -> M1 variables it computes
    ops: dict[int, tuple[str, ...]] = {}
    env: dict[int, tuple] = {}                 # M2 / inner variable -> key of its M1 value
    for b in bindings(m2["main"]):
        var = var_id(b.var)
        kind, name = _callee(b.value)
        if kind == "func" and m2[name].attrs and "Primitive" in m2[name].attrs:
            fn = m2[name]
            inner = dict(env)
            inner.update({var_id(p): _key(a, env) for p, a in zip(fn.params, b.value.args)})
            members = []
            for ib in bindings(fn):
                m = match(_signature(ib.value, inner))
                if m is not None:
                    inner[var_id(ib.var)] = ("var", m)
                    members.append(m)
            out = fn.body.body
            if isinstance(out, relax.Var) and var_id(out) in inner:
                env[var] = inner[var_id(out)]
            covers[var] = tuple(members)
            ops[var] = tuple(_op_name(_callee(ib.value)[1]) for ib in bindings(fn)
                             if _callee(ib.value)[0] == "call_tir")
        elif isinstance(b.value, relax.Var) and var_id(b.value) in covers:   # gv = lv5
            src = var_id(b.value)
            if src in env:
                env[var] = env[src]
            covers[var], ops[var] = covers[src], ops[src]
        else:
            m = match(_signature(b.value, env))
            m = var if m is None else m
            env[var] = ("var", m)
            covers[var] = (m,)
            ops[var] = (_op_name(name),) if kind == "call_tir" else ()
    calls = []
    for b in bindings(m3r["main"]):
        kind, prim = _callee(b.value)
        if kind == "call_tir":
            v = var_id(b.var)
            calls.append(_Call(b.var.name, prim, ops.get(v) or (_op_name(prim),),
                               covers.get(v, (v,))))
    return calls


def _key(arg, env: dict):
    """A hashable stand-in for an argument: its M1 variable, its constant, its structure."""
    from tvm import ir, relax

    if isinstance(arg, relax.Var):
        return env.get(var_id(arg), ("var", var_id(arg)))
    if isinstance(arg, relax.Tuple):
        return ("tuple",) + tuple(_key(f, env) for f in arg.fields)
    if isinstance(arg, ir.expr.Constant):   # the same object wherever FuseOps passes it
        return ("const", arg.__chandle__())
    if isinstance(arg, ir.GlobalVar):
        return ("global", arg.name_hint)
    import tvm_ffi

    return ("expr", tvm_ffi.structural_hash(arg))


def _signature(value, env: dict) -> tuple:
    """What a binding computes, in terms of M1 variables: equal for the same computation."""
    from tvm import ir, relax

    if isinstance(value, relax.Call):
        op = value.op.name if isinstance(value.op, ir.Op) else getattr(value.op, "name_hint", "?")
        return ("call", op) + tuple(_key(a, env) for a in value.args)
    if isinstance(value, relax.TupleGetItem):
        return ("item", _key(value.tuple_value, env), value.index)
    return ("value", _key(value, env))


def _merge_shared(kernels: list[TruthKernel]) -> list[TruthKernel]:
    """Kernels that share an ONNX node (one node lowered to several calls) become one."""
    groups: list[list[TruthKernel]] = []
    owner: dict[str, int] = {}
    for k in kernels:
        hit = {owner[n] for n in k.nodes if n in owner}
        if not hit:
            groups.append([k])
            gi = len(groups) - 1
        else:
            gi = min(hit)
            for other in sorted(hit - {gi}, reverse=True):
                groups[gi].extend(groups[other])
                groups[other] = []
            groups[gi].append(k)
        for g_k in groups[gi]:
            for n in g_k.nodes:
                owner[n] = gi
    out = []
    for g in groups:
        if not g:
            continue
        if len(g) == 1:
            out.append(g[0])
            continue
        nodes = tuple(dict.fromkeys(n for k in g for n in k.nodes))
        ms = None if any(k.ms is None for k in g) else sum(k.ms for k in g)
        out.append(TruthKernel("+".join(k.name for k in g), "+".join(k.op_type for k in g),
                               nodes, False, ms, "; ".join(k.detail for k in g)))
    return out
