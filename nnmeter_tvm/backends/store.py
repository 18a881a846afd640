"""The measurement store: an append-only SQLite table, one row per measurement, each committed
as it is added (WAL mode), so a job killed mid-way loses nothing it had measured and resumes by
skipping the keys already stored (:meth:`Store.has` / :meth:`Store.keys`).  Rule detection also
writes marker rows around each measurement, so that it skips a test model that crashed the
backend when it resumes (:meth:`Store.mark`).

Path: the ``path`` argument, else ``$NNMETER_TVM_STORE``, else
``~/.cache/nnmeter-tvm/measurements.sqlite``.  Several processes may append at once.
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from ..errors import MeasurementError
from .base import Measurement, _now

DEFAULT_PATH = Path("~/.cache/nnmeter-tvm/measurements.sqlite")

_COLUMNS = (
    ("backend", "TEXT NOT NULL"), ("backend_version", "TEXT NOT NULL"), ("key", "TEXT NOT NULL"),
    ("status", "TEXT NOT NULL"), ("median_ms", "REAL"), ("p10_ms", "REAL"), ("p90_ms", "REAL"),
    ("runs", "INTEGER"), ("total_s", "REAL"), ("drift", "REAL"), ("attempts", "INTEGER"),
    ("core", "INTEGER"), ("threads", "INTEGER"), ("cpu_model", "TEXT"), ("cpu_flags", "TEXT"),
    ("machine", "TEXT"), ("timestamp", "TEXT NOT NULL"), ("error", "TEXT"),
    ("reference_ms", "REAL"),  # added 2026-11-29: older stores get it when opened (NULL)
)
_NAMES = tuple(c for c, _ in _COLUMNS)
# marker rows around one measurement (``Store.mark``): status only, no time
STARTED, FINISHED = "started", "finished"


def default_path() -> Path:
    return Path(os.environ.get("NNMETER_TVM_STORE") or DEFAULT_PATH).expanduser()


class Store:
    """``Store(path=None)``; ``add(m)``, ``get(backend, key)``, ``rows(...)``, ``keys(backend)``."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path).expanduser() if path else default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")   # WAL + NORMAL: survives a kill
            cols = ", ".join(f"{c} {t}" for c, t in _COLUMNS)
            self._db.execute(f"CREATE TABLE IF NOT EXISTS measurements "
                             f"(id INTEGER PRIMARY KEY AUTOINCREMENT, {cols})")
            self._db.execute("CREATE INDEX IF NOT EXISTS by_key ON measurements (backend, key)")
            self._add_missing_columns()
        except (OSError, sqlite3.Error) as exc:
            raise MeasurementError(f"measurement store {self.path}: cannot open it ({exc}); "
                                   "give another path with --store or NNMETER_TVM_STORE") from None

    def __repr__(self):
        return f"Store({str(self.path)!r})"

    def _add_missing_columns(self) -> None:
        """A store written by an older version lacks the newer columns: add them (their old
        rows read NULL).  Another process may add one first."""
        have = {r[1] for r in self._db.execute("PRAGMA table_info(measurements)")}
        for name, kind in _COLUMNS:
            if name not in have:
                try:
                    self._db.execute(f"ALTER TABLE measurements ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError as exc:
                    if "duplicate column" not in str(exc):
                        raise

    def close(self):
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def add(self, m: Measurement) -> None:
        """Append one measurement and commit it at once."""
        row = (m.backend, m.backend_version, m.key, m.status, m.median_ms, m.p10_ms, m.p90_ms,
               m.runs, m.total_s, m.drift, m.attempts, m.core, m.threads,
               m.machine.get("cpu_model"), " ".join(m.machine.get("cpu_flags", ())),
               json.dumps(m.machine, sort_keys=True), m.timestamp, m.error, m.reference_ms)
        marks = ", ".join("?" * len(_NAMES))
        self._db.execute(f"INSERT INTO measurements ({', '.join(_NAMES)}) VALUES ({marks})", row)

    def mark(self, backend: str, backend_version: str, key: str, *, started: bool) -> None:
        """A marker row before (``started``) and after one measurement of ``key``.  Why: a
        backend that crashes natively (onnxruntime's SIGFPE on an empty tensor) kills the
        process with no Python code left to run, so a resumed job would measure the same key
        and die again; its last marker, ``started``, tells it not to (:meth:`died_on`).  The
        marker names the process (``error``: ``pid N``)."""
        self._db.execute("INSERT INTO measurements (backend, backend_version, key, status, "
                         "timestamp, error) VALUES (?, ?, ?, ?, ?, ?)",
                         (backend, backend_version, key, STARTED if started else FINISHED,
                          _now(), f"pid {os.getpid()}"))

    def died_on(self, backend: str, key: str) -> bool:
        """Whether a process died while measuring ``key``: its last marker is ``started``, by a
        process that no longer runs (one that still runs is measuring it now)."""
        row = self._db.execute(
            "SELECT status, error FROM measurements WHERE backend = ? AND key = ? AND status IN "
            "(?, ?) ORDER BY id DESC LIMIT 1", (backend, key, STARTED, FINISHED)).fetchone()
        if row is None or row[0] != STARTED:
            return False
        return not _running(row[1])

    def rows(self, backend: str | None = None, key: str | None = None, *,
             status: str | None = None, backend_version: str | None = None) -> list[Measurement]:
        """Every stored measurement matching the filters, oldest first."""
        where, args = [], []
        for col, value in (("backend", backend), ("key", key), ("status", status),
                           ("backend_version", backend_version)):
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        sql = f"SELECT {', '.join(_NAMES)} FROM measurements"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_measurement(r) for r in self._db.execute(sql + " ORDER BY id", args)]

    def get(self, backend: str, key: str, *,
            backend_version: str | None = None) -> Measurement | None:
        """The latest successful measurement of ``key`` on ``backend`` (None if there is none)."""
        found = self.rows(backend, key, status="ok", backend_version=backend_version)
        return found[-1] if found else None

    def has(self, backend: str, key: str, *, backend_version: str | None = None) -> bool:
        return self.get(backend, key, backend_version=backend_version) is not None

    def keys(self, backend: str, *, status: str = "ok",
             backend_version: str | None = None) -> set[str]:
        """Keys already measured (to skip when resuming a job)."""
        sql = "SELECT DISTINCT key FROM measurements WHERE backend = ? AND status = ?"
        args = [backend, status]
        if backend_version is not None:
            sql += " AND backend_version = ?"
            args.append(backend_version)
        return {r[0] for r in self._db.execute(sql, args)}


def _measurement(r) -> Measurement:
    d = dict(zip(_NAMES, r))
    return Measurement(
        backend=d["backend"], backend_version=d["backend_version"], key=d["key"],
        median_ms=d["median_ms"], p10_ms=d["p10_ms"], p90_ms=d["p90_ms"], runs=d["runs"],
        total_s=d["total_s"], drift=d["drift"], core=d["core"], threads=d["threads"],
        machine=json.loads(d["machine"] or "{}"), timestamp=d["timestamp"], status=d["status"],
        error=d["error"], attempts=d["attempts"], reference_ms=d["reference_ms"])


def _running(marker: str | None) -> bool:
    """Whether the process a marker names (``pid N``) runs now, other than this one."""
    try:
        pid = int((marker or "").removeprefix("pid "))
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process
        return True
    return True
