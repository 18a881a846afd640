"""The timing protocol of ``shared/MEASURE.md``: one function, :func:`measure_callable`, that every
backend uses to time a prepared model.

One attempt = pin the thread to one core, take the machine-wide lock, switch the thread to
SCHED_FIFO when permitted (so other processes cannot preempt it), read the reference
workload, warm up (>= 5 runs and >= 0.2 s), time runs with ``perf_counter_ns`` (>= 30 runs and
>= 0.5 s; a slow model stops at ``max_time_s``), read the reference again (and every
``reference_every_s`` between runs), release.  If the median of the readings drifted more
than 5 % from the session baseline, or runs in which another process took the core moved the
median run by more than 5 % (:func:`attempt_drift`), wait until the reference reads quiet
again (:func:`wait_quiet`) and measure again (up to ``max_attempts``; the attempt with the
least drift is kept and its drift recorded).  Past the time limit the measurement is failed,
never a number.

What it does not handle: a single run that hangs is not interrupted (the limit is checked
between runs), and processes that do not take the lock are only caught by the drift guard.
"""
from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field, fields

import numpy as np

from ..errors import MeasurementError

# a measurement whose reference workload drifted more than this in every attempt is not used
# (the evaluation measures it again; the builder takes no sample or calibration time from it)
DRIFT_LIMIT = 0.05


def within_drift(drift: float | None) -> bool:
    """The drift rule, defined once: a reading is usable when its reference drifted no more
    than ``DRIFT_LIMIT`` (None: no reference was read, e.g. an older record: taken as it is)."""
    return (drift or 0.0) <= DRIFT_LIMIT

DEFAULT_LOCK_PATH = os.path.join(tempfile.gettempdir(), "nnmeter-tvm-measure.lock")
# the cores this process may use, read before any runtime pins its threads
_ALLOWED = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else {0}


@dataclass(frozen=True)
class ProtocolConfig:
    """Knobs of the protocol; the defaults are MEASURE.md's.  Lower ``min_runs`` / ``min_time_s``
    only on purpose (e.g. a sampler timing thousands of tiny kernels) and say so in results."""

    warmup_runs: int = 5
    warmup_s: float = 0.2
    min_runs: int = 30
    min_time_s: float = 0.5
    max_time_s: float = 10.0      # a slow model stops timing here (once it has floor_runs)
    floor_runs: int = 5
    drift_limit: float = DRIFT_LIMIT
    reference_every_s: float = 0.25   # also read the reference between runs this often
    max_attempts: int = 6
    retry_wait_s: float = 1.0     # wait before attempt k+1: min(k * retry_wait_s, 5 s)
    core: int | None = None       # None: the highest-numbered core this process may use
                                  # (the same one in every process, so the lock guards it)
    realtime: bool = True         # run each batch under SCHED_FIFO when permitted (root)
    # the machine-wide lock (default: DEFAULT_LOCK_PATH when the config is made); None: none
    lock_path: str | None = field(default_factory=lambda: DEFAULT_LOCK_PATH)

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("core", "lock_path") or value is None:
                continue
            if value < 0 or (f.name in ("min_runs", "floor_runs", "max_attempts") and value < 1):
                raise ValueError(f"ProtocolConfig.{f.name} must be >= {0 if value < 0 else 1}, "
                                 f"got {value!r}")


@dataclass(frozen=True)
class Timing:
    """What :func:`measure_callable` returns; ``status`` is ``"ok"`` or ``"failed"``."""

    status: str
    median_ms: float | None
    p10_ms: float | None
    p90_ms: float | None
    runs: int
    total_s: float
    drift: float | None
    attempts: int
    core: int | None
    error: str | None = None
    # calls of fn before the kept attempt's first timed run: a caller that records something
    # per call (profiler events, per-kernel times) keeps calls [first_run, first_run + runs)
    first_run: int = 0
    reference_ms: float | None = None  # the reference's session baseline (see Measurement)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def kept(self, per_call: list) -> list:
        """The entries of a per-call record that belong to the kept attempt's timed runs."""
        return list(per_call[self.first_run: self.first_run + self.runs]) if self.ok else []


