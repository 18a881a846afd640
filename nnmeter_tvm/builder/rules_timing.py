"""How long a test model takes: the measurements behind every timed rule verdict.

A test model's time is the **sum of its kernels' durations** as the backend's profiler reports
them (onnxruntime's profiler; TVM's VM instrument around every kernel call), one sum per run.
That is still timing: it reads how long the model's kernels took in total, never which nodes
were fused, and it leaves out the session's fixed per-run overhead (about 10 µs on
onnxruntime), which is larger than a small op and noisier than the difference a fusion makes.
A backend without a profiler is timed as a whole run (:meth:`Backend.measure`), and so is a
launch probe (a test shape so small that what it measures is the launches, which the
profiler's per-kernel times leave out; see :mod:`.rules_cases`).

Each model is timed in ``repeats`` fresh sessions, interleaved with the other models of its
rule (A B AB A B AB ...); its time is the median over the sessions and its spread their median
absolute deviation (a small kernel's time depends on where its session's buffers landed).  Every session's result
goes to the measurement store first, so a detection stopped by Ctrl-C or its budget resumes.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Timed:
    """A test model's time over its sessions (ms), and T0, the trivial model's, as ``base``."""

    repeats: tuple            # each session's time: the interquartile mean of its runs
    p10: float                # the fastest decile of the runs in the median session
    p90: float
    key: str                  # the test model's label
    base: "Timed | None" = None

    @property
    def value(self) -> float:
        """The statistic verdicts use: the median over the sessions."""
        return float(np.median(self.repeats))

    @property
    def spread(self) -> float:
        """How far this time may move: the median absolute deviation of the sessions from
        their median (robust: one session whose buffers landed badly does not set it)."""
        m = np.median(self.repeats)
        return float(np.median([abs(r - m) for r in self.repeats]))

    @property
    def net(self) -> float:
        """This model's time minus T0 (the layout prefix and the output slices)."""
        return self.value - (self.base.value if self.base is not None else 0.0)

    def to_dict(self) -> dict:
        d = {"ms": round(self.value, 5), "repeats_ms": [round(r, 5) for r in self.repeats],
             "spread_ms": round(self.spread, 5), "p10_ms": round(self.p10, 5),
             "p90_ms": round(self.p90, 5)}
        if self.base is not None:
            d["t0_ms"] = round(self.base.value, 5)
            d["net_ms"] = round(self.net, 5)
        return d


DIED = ("the process died while measuring it in an earlier run (a crash inside the backend, or a "
        "kill): skipped, as the measurement store records; a fresh --store tries it again")


class BudgetExhausted(Exception):
    """The time budget ran out; what was measured is in the store."""


@dataclass
class DetectionReport:
    """What a detection did: counts, the time it took, and whether the budget cut it short."""

    measurements: int = 0
    reused: int = 0
    measuring_s: float = 0.0      # the timed seconds behind every measurement used, new or reused
    failed: list = field(default_factory=list)
    seconds: float = 0.0
    complete: bool = True


