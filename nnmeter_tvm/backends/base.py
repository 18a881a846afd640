"""The backend contract and its records.

A backend runs an ONNX model on a real runtime.  It does three things:

- ``measure(model)``: time the whole model under the protocol of ``shared/MEASURE.md``
  (:mod:`.protocol`) and return a :class:`Measurement` (optionally appended to a :class:`Store`);
- ``truth(model)`` / ``kernels(model)``: the backend's own view of its kernels after its graph
  fusions, each mapped back to the ORIGINAL ONNX node names it executes (ground truth for the
  partition), optionally timed;
- ``prepare(model)``: build the session / compile the module once and return a :class:`Runner`
  that runs the model with fixed inputs, for callers that time many small models.

Subclasses implement ``version``, ``prepare`` and ``truth``; :meth:`Backend.measure` is shared.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import BackendError, ModelLoadError
from . import protocol as _protocol
from .machine import describe_machine


@dataclass(frozen=True)
class Measurement:
    """One timed measurement of one model (or kernel model) on one backend.

    ``status`` is ``"ok"`` or ``"failed"``; a failed measurement has ``median_ms`` etc. None and
    says why in ``error``.  ``drift`` estimates interference during the kept attempt: the larger
    of the reference workload's relative deviation from its session baseline and the share of
    the timed wall time the thread was not running; ``attempts`` counts the tries.
    ``reference_ms`` is the reference workload's session baseline (absolute): the drift guard
    compares with it, so a host state that lasts a whole session reads no drift, but sessions'
    baselines can be compared (``benchmarks/results/xeon/host-speed/README.md``).
    """

    backend: str
    backend_version: str
    key: str
    median_ms: float | None
    p10_ms: float | None
    p90_ms: float | None
    runs: int
    total_s: float
    drift: float | None
    core: int | None
    threads: int
    machine: dict
    timestamp: str
    status: str = "ok"
    error: str | None = None
    attempts: int = 1
    reference_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def steady(self) -> bool:
        """Measured, and the reference workload drifted no more than the protocol's limit."""
        return self.ok and _protocol.within_drift(self.drift)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TruthKernel:
    """One kernel the backend really executes.

    ``nodes``: the ORIGINAL ONNX node names whose work it does (empty for a kernel the backend
    inserted on its own, ``inserted=True``).  ``ms``: its median time (None when untimed).
    ``detail``: backend-specific notes (domain, fused activation, PrimFunc name).
    ``tensor``: for an inserted layout kernel, the original tensor it converts (its plain-layout
    side), when the backend's graph says ("" otherwise).
    """

    name: str
    op_type: str
    nodes: tuple[str, ...]
    inserted: bool
    ms: float | None
    detail: str = ""
    tensor: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["nodes"] = list(self.nodes)
        return d