def baseline_ms(reference) -> float | None:
    """The reference's session baseline in ms, as a measurement records it."""
    return None if reference.baseline is None else reference.baseline * 1e3


class ReferenceWorkload:
    """A fixed pure-Python workload (3,000 integer multiply-adds, about 0.1 ms) timed around
    and between a model's runs.

    Why pure Python: it has almost no data, so what a model's runs leave in the caches should
    not slow it.  On an Intel Xeon VM, with the numpy sort + exp over 64 KiB used before, the
    guard still flagged 17.3 % of 52 measurements after all retries (51.9 % measured again);
    with this loop, 1.9 % (26.9 %), the models repeating within ±10 % either way (2026-11-29,
    ``benchmarks/results/reference-median/``).  It still slows with the core's clock and with
    another process on the core, but not with memory contention from the other core.

    ``read()`` returns seconds: the median of ``reps`` repetitions after ``warm`` discarded
    ones.  The baseline is the session's first value (median of 3 readings) and is lowered only
    when attempts keep reading clearly faster (it was then taken in a slow state:
    :meth:`settle`).  Tests inject ``timer``: a callable that returns one reading in seconds.
    """

    LOWER_AFTER = 3

    def __init__(self, *, timer=None, reps: int = 21, warm: int = 3, size: int = 3000):
        self._timer = timer
        self._faster = 0
        self.reps, self.warm, self.size = reps, warm, size
        self.baseline: float | None = None

    def _once(self) -> float:
        t = time.perf_counter_ns()
        acc = 0
        for i in range(self.size):
            acc += i * i
        return (time.perf_counter_ns() - t) * 1e-9

    def read(self) -> float:
        if self._timer is not None:
            return float(self._timer())
        times = [self._once() for _ in range(self.warm + self.reps)]
        return float(np.median(times[self.warm:]))

    def calibrate(self) -> float:
        self.baseline = float(np.median([self.read() for _ in range(3)]))
        return self.baseline

    def drift(self, reading: float) -> float:
        """Relative deviation of ``reading`` from the baseline (``reading`` becomes the
        baseline when there is none)."""
        if self.baseline is None:
            self.baseline = reading
        return abs(reading / self.baseline - 1.0)

    def settle(self, reading: float, limit: float = DRIFT_LIMIT) -> None:
        """Lower a baseline taken in a slow state: after ``LOWER_AFTER`` attempts in a row
        that read clearly faster, the latest reading becomes the baseline.  Not after one: an
        attempt's median reading scatters by about 5 % on a noisy host, and lowering on every
        faster one ratchets the baseline down to the fastest, then flags everything."""
        faster = self.baseline is not None and reading < self.baseline * (1 - limit)
        self._faster = self._faster + 1 if faster else 0
        if self._faster >= self.LOWER_AFTER:
            self.baseline, self._faster = reading, 0


def reading_drift(reference: ReferenceWorkload, readings: list[float],
                  limit: float = DRIFT_LIMIT) -> float:
    """How far the median of an attempt's reference readings (before, between and after the
    runs) sits from the baseline.  The median, not the worst reading, because a model's time
    is a median too: only a change of speed that lasts through most of the attempt moves it.
    On a host whose single readings scatter by 10-30 % while the models repeat within 3 % (an
    Intel Xeon VM, 2026-11-29, ``benchmarks/results/reference-median/``), the worst reading
    flagged every measurement."""
    reading = float(np.median(readings))
    reference.settle(reading, limit)
    return reference.drift(reading)


