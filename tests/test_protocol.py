"""The timing protocol: drift guard, time limit, pinning, the machine-wide lock.

No test asserts an absolute time of a model; fake reference timers drive the drift guard.
"""
import os
import subprocess
import sys
import textwrap
import time

import pytest

from nnmeter_tvm.backends import protocol
from nnmeter_tvm.backends.protocol import ProtocolConfig, ReferenceWorkload, measure_callable
from nnmeter_tvm.errors import MeasurementError


@pytest.fixture
def fast(tmp_path):
    """A protocol config that keeps tests quick (and off the shared machine lock)."""
    return ProtocolConfig(warmup_runs=2, warmup_s=0.0, min_runs=5, min_time_s=0.0,
                          reference_every_s=0.0, max_attempts=4, retry_wait_s=0.0,
                          lock_path=str(tmp_path / "measure.lock"))


def scripted(*readings):
    """A fake reference timer: the readings in order, then the last one forever."""
    values = list(readings)

    def timer():
        return values.pop(0) if len(values) > 1 else values[0]
    return timer


class Counter:
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1


def test_drift_guard_measures_again_until_the_reference_settles(fast):
    # calibration 3 x 1.0; attempt 1 reads 1.0 then 1.3 (30 % drift); attempt 2 steady
    ref = ReferenceWorkload(timer=scripted(1.0, 1.0, 1.0, 1.0, 1.3, 1.0, 1.0))
    fn = Counter()
    t = measure_callable(fn, config=fast, reference=ref)
    assert t.ok and t.attempts == 2
    assert t.drift <= fast.drift_limit
    assert fn.calls >= 2 * (fast.warmup_runs + fast.min_runs)


def test_a_timing_records_the_references_session_baseline_in_ms(fast):
    # a host state that lasts the whole session reads no drift against its own baseline: the
    # absolute baseline is what lets two sessions be compared afterwards
    ref = ReferenceWorkload(timer=scripted(0.0002))
    t = measure_callable(Counter(), config=fast, reference=ref)
    assert t.ok and t.drift == 0.0
    assert t.reference_ms == pytest.approx(0.2)


def test_drift_that_never_settles_is_recorded_with_the_best_attempt(fast):
    ref = ReferenceWorkload(timer=scripted(1.0, 1.0, 1.0, 1.2, 1.2, 1.3, 1.3, 1.25))
    t = measure_callable(Counter(), config=fast, reference=ref)
    assert t.ok and t.attempts == fast.max_attempts
    assert t.drift == pytest.approx(0.2)      # the least-drifting attempt is kept


def test_the_wait_before_a_retry_ends_when_the_reference_reads_quiet_twice_in_a_row():
    reads = []
    timer = scripted(1.3, 1.3, 1.0, 1.3, 1.0, 1.0, 1.3)
    ref = ReferenceWorkload(timer=lambda: reads.append(1) or timer())
    ref.baseline = 1.0
    protocol.wait_quiet(ref, max_wait_s=60.0, poll_s=0.0)
    assert len(reads) == 6          # one quiet reading between two drifted ones is not enough


def test_the_wait_before_a_retry_is_bounded_while_the_contention_lasts():
    ref = ReferenceWorkload(timer=lambda: 1.3)
    ref.baseline = 1.0
    assert protocol.wait_quiet(ref, max_wait_s=0.05, poll_s=0.01) >= 0.05


def test_kept_runs_are_those_of_the_best_attempt_not_the_last(fast):
    """A caller recording one entry per call keeps the best attempt's timed runs: here the
    first attempt (20 % drift) beats the later ones, so calls 2..6 (after 2 warm-up runs)."""
    ref = ReferenceWorkload(timer=scripted(1.0, 1.0, 1.0, 1.2, 1.2, 1.3, 1.3, 1.25))
    fn = Counter()
    t = measure_callable(fn, config=fast, reference=ref)
    assert t.attempts == fast.max_attempts and fn.calls == 4 * 7
    assert t.kept(list(range(fn.calls))) == [2, 3, 4, 5, 6]


def test_one_slow_reading_among_steady_ones_is_not_drift(fast):
    """The attempt's drift is its readings' median against the baseline: a single slow reading
    (a noisy host's reference scatters so) does not send the measurement round again, while a
    slowdown through most of the attempt does."""
    cfg = ProtocolConfig(**{**fast.__dict__, "reference_every_s": 1e-9, "min_runs": 4})
    one_slow = ReferenceWorkload(timer=scripted(1.0, 1.0, 1.0, 1.0, 1.4, 1.0, 1.0, 1.0, 1.0))
    t = measure_callable(Counter(), config=cfg, reference=one_slow)
    assert t.attempts == 1 and t.drift == 0.0
    ref = ReferenceWorkload(timer=lambda: 1.0)
    ref.baseline = 1.0
    assert protocol.reading_drift(ref, [1.0, 1.2, 1.2, 1.0, 1.2]) == pytest.approx(0.2)