class Measurer:
    """Times test models on a backend, one session per call; reuses measurements already in
    ``store`` (resumable).  ``how``: ``"kernels"`` (profiler sum, when the backend has one) or
    ``"session"`` (whole runs)."""

    def __init__(self, backend, *, store=None, config=None, timeout_s: float = 60.0,
                 budget_s: float | None = None, progress=None, how: str = "kernels"):
        self.backend, self.store, self.config = backend, store, config
        self.timeout_s, self.budget_s = timeout_s, budget_s
        self.progress = progress
        self.sum_kernels = KERNEL_SUMS.get(backend.name) if how == "kernels" else None
        self.how = "kernels" if self.sum_kernels is not None else "session"
        self.start = time.perf_counter()
        self.cache: dict[str, object] = {}
        self.report = DetectionReport()
        self._version = backend.version()

    def session(self, label: str, model, repeat: int = 0, whole: bool = False):
        """One session's Measurement of ``model`` (None when the backend cannot run it);
        ``whole``: time whole runs whatever ``how`` is."""
        from ..backends.base import load

        loaded = load(model)
        how = "session" if whole else self.how
        key = loaded.key(f"rules-{how}/{label}#{repeat}")
        if key not in self.cache:
            self.cache[key] = self._stored(key) or self._measure(label, loaded, key, how)
            if self.progress is not None:
                self.progress("measure", label)
        return self.cache[key]

    def timed(self, label: str, model, repeats: int, whole: bool = False) -> Timed | None:
        """``model`` over ``repeats`` sessions (see :class:`Timed`)."""
        found = [self.session(label, model, r, whole) for r in range(repeats)]
        if any(m is None for m in found):
            return None
        mid = sorted(found, key=lambda m: m.median_ms)[len(found) // 2]
        return Timed(tuple(m.median_ms for m in found), mid.p10_ms, mid.p90_ms, label)

    def _stored(self, key):
        if self.store is None:
            return None
        found = self.store.get(self.backend.name, key, backend_version=self._version)
        if found is not None:
            self.report.reused += 1
            self.report.measuring_s += getattr(found, "total_s", 0.0) or 0.0
        return found

    def _measure(self, label, loaded, key, how):
        if self.budget_s is not None and time.perf_counter() - self.start > self.budget_s:
            self.report.complete = False
            raise BudgetExhausted(label)
        if self.store is not None and self.store.died_on(self.backend.name, key):
            self.report.failed.append(f"{label}: {DIED}")
            return None
        self.report.measurements += 1
        if self.store is not None:
            self.store.mark(self.backend.name, self._version, key, started=True)
        try:
            found = self._run(loaded, key, how)
        except Exception as exc:  # a backend that cannot run the pattern: no verdict
            self.report.failed.append(f"{label}: {str(exc).splitlines()[0][:160]}")
            return None
        finally:  # reached on any Python exit (Ctrl-C too), never after a native crash
            if self.store is not None:
                self.store.mark(self.backend.name, self._version, key, started=False)
        if not found.ok:
            self.report.failed.append(f"{label}: {found.error}")
            return None
        self.report.measuring_s += getattr(found, "total_s", 0.0) or 0.0
        return found

    def _run(self, loaded, key, how):
        if how == "kernels":
            found = self.sum_kernels(self.backend, loaded, key=key, config=self.config,
                                     timeout_s=self.timeout_s)
            if self.store is not None:
                self.store.add(found)
            return found
        if hasattr(self.backend, "prepare"):   # whole runs of the kept compiled model
            return self.backend.measure_runner(
                _compiled(self.backend, loaded).fresh(), key=key, store=self.store,
                config=self.config, timeout_s=self.timeout_s)
        return self.backend.measure(loaded, key=key, store=self.store, config=self.config,
                                    timeout_s=self.timeout_s)


# ---- kernel sums: one number per run, from the backend's profiler ----------------------------

def ort_kernel_sum(backend, loaded, *, key, config, timeout_s):
    """A Measurement of ``loaded`` on onnxruntime whose runs are the summed durations of the
    profiler's kernel events within each ``model_run`` (the protocol times the session)."""
    from ..backends import protocol

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nnmeter-rules-") as tmp:
        session = backend.profiled_session(loaded, os.path.join(tmp, "p"))
        from ..backends.base import make_inputs

        feeds = make_inputs(loaded.proto)
        timing = protocol.measure_callable(lambda: session.run(None, feeds),
                                           config=config or backend.config, timeout_s=timeout_s,
                                           start=start)
        events = json.loads(Path(session.end_profiling()).read_text())
    sums = timing.kept(_run_sums(events))
    return _measurement(backend, key, timing, sums, time.perf_counter() - start)


def _run_sums(events) -> list[float]:
    """ms of kernel time in each run: ``Node`` ``*_kernel_time`` events inside a ``model_run``."""
    runs = [(e["ts"], e["ts"] + e["dur"]) for e in events
            if e.get("cat") == "Session" and e.get("name") == "model_run"]
    kernels = sorted((e["ts"], e["dur"]) for e in events
                     if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"))
    starts = np.array([k[0] for k in kernels])
    durs = np.array([k[1] for k in kernels], dtype=np.float64)
    sums = []
    for a, b in runs:
        i, j = np.searchsorted(starts, a), np.searchsorted(starts, b, side="right")
        sums.append(float(durs[i:j].sum()) / 1000.0)
    return sums


def tvm_kernel_sum(backend, loaded, *, key, config, timeout_s):
    """A Measurement of ``loaded`` on TVM whose runs are the summed durations of its kernel
    calls (the VM's instrument callback around every call; the VM's builtins are left out)."""
    from ..backends.tvm_llvm import timed_calls

    start = time.perf_counter()
    timing, runs = timed_calls(_compiled(backend, loaded).fresh(), config or backend.config,
                               lambda symbol: not symbol.startswith("vm.builtin"),
                               timeout_s=timeout_s, start=start)
    sums = [sum(ms for _, ms in run) for run in runs]
    return _measurement(backend, key, timing, sums, time.perf_counter() - start)


_COMPILED: dict = {}


def _compiled(backend, loaded):
    """The compiled model, kept for the next sessions of the same model (a rule's parts are
    timed in interleaved sessions; compiling costs more than timing)."""
    if loaded.digest not in _COMPILED:
        while len(_COMPILED) >= 16:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[loaded.digest] = backend.prepare(loaded)
    return _COMPILED[loaded.digest]


KERNEL_SUMS = {"ort-cpu": ort_kernel_sum, "tvm-llvm": tvm_kernel_sum}


def _measurement(backend, key, timing, sums, total_s):
    """A store record of the per-run kernel sums: ``median_ms`` is their interquartile mean
    (the profiler counts whole microseconds; the mean of the middle half resolves less)."""
    from ..backends.base import Measurement
    from ..backends.machine import describe_machine

    ok = timing.ok and len(sums) > 0
    v = np.sort(np.asarray(sums, dtype=np.float64))
    q = len(v) // 4
    return Measurement(
        backend=backend.name, backend_version=backend.version(), key=key,
        median_ms=float(v[q: len(v) - q].mean()) if ok else None,
        p10_ms=float(np.percentile(v, 10)) if ok else None,
        p90_ms=float(np.percentile(v, 90)) if ok else None,
        runs=len(sums), total_s=total_s, drift=timing.drift, core=timing.core,
        threads=backend.threads, machine=describe_machine(),
        timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        status="ok" if ok else "failed",
        error=None if ok else f"{backend.name}: kernel-sum timing failed: {timing.error}",
        attempts=timing.attempts, reference_ms=timing.reference_ms)