def attempt_drift(reference: ReferenceWorkload, readings: list[float], runs_ns: list[int],
                  cpu_ns: list[int], limit: float = DRIFT_LIMIT) -> float:
    """An attempt's drift: :func:`reading_drift`, or how far the median run moved because of
    runs the thread was preempted in (CPU time below ``1 - limit`` of the run's wall time:
    another process or the hypervisor had the core), whichever is larger.  The second is the
    median of all runs against that of the others (1.0 when every run was preempted), not the
    batch's CPU share: a hypervisor that took 10 % of a batch's time in short bursts read as
    10 % drift while it moved the median by at most 3 % (same host)."""
    clean = [w for w, c in zip(runs_ns, cpu_ns) if c >= (1.0 - limit) * w]
    preempted = abs(float(np.median(runs_ns)) / float(np.median(clean)) - 1.0) if clean else 1.0
    return max(reading_drift(reference, readings, limit), preempted)


_DEFAULT_REFERENCE: ReferenceWorkload | None = None


def default_reference() -> ReferenceWorkload:
    """The process-wide reference: its baseline is this session's start value."""
    global _DEFAULT_REFERENCE
    if _DEFAULT_REFERENCE is None:
        _DEFAULT_REFERENCE = ReferenceWorkload()
    return _DEFAULT_REFERENCE