@dataclass(frozen=True)
class KernelTruth:
    """A backend's kernels for one model, plus the original nodes that run in no kernel.

    Every original node is either a member of exactly one kernel or listed in ``eliminated``
    (removed, folded into a constant, or a zero-copy view).
    """

    backend: str
    backend_version: str
    model: str
    kernels: tuple[TruthKernel, ...]
    eliminated: tuple[str, ...]
    timed: bool
    drift: float | None = None  # the worst reference drift of the timed sessions (protocol)

    @property
    def total_ms(self) -> float | None:
        if not self.timed or any(k.ms is None for k in self.kernels):
            return None
        return float(sum(k.ms for k in self.kernels))

    def to_dict(self) -> dict:
        return {
            "backend": self.backend,
            "backend_version": self.backend_version,
            "model": self.model,
            "timed": self.timed,
            "drift": self.drift,
            "total_ms": self.total_ms,
            "kernels": [k.to_dict() for k in self.kernels],
            "eliminated": list(self.eliminated),
        }


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A checked, shape-inferred ModelProto with its label (file or graph name) and content key."""

    proto: object
    label: str
    digest: str
    node_names: tuple[str, ...] = field(default=())

    def key(self, label: str | None = None) -> str:
        """The store key: ``<label>@<first 16 hex of sha256 of the checked model>``."""
        return f"{label or Path(self.label).stem or 'model'}@{self.digest[:16]}"


def load(model, input_shapes: dict | None = None) -> LoadedModel:
    """Load and check a model (path or ModelProto); raises ModelLoadError / ShapeError."""
    from ..onnx_import import load_model

    if isinstance(model, LoadedModel):
        return model
    label = str(model) if isinstance(model, (str, os.PathLike)) else (
        getattr(getattr(model, "graph", None), "name", "") or "model")
    proto = load_model(model, input_shapes)
    digest = hashlib.sha256(proto.SerializeToString(deterministic=True)).hexdigest()
    return LoadedModel(proto, label, digest, tuple(onnx_node_names(proto.graph)))


def onnx_node_names(graph) -> list[str]:
    """Unique names of ``graph.node``, in order: the names the core Graph uses
    (:func:`onnx_import.node_names`), with Constant nodes named after all the others."""
    from ..onnx_import import node_names, unique_name

    names = node_names(graph)
    used = {n for n in names if n is not None}
    return [n if n is not None else unique_name(node.name or f"Constant_{i}", used)
            for i, (n, node) in enumerate(zip(names, graph.node))]


_NP_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64, 9: np.bool_,
              10: np.float16, 11: np.float64}


def make_inputs(proto, seed: int = 0) -> dict:
    """Fixed inputs for every graph input that is not an initializer (floats ~ N(0, 1))."""
    rng = np.random.default_rng(seed)
    init = {t.name for t in proto.graph.initializer}
    feeds = {}
    for v in proto.graph.input:
        if v.name in init:
            continue
        tt = v.type.tensor_type
        shape = tuple(d.dim_value for d in tt.shape.dim)
        dtype = _NP_DTYPES.get(tt.elem_type)
        if dtype is None:
            raise ModelLoadError(f"input {v.name!r} has ONNX element type {tt.elem_type}, which "
                                 "the backends cannot feed; use float, int or bool inputs")
        if np.issubdtype(dtype, np.floating):
            feeds[v.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[v.name] = np.zeros(shape, dtype=dtype)
    return feeds


class Runner:
    """A prepared model: ``runner()`` runs it once with fixed inputs (the timed call)."""

    label = "model"

    def __call__(self):
        raise NotImplementedError

    def outputs(self) -> list:
        """Run once and return the outputs as numpy arrays."""
        raise NotImplementedError

    def fresh(self) -> "Runner":
        """A new session / VM on the same built model (no recompilation)."""
        return self


def middle_mean(values) -> float:
    """Mean of the middle half (the median for fewer than 4 values): a kernel's time over its
    profiled runs.  Profilers count whole microseconds, so a median stays on that grid while
    a trimmed mean resolves a 3 µs kernel; one preempted run moves neither."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    if len(v) < 4:
        return float(np.median(v))
    q = len(v) // 4
    return float(v[q: len(v) - q].mean())


