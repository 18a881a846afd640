"""``ort-cpu``: onnxruntime's CPU execution provider, ORT_ENABLE_ALL, one intra-op and one
inter-op thread, sequential execution.

Kernels (ground truth) come from the graph onnxruntime really executes (written through
``SessionOptions.optimized_model_filepath``) mapped back to the original nodes by
:mod:`.ort_truth`, each timed by onnxruntime's profiler in ``profile_sessions`` fresh sessions
(the interquartile mean of its runs in each, then the median across the sessions).
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from ..errors import BackendError
from . import protocol
from .base import (Backend, KernelTruth, Runner, TruthKernel, across_sessions, load, make_inputs,
                   middle_mean)
from .ort_truth import (G1_DISABLED_OPTIMIZERS, PLAIN_SIDE, map_kernels, node_detail,
                         reorder_tensor)



def _options(**extra):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3          # the "hardware specific optimizations" warning is noise
    for k, v in extra.items():
        setattr(so, k, v)
    return so


def _unsupported(exc: Exception, label: str) -> BackendError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^(\[ONNXRuntimeError\] : )?\d+ : \w+ : (Fatal error: )?", "", text)
    return BackendError(f"ort-cpu: {label}: onnxruntime cannot run this model: {text}")


class OrtRunner(Runner):
    def __init__(self, session, feeds: dict, label: str, make_session=None):
        self.session, self.feeds, self.label = session, feeds, label
        self._run = session.run
        self._make_session = make_session

    def fresh(self) -> "OrtRunner":
        if self._make_session is None:
            return self
        return OrtRunner(self._make_session(), self.feeds, self.label, self._make_session)

    def __call__(self):
        return self._run(None, self.feeds)

    def outputs(self) -> list:
        try:
            return [np.asarray(o) for o in self()]
        except Exception as exc:
            raise _unsupported(exc, self.label) from None


class OrtCpu(Backend):
    """onnxruntime CPU EP (see module docstring)."""

    name = "ort-cpu"
    profile_sessions = 3   # fresh sessions profiled per model (see _profile)

    def version(self) -> str:
        import onnxruntime

        return onnxruntime.__version__

    def _session(self, loaded, **options):
        import onnxruntime as ort

        disabled = options.pop("disabled_optimizers", None)
        try:
            return ort.InferenceSession(loaded.proto.SerializeToString(), _options(**options),
                                        providers=["CPUExecutionProvider"],
                                        disabled_optimizers=disabled)
        except Exception as exc:   # onnxruntime raises its own Fail / NotImplemented types
            raise _unsupported(exc, loaded.label) from None

    def profiled_session(self, loaded, prefix: str):
        """A session of ``loaded`` (from ``base.load``) with this backend's options and
        onnxruntime's profiler on, its trace written under ``prefix``."""
        return self._session(loaded, enable_profiling=True, profile_file_prefix=prefix)

    def prepare(self, model, *, input_shapes: dict | None = None) -> OrtRunner:
        loaded = load(model, input_shapes)
        runner = OrtRunner(self._session(loaded), make_inputs(loaded.proto), loaded.label,
                           lambda: self._session(loaded))
        runner.outputs()       # fail here, not inside the timed loop
        return runner

    def truth(self, model, *, timed: bool = True, input_shapes: dict | None = None) -> KernelTruth:
        import onnx

        loaded = load(model, input_shapes)
        with tempfile.TemporaryDirectory(prefix="nnmeter-ort-") as tmp:
            g1_path, g2_path = os.path.join(tmp, "g1.onnx"), os.path.join(tmp, "g2.onnx")
            try:
                self._session(loaded, optimized_model_filepath=g1_path,
                              disabled_optimizers=list(G1_DISABLED_OPTIMIZERS))
            except BackendError:   # a build without that transformer: one stage only
                g1_path = g2_path
            self._session(loaded, optimized_model_filepath=g2_path)
            g1, g2 = onnx.load(g1_path).graph, onnx.load(g2_path).graph
            times, drift = (self._profile(loaded, g2, os.path.join(tmp, "prof")) if timed
                            else ({}, None))
        mapped, eliminated = map_kernels(loaded.proto.graph, g1, g2)
        names = loaded.node_names
        kernels = []
        for mk in mapped:
            nodes = [g2.node[k] for k in mk.g2_nodes]
            kernels.append(TruthKernel(
                name="+".join(_display_name(g2, k) for k in mk.g2_nodes),
                op_type="+".join(n.op_type for n in nodes),
                nodes=tuple(names[i] for i in mk.original),
                inserted=mk.inserted,
                ms=_total(times, mk.g2_nodes) if timed else None,
                detail="; ".join(d for d in (node_detail(n) for n in nodes) if d),
                tensor=reorder_tensor(nodes) if mk.inserted else ""))
        return KernelTruth(self.name, self.version(), loaded.label, tuple(kernels),
                           tuple(names[i] for i in sorted(eliminated)), timed, drift)

    def _profile(self, loaded, g2, prefix: str) -> tuple[dict[int, float], float | None]:
        """ms per executed node (node index in the G2 file), the median over
        ``profile_sessions`` fresh sessions, and their worst drift.  Why several: a small
        kernel's time depends on where its session's buffers landed (the same 4 µs reorder
        reads 3-11 µs from one session to the next), and the models we predict run in sessions
        of their own."""
        from ..onnx_import import graph_from_proto

        shapes = graph_from_proto(loaded.proto, loaded.label).tensor_shapes()
        return across_sessions([self._profile_session(loaded, g2, f"{prefix}{i}", shapes)
                                for i in range(max(1, self.profile_sessions))])

    def _profile_session(self, loaded, g2, prefix: str,
                         shapes: dict) -> tuple[dict[int, float], float]:
        """One profiled session timed under the protocol (warm-up, run counts, drift guard);
        each node's time is the mean of the middle half of its runs in the kept attempt (the
        profiler counts whole microseconds: a median stays on that grid, a trimmed mean
        resolves a 3 µs kernel).  Also returns the kept attempt's drift."""
        session = self.profiled_session(loaded, prefix)
        feeds = make_inputs(loaded.proto)
        try:
            timing = protocol.measure_callable(lambda: session.run(None, feeds),
                                               config=self.config, timeout_s=120.0)
        except Exception as exc:
            raise _unsupported(exc, loaded.label) from None
        trace = Path(session.end_profiling())
        try:
            events = json.loads(trace.read_text())
        finally:
            trace.unlink(missing_ok=True)
        if not timing.ok:
            raise BackendError(f"ort-cpu: {loaded.label}: profiling failed: {timing.error}")
        return _node_times(events, g2, timing, shapes), timing.drift