@contextlib.contextmanager
def pinned(core: int | None = None):
    """Pin the calling thread to one core for the block; yields the core (None off Linux)."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    chosen = max(_ALLOWED) if core is None else core
    try:
        os.sched_setaffinity(0, {chosen})
    except OSError:
        raise MeasurementError(f"cannot pin to core {chosen}: this process may use cores "
                               f"{sorted(_ALLOWED)}; set ProtocolConfig.core to one of them"
                               ) from None
    try:
        yield chosen
    finally:
        os.sched_setaffinity(0, before)


_lock_state = threading.local()


@contextlib.contextmanager
def machine_lock(path: str | None = DEFAULT_LOCK_PATH):
    """Hold the machine-wide measuring lock (``flock``); yields the seconds spent waiting.

    Re-entrant within a thread (flock would deadlock on a second descriptor of this process).
    """
    depth = getattr(_lock_state, "depth", 0)
    if path is None or depth:
        _lock_state.depth = depth + 1
        try:
            yield 0.0
        finally:
            _lock_state.depth = depth
        return
    t = time.perf_counter()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _lock_state.depth = 1
        try:
            yield time.perf_counter() - t
        finally:
            _lock_state.depth = 0
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def realtime(enabled: bool = True):
    """Run the calling thread under SCHED_FIFO (priority 1) for the block, when permitted;
    yields whether it is.  On a shared machine other processes share the pinned core, and
    ``nice`` cannot stop that (autogroups); a real-time thread is never preempted by them."""
    if not enabled or not hasattr(os, "sched_setscheduler"):
        yield False
        return
    try:
        policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except OSError:          # not root / no CAP_SYS_NICE: the CPU-share guard still watches
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, policy, param)


@contextlib.contextmanager
def quiet(config: ProtocolConfig | None = None):
    """Pinned + locked + real-time + no garbage collection: for any timed region."""
    config = config or ProtocolConfig()
    with pinned(config.core) as core, machine_lock(config.lock_path) as waited:
        was = gc.isenabled()
        gc.disable()
        try:
            with realtime(config.realtime):
                yield core, waited
        finally:
            if was:
                gc.enable()


def wait_quiet(reference: ReferenceWorkload, max_wait_s: float, *,
               limit: float = DRIFT_LIMIT, core: int | None = None, poll_s: float = 0.1) -> float:
    """Wait after a drifted attempt until the reference reads within ``limit`` twice in a row
    on the measuring core (the contention is over), or at most ``max_wait_s``; returns the
    seconds waited.  Why not a fixed sleep: contention on this host lasts from tens of ms to
    tens of s, and a sleep long enough for the long bursts spent most of an evaluation's
    measuring time waiting out short ones (``--quick``, 2026-11-27: the 32 of 128 model
    measurements that needed a retry took 254 of its 333 s)."""
    start = time.perf_counter()
    quiet_reads = 0
    with pinned(core):
        while quiet_reads < 2 and (left := max_wait_s - (time.perf_counter() - start)) > 0:
            time.sleep(min(poll_s, left))
            drifted = reference.drift(reference.read()) > limit
            quiet_reads = 0 if drifted else quiet_reads + 1
    return time.perf_counter() - start


class _Timeout(Exception):
    pass


def _batch(fn, config: ProtocolConfig, deadline: float, clock,
           probe) -> tuple[list[int], list[int]]:
    """Warm up, then time runs, calling ``probe()`` (a reference reading) every
    ``reference_every_s`` between runs.  Returns each run's wall time and the CPU time this
    thread spent in it, in ns (less CPU than wall: it was preempted).  Raises _Timeout.
    A real-time thread pauses 60 ms every 0.5 s so the kernel's RT throttling (50 ms/s) never
    cuts into a run."""
    t0, n = clock(), 0
    while True:
        fn()
        n += 1
        now = clock()
        if now > deadline:
            raise _Timeout(f"warm-up run {n}")
        if n >= config.warmup_runs and now - t0 >= config.warmup_s:
            break
        if now - t0 >= config.max_time_s / 2:   # a slow model: warm up by time, not count
            break
    samples, t0 = [], clock()
    last_probe = last_pause = t0
    cpu = []
    while True:
        c = time.thread_time_ns()
        a = time.perf_counter_ns()
        fn()
        b = time.perf_counter_ns()
        cpu.append(time.thread_time_ns() - c)
        samples.append(b - a)
        now = clock()
        if now > deadline:
            raise _Timeout(f"timed run {len(samples)}")
        if len(samples) >= config.min_runs and now - t0 >= config.min_time_s:
            return samples, cpu
        if now - t0 >= config.max_time_s and len(samples) >= config.floor_runs:
            return samples, cpu
        if config.reference_every_s and now - last_probe >= config.reference_every_s:
            probe()
            last_probe = clock()
        if config.realtime and now - last_pause >= 0.5:
            time.sleep(0.06)
            last_pause = clock()


def measure_callable(fn, *, config: ProtocolConfig | None = None, timeout_s: float = 60.0,
                     start: float | None = None, reference: ReferenceWorkload | None = None,
                     clock=time.perf_counter) -> Timing:
    """Time ``fn()`` under the protocol.  ``start`` (a ``clock()`` value) lets the time limit
    include work done before, e.g. building the session; waiting for the lock does not count."""
    config = config or ProtocolConfig()
    reference = reference or default_reference()
    start = clock() if start is None else start
    deadline = start + timeout_s
    best, attempt, core = None, 0, None
    calls = 0

    def counted():
        nonlocal calls
        calls += 1
        fn()

    while attempt < config.max_attempts:
        attempt += 1
        readings = []
        try:
            with quiet(config) as (core, waited):
                deadline += waited
                if reference.baseline is None:
                    reference.calibrate()
                readings.append(reference.read())
                samples, cpu = _batch(counted, config, deadline, clock,
                                      lambda: readings.append(reference.read()))
                readings.append(reference.read())
        except _Timeout as exc:
            return Timing("failed", None, None, None, 0, clock() - start, None, attempt, core,
                          f"exceeded the {timeout_s:g} s time limit (during {exc})")
        drift = attempt_drift(reference, readings, samples, cpu, config.drift_limit)
        if best is None or drift < best[0]:
            best = (drift, samples, calls - len(samples))
        if drift <= config.drift_limit:
            break
        wait = min(config.retry_wait_s * attempt, 5.0)
        if attempt >= config.max_attempts or clock() + wait > deadline:
            break
        wait_quiet(reference, wait, limit=config.drift_limit, core=core)
    drift, samples, first = best
    ms = np.asarray(samples, dtype=np.float64) * 1e-6
    return Timing("ok", float(np.median(ms)), float(np.percentile(ms, 10)),
                  float(np.percentile(ms, 90)), len(samples), clock() - start, float(drift),
                  attempt, core, first_run=first, reference_ms=baseline_ms(reference))