def across_sessions(per_session: list[tuple[dict, float | None]]) -> tuple[dict, float | None]:
    """Per kernel, the median of its time over the profiled sessions (a small kernel's time
    depends on where its session's buffers landed); kernels missing from a session dropped.
    ``per_session``: (times, drift) of each session.  Sessions whose reference drifted past
    the protocol's limit are left out when at least one is steady (the host changes speed for
    seconds at a time: one drifted session need not cost the model's other sessions); returns
    the worst drift of the sessions used."""
    steady = [s for s in per_session if _protocol.within_drift(s[1])]
    used = steady or per_session
    keys = set.intersection(*(set(t) for t, _ in used))
    drifts = [d for _, d in used if d is not None]
    return ({k: float(np.median([t[k] for t, _ in used])) for k in keys},
            max(drifts) if drifts else None)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Backend:
    """Base class of a backend; a new backend is one module registering one subclass.

    ``config`` (a :class:`~.protocol.ProtocolConfig`) sets the timing protocol; its defaults are
    MEASURE.md's, and a caller may lower ``min_runs`` / ``min_time_s`` explicitly.
    """

    name = "base"
    profile_sessions = 1   # fresh sessions truth(timed=True) profiles, where a backend can
    threads = 1

    def __init__(self, config: _protocol.ProtocolConfig | None = None):
        self.config = config or _protocol.ProtocolConfig()

    def __repr__(self):
        return f"{type(self).__name__}(config={self.config!r})"

    # ---- to implement -------------------------------------------------------------------
    def version(self) -> str:
        raise NotImplementedError

    def prepare(self, model, *, input_shapes: dict | None = None) -> Runner:
        """Build the session / compile once; raises BackendError if the backend cannot."""
        raise NotImplementedError

    def truth(self, model, *, timed: bool = True, input_shapes: dict | None = None) -> KernelTruth:
        raise NotImplementedError

    # ---- shared -------------------------------------------------------------------------
    def kernels(self, model, *, timed: bool = True,
                input_shapes: dict | None = None) -> list[TruthKernel]:
        """The backend's kernels for ``model`` (see :meth:`truth` for the eliminated nodes)."""
        return list(self.truth(model, timed=timed, input_shapes=input_shapes).kernels)

    def run_once(self, model, *, input_shapes: dict | None = None) -> list:
        """Run ``model`` once with the fixed inputs; returns its outputs as numpy arrays."""
        return self.prepare(model, input_shapes=input_shapes).outputs()

    def measure(self, model, *, timeout_s: float = 60.0, store=None, key: str | None = None,
                input_shapes: dict | None = None,
                config: _protocol.ProtocolConfig | None = None) -> Measurement:
        """Build once, then time ``model`` under the protocol; never raises for a timeout.

        The time limit covers building and timing.  A model that exceeds it comes back with
        ``status="failed"``; a model the backend cannot run raises :class:`BackendError` (and
        is recorded failed in ``store`` first).  With ``store`` the result is appended at once.
        """
        start = time.perf_counter()
        loaded = load(model, input_shapes)
        key = key or loaded.key()
        try:
            runner = self.prepare(loaded)
        except BackendError as exc:
            if store is not None:
                store.add(self._failed(key, str(exc), time.perf_counter() - start))
            raise
        return self.measure_runner(runner, key=key, timeout_s=timeout_s, store=store,
                                   config=config, _start=start)

    def measure_runner(self, runner: Runner, *, key: str, timeout_s: float = 60.0, store=None,
                       config: _protocol.ProtocolConfig | None = None,
                       _start: float | None = None) -> Measurement:
        """Time an already prepared runner (see :meth:`prepare`) and record it."""
        start = time.perf_counter() if _start is None else _start
        timing = _protocol.measure_callable(runner, config=config or self.config,
                                            timeout_s=timeout_s, start=start)
        m = Measurement(
            backend=self.name, backend_version=self.version(), key=key,
            median_ms=timing.median_ms, p10_ms=timing.p10_ms, p90_ms=timing.p90_ms,
            runs=timing.runs, total_s=timing.total_s, drift=timing.drift, core=timing.core,
            threads=self.threads, machine=describe_machine(), timestamp=_now(),
            status=timing.status,
            error=None if timing.ok else f"{self.name}: {runner.label}: {timing.error}",
            attempts=timing.attempts, reference_ms=timing.reference_ms)
        if store is not None:
            store.add(m)
        return m

    def _failed(self, key: str, error: str, total_s: float) -> Measurement:
        return Measurement(backend=self.name, backend_version=self.version(), key=key,
                           median_ms=None, p10_ms=None, p90_ms=None, runs=0, total_s=total_s,
                           drift=None, core=None, threads=self.threads, machine=describe_machine(),
                           timestamp=_now(), status="failed", error=error, attempts=0)