def test_runs_the_thread_was_preempted_in_count_by_how_far_they_move_the_median():
    ref = ReferenceWorkload(timer=lambda: 1.0)
    ref.baseline = 1.0
    runs = [100] * 8 + [150, 150]              # two preempted runs of ten barely move it
    cpu = [100] * 8 + [100, 100]
    assert protocol.attempt_drift(ref, [1.0], runs, cpu) == 0.0
    runs = [100] * 4 + [150] * 6              # most runs preempted: the median moved 50 %
    cpu = [100] * 10
    assert protocol.attempt_drift(ref, [1.0], runs, cpu) == pytest.approx(0.5)
    assert protocol.attempt_drift(ref, [1.0], [150] * 3, [100] * 3) == 1.0


def test_a_faster_reference_lowers_a_baseline_taken_under_load(fast):
    """Lowered once attempts keep reading faster (three in a row), not after the first: on a
    noisy host that ratchets the baseline down to the fastest reading."""
    ref = ReferenceWorkload(timer=scripted(2.0, 2.0, 2.0, 1.0, 1.0))
    t = measure_callable(Counter(), config=fast, reference=ref)
    assert ref.baseline == 1.0 and t.drift == 0.0 and t.attempts == ref.LOWER_AFTER
    noisy = ReferenceWorkload(timer=lambda: 1.0)
    noisy.baseline = 1.0
    for reading in (0.9, 1.0, 0.9, 0.9, 1.0):
        noisy.settle(reading)
    assert noisy.baseline == 1.0


def test_reference_is_read_between_runs(fast):
    reads = Counter()
    ref = ReferenceWorkload(timer=lambda: reads() or 1.0)
    cfg = ProtocolConfig(**{**fast.__dict__, "reference_every_s": 1e-9, "min_runs": 10})
    measure_callable(Counter(), config=cfg, reference=ref)
    assert reads.calls >= 3 + 2 + 5     # calibration, before/after, and between runs


def test_a_preempted_thread_counts_as_drift(fast):
    """A run that does not use the CPU (here: sleeps; in life: another process has the core)
    leaves the thread's CPU time far below the wall time: measured again, drift recorded."""
    cfg = ProtocolConfig(**{**fast.__dict__, "max_attempts": 2, "min_runs": 3})
    t = measure_callable(lambda: time.sleep(0.002), config=cfg,
                         reference=ReferenceWorkload(timer=lambda: 1.0))
    assert t.ok and t.attempts == 2 and t.drift > 0.5


def test_realtime_falls_back_when_not_permitted(monkeypatch):
    def refuse(*args):
        raise PermissionError("not permitted")
    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    with protocol.realtime() as on:
        assert on is False
    with protocol.realtime(False) as on:
        assert on is False


def test_over_the_time_limit_is_failed_never_a_number(fast):
    t = measure_callable(lambda: time.sleep(0.02), config=fast, timeout_s=0.05,
                         reference=ReferenceWorkload(timer=lambda: 1.0))
    assert t.status == "failed" and not t.ok
    assert t.median_ms is None and t.p10_ms is None and t.p90_ms is None
    assert "time limit" in t.error


def test_statistics_are_ordered(fast):
    t = measure_callable(lambda: sum(range(200)), config=fast,
                         reference=ReferenceWorkload(timer=lambda: 1.0))
    assert t.ok and t.runs >= fast.min_runs
    assert 0 < t.p10_ms <= t.median_ms <= t.p90_ms


def test_real_reference_workload_reads_positive_seconds():
    ref = ReferenceWorkload(reps=3)
    assert ref.read() > 0 and ref.calibrate() > 0


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="min_runs"):
        ProtocolConfig(min_runs=0)
    with pytest.raises(ValueError, match="warmup_s"):
        ProtocolConfig(warmup_s=-1)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux only")
def test_pinned_uses_one_core_and_restores():
    before = os.sched_getaffinity(0)
    with protocol.pinned() as core:
        assert os.sched_getaffinity(0) == {core}
    assert os.sched_getaffinity(0) == before
    with pytest.raises(MeasurementError, match="cannot pin to core"):
        with protocol.pinned(10_000):
            pass


def test_lock_is_reentrant_in_one_thread(tmp_path):
    path = str(tmp_path / "l")
    with protocol.machine_lock(path) as w1:
        with protocol.machine_lock(path) as w2:   # would deadlock with a second flock
            assert w1 >= 0 and w2 == 0.0


def test_lock_excludes_another_process(tmp_path):
    path = str(tmp_path / "l")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({path!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("held", flush=True)
        time.sleep(1.0)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with protocol.machine_lock(path) as waited:
            assert holder.poll() is not None or waited > 0.3   # we waited for the holder
    finally:
        holder.wait(timeout=10)