def _total(times: dict, nodes) -> float | None:
    """Summed time of the nodes; None (never 0) when the profiler missed one."""
    return sum(times[k] for k in nodes) if all(k in times for k in nodes) else None


def _display_name(graph, k: int) -> str:
    node = graph.node[k]
    return node.name or f"{node.op_type}#{k}"


def _reorder_key(op: str, shape) -> tuple:
    return ("reorder", op, tuple(int(d) for d in shape))


def _node_times(events, g2, timing, shapes: dict | None = None) -> dict[int, float]:
    """ms per G2 node from profiler ``Node`` events (interquartile mean) over the runs of
    ``timing``'s kept attempt (:meth:`Timing.kept`; the others warmed up or drifted).

    Events are named ``<node name>_kernel_time``; an unnamed node is reported as
    ``<op>_<internal index>``, so unnamed nodes are matched by op type in execution order.
    Reorders are matched by their plain-layout shape (``shapes``: the original tensors'):
    onnxruntime names them ``ReorderOutput_token_<n>`` in an order that changes from one
    session to the next (the G2 file is another session's): in 36 of 39 zoo models four
    sessions did not all give each name to the same tensor, so by name a reorder could take
    another reorder's time.
    """
    shapes = shapes or {}
    groups: dict[tuple, list[int]] = {}
    for k, n in enumerate(g2.node):
        plain = shapes.get(reorder_tensor([n])) if shapes and n.op_type in PLAIN_SIDE else None
        key = (_reorder_key(n.op_type, plain) if plain else
               ("name", n.name) if n.name else ("op", n.op_type))
        groups.setdefault(key, []).append(k)
    named = {n.name for n in g2.node if n.name}
    seen: dict[tuple, int] = {}
    durations: dict[int, list[float]] = {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        name = name[: -len("_kernel_time")]
        args = e.get("args", {})
        op = args.get("op_name")
        plain = (args.get(f"{PLAIN_SIDE[op]}_type_shape") or [None])[0] if op in PLAIN_SIDE \
            else None
        reorder = _reorder_key(op, next(iter(plain.values()))) if plain else None
        key = (reorder if reorder in groups else
               ("name", name) if name in named else ("op", op))
        ks = groups.get(key)
        if not ks:
            continue
        i = seen.get(key, 0)
        seen[key] = i + 1
        durations.setdefault(ks[i % len(ks)], []).append(e["dur"] / 1000.0)
    return {k: middle_mean(timing.kept(v)) for k, v in durations.items()}
