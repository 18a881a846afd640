"""The measurement store: append-only, latest-ok lookup, resume, and a kill mid-write."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nnmeter_tvm
from nnmeter_tvm.backends.base import Measurement
from nnmeter_tvm.backends.store import Store, default_path

MACHINE = {"cpu_model": "Test CPU", "cpu_flags": ["avx2", "fma"], "cores": 2}


def m(key, median=1.0, status="ok", version="1.0", backend="ort-cpu", ts="2026-01-01T00:00:00"):
    ok = status == "ok"
    return Measurement(backend, version, key, median if ok else None, median * 0.9 if ok else None,
                       median * 1.1 if ok else None, 30 if ok else 0, 0.7, 0.01, 1, 1, MACHINE,
                       ts, status, None if ok else "exceeded the 60 s time limit")


def test_add_get_rows_keys(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        s.add(m("a", 1.0))
        s.add(m("a", 2.0, ts="2026-01-02T00:00:00"))
        s.add(m("a", status="failed"))
        s.add(m("b", 3.0, version="2.0"))
        got = s.get("ort-cpu", "a")
        assert got.median_ms == 2.0 and got.machine == MACHINE and got.status == "ok"
        assert s.get("ort-cpu", "b", backend_version="1.0") is None
        assert s.get("tvm-llvm", "a") is None
        assert len(s.rows("ort-cpu", "a")) == 3
        assert [r.status for r in s.rows(key="a", status="failed")] == ["failed"]
        assert s.keys("ort-cpu") == {"a", "b"}
        assert s.keys("ort-cpu", status="failed") == {"a"}
        assert s.has("ort-cpu", "b") and not s.has("ort-cpu", "zzz")


def test_round_trip_keeps_every_field(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        s.add(m("k", 1.5))
        assert s.rows()[0] == m("k", 1.5)


def test_the_reference_baseline_round_trips_and_an_older_store_gains_its_column(tmp_path):
    import dataclasses
    import sqlite3

    path = tmp_path / "old.sqlite"
    with Store(path) as s:
        s.add(m("old", 1.0))
    db = sqlite3.connect(path)  # as a store written before the column existed
    db.execute("ALTER TABLE measurements DROP COLUMN reference_ms")
    db.commit()
    db.close()
    with Store(path) as s:
        assert s.get("ort-cpu", "old").reference_ms is None
        s.add(dataclasses.replace(m("new", 2.0), reference_ms=0.105))
    with Store(path) as s:  # opened again: nothing left to add
        assert s.get("ort-cpu", "new").reference_ms == 0.105
    db = sqlite3.connect(path)
    assert [r[1] for r in db.execute("PRAGMA table_info(measurements)")].count("reference_ms") == 1
    db.close()


def test_path_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NNMETER_TVM_STORE", str(tmp_path / "env.sqlite"))
    assert default_path() == tmp_path / "env.sqlite"
    with Store() as s:
        assert s.path == tmp_path / "env.sqlite"
    monkeypatch.delenv("NNMETER_TVM_STORE")
    assert default_path() == Path("~/.cache/nnmeter-tvm/measurements.sqlite").expanduser()


def test_rows_survive_a_process_killed_mid_append(tmp_path):
    """A writer appending as fast as it can is SIGKILLed; every row it reported committed is
    there, intact, and a new process can append after it."""
    path = tmp_path / "s.sqlite"
    package_root = str(Path(nnmeter_tvm.__file__).resolve().parent.parent)
    writer = textwrap.dedent(f"""
        import sys
        from nnmeter_tvm.backends.base import Measurement
        from nnmeter_tvm.backends.store import Store
        s = Store({str(path)!r})
        i = 0
        while True:
            s.add(Measurement("ort-cpu", "1.0", f"k{{i}}", 1.0 + i, 1.0, 2.0 + i, 30, 0.5, 0.0,
                              1, 1, {{"cpu_model": "x" * 2000}}, "2026-01-01T00:00:00"))
            print(i, flush=True)
            i += 1
        """)
    env = {**os.environ, "PYTHONPATH": package_root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True,
                            env=env)
    try:
        last = -1
        while last < 50:
            line = proc.stdout.readline()
            assert line, "writer died before writing"
            last = int(line)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    with Store(path) as s:
        rows = s.rows("ort-cpu")
        assert len(rows) >= last + 1
        for i, r in enumerate(rows):          # contiguous and intact, in order
            assert r.key == f"k{i}" and r.median_ms == 1.0 + i and r.p90_ms == 2.0 + i
            assert r.machine["cpu_model"] == "x" * 2000
        s.add(m("after"))                      # and the job can resume
        assert "after" in s.keys("ort-cpu")
        assert {f"k{i}" for i in range(last + 1)} <= s.keys("ort-cpu")


def test_failed_is_never_returned_as_a_number(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        s.add(m("x", status="failed"))
        assert s.get("ort-cpu", "x") is None
        assert s.rows(key="x")[0].median_ms is None


def test_a_file_that_is_not_a_store_is_a_one_line_error(tmp_path):
    from nnmeter_tvm.errors import MeasurementError

    bad = tmp_path / "notes.txt"
    bad.write_text("not sqlite " * 100)
    with pytest.raises(MeasurementError, match="notes.txt: cannot open it"):
        Store(bad)
