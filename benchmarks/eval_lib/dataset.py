"""The evaluation dataset: which zoo models, and their measurements (two passes, cached).

Models are zoo variants of **seed 0** (the predictor's builder draws its kernels' prior from
zoo seed 1000, so no evaluation model was seen while building).  Variant ``index`` of a family
goes to the **train split** when even and to the **test split** when odd; the split only
matters to the model-level baselines, which are fitted on whole-model latencies of the train
split.  The kernel-level predictor is trained on kernel samples, never on these models.

Every model is measured twice under the protocol (shared/MEASURE.md), in two passes of
different order (pass A in a seeded random order, pass B in the reverse of it), each under its
own store key ``eval:<backend>:<model>@<sha256[:12] of the model>:<pass>:clean``, timed by
:func:`.timing.measure_clean` (the protocol plus a filter dropping preempted runs).  The two
passes' agreement is the noise ceiling.  Where they disagree by more than ``TIEBREAK_AT`` (5 %),
a third pass (C, after both, in pass A's order) breaks the tie: one session of this machine can
run a model 20-60 % slower than the next (seen on MobileNetV2 and NAS-Bench-201 cells), and the
mean of a slow and a normal session is neither.  The ground truth is the mean of the two
medians, or the median of the three when pass C was needed.  A rerun skips every key
already in the store, so a stopped evaluation resumes where it stopped and a finished one only
predicts.  The content hash in the key means a changed zoo generator is measured anew.
"""
from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .timing import measure_clean
from .timing import prepare as prepare_runner

PASSES = ("A", "B")
TIEBREAK = "C"       # the third pass, taken only where A and B disagree
TIEBREAK_AT = 0.05  # ... by more than this fraction of their mean
MOBILE = ("mobilenetv1", "mobilenetv2", "mobilenetv3", "shufflenetv2", "mnasnet", "proxylessnas")
SEED = 0


@dataclass(frozen=True)
class Plan:
    """Which models: ``per_family`` variants of each of ``families`` plus ``nasbench201``
    cells, at ``input_size`` (None: each family's default size)."""

    families: tuple[str, ...]
    per_family: int
    nasbench201: int
    input_size: int | None = None
    nb201_input_size: int | None = None
    note: str = ""
    chunk: int | None = None  # see measure(): models built once per group of this many

    def items(self) -> list["Item"]:
        out = [Item(f, SEED, i, self.input_size) for f in self.families
               for i in range(self.per_family)]
        out += [Item("nasbench201", SEED, i, self.nb201_input_size)
                for i in range(self.nasbench201)]
        return out


def plan_for(backend: str, quick: bool) -> Plan:
    """The dataset of each backend (documented in the report)."""
    from nnmeter_tvm import zoo

    cnn = tuple(f for f in zoo.FAMILIES if f != "nasbench201")
    if backend == "ort-cpu":
        if quick:
            return Plan(cnn, 4, 8, note="--quick: 4 variants per family, 8 NAS-Bench-201 cells")
        return Plan(cnn, 40, 200, note="40 variants per family, 200 NAS-Bench-201 cells, "
                                       "each family at its default input size")
    if backend == "tvm-llvm":
        # untuned TVM is 10-100x slower than onnxruntime and compiles every model (twice: one
        # compile per pass): the mobile families at 64 x 64 and NAS-Bench-201 at its 32 x 32.
        if quick:
            return Plan(MOBILE, 1, 4, input_size=64, chunk=10,
                        note="--quick: 1 variant of each mobile family at 64x64, 4 NAS-Bench-201 "
                             "cells at 32x32")
        return Plan(MOBILE, 8, 32, input_size=64, chunk=10,
                    note="the 6 mobile families, 8 variants each at input 64x64 (untuned TVM "
                         "compiles each model in 20-60 s and runs 10-100x slower than onnxruntime), "
                         "plus 32 NAS-Bench-201 cells at their 32x32; the classic CNNs (AlexNet, VGG, "
                         "DenseNet, ResNet, SqueezeNet, GoogLeNet) are left out for time")
    raise ValueError(f"plan_for: no evaluation plan for backend {backend!r}; "
                     "valid: ort-cpu, tvm-llvm")


@dataclass(frozen=True)
class Item:
    family: str
    seed: int
    index: int
    input_size: int | None = None

    @property
    def name(self) -> str:
        size = f"_r{self.input_size}" if self.input_size else ""
        return f"{self.family}_s{self.seed}_i{self.index}{size}"

    @property
    def split(self) -> str:
        return "train" if self.index % 2 == 0 else "test"

    def model(self):
        from nnmeter_tvm import zoo

        return zoo.generate(self.family, self.seed, self.index, self.input_size)


@dataclass
class Entry:
    """One evaluation model: its graph (no weights kept), store key and its measurements."""

    item: Item
    graph: object
    digest: str
    ms: dict = field(default_factory=dict)      # pass -> median ms
    error: str | None = None

    def key(self, backend: str, pass_: str) -> str:
        # ":clean": timed by eval_lib.timing (protocol + preemption filter)
        return f"eval:{backend}:{self.item.name}@{self.digest[:12]}:{pass_}:clean"

    @property
    def needs_tiebreak(self) -> bool:
        if not all(p in self.ms for p in PASSES):
            return False
        a, b = (self.ms[p] for p in PASSES)
        return abs(a - b) > TIEBREAK_AT * (a + b) / 2

    @property
    def complete(self) -> bool:
        return all(p in self.ms for p in PASSES) and (TIEBREAK in self.ms
                                                      or not self.needs_tiebreak)

    @property
    def measured_ms(self) -> float:
        if self.needs_tiebreak:
            return float(np.median([self.ms[p] for p in PASSES + (TIEBREAK,)]))
        return float(np.mean([self.ms[p] for p in PASSES]))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _source_hash() -> str:
    """Hash of the code that makes an evaluation graph (zoo generators, importer, graph IR)."""
    import nnmeter_tvm

    root = Path(nnmeter_tvm.__file__).parent
    files = sorted((root / "zoo").glob("*.py")) + [root / f for f in
                                                    ("onnx_import.py", "graph.py", "ops.py")]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def prepare(items, progress: bool = True, cache_dir=None) -> list[Entry]:
    """Generate each model once for its graph and content hash (weights are dropped).

    With ``cache_dir``, the (graph, hash) pairs are kept in a local pickle named after the hash
    of the zoo and importer sources, so a rerun skips generating (a changed generator or
    importer makes a new cache file).  A private speed-up cache, never shipped.
    """
    import pickle

    from nnmeter_tvm.onnx_import import load_graph

    cache, path = {}, None
    if cache_dir is not None:
        path = Path(cache_dir).expanduser() / f"eval-graphs-{_source_hash()}.pkl"
        if path.is_file():
            try:
                cache = pickle.loads(path.read_bytes())
            except Exception:  # a cut write: regenerate
                cache = {}
    out, t0, new = [], time.monotonic(), 0
    for n, item in enumerate(items, 1):
        if item.name in cache:
            graph, digest = cache[item.name]
        else:
            model = item.model()
            digest = hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()
            graph = load_graph(model)
            cache[item.name] = (graph, digest)
            new += 1
        out.append(Entry(item, graph, digest))
        if progress and new and (n % 50 == 0 or n == len(items)):
            log(f"  generated {n}/{len(items)} models ({time.monotonic() - t0:.0f} s)")
    if path is not None and new:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(cache, protocol=pickle.HIGHEST_PROTOCOL))
        tmp.replace(path)
    return out


def load_cached(entries, backend, store) -> int:
    """Fill ``entry.ms`` from the store (this backend version only); returns how many found."""
    version = backend.version()
    found = 0
    for e in entries:
        for p in PASSES + (TIEBREAK,):
            m = store.get(backend.name, e.key(backend.name, p), backend_version=version)
            if m is not None and m.steady:
                e.ms[p] = m.median_ms
                found += 1
            elif e.error is None:
                failed = store.rows(backend.name, e.key(backend.name, p), status="failed",
                                    backend_version=version)
                if failed:
                    e.error = failed[-1].error or "failed"
    return found


def truth_cpu(results: dict) -> str | None:
    """The CPU a results file's ground truth was measured on: that of the file it took its
    truth from, if it did (recorded since 2026-11-29), else its own machine's."""
    earlier = (results.get("dataset") or {}).get("truth_from") or {}
    return earlier.get("cpu_model") or (results.get("machine") or {}).get("cpu_model")


def load_results(entries, path, trust_names: bool = False) -> dict:
    """Fill what ``entry.ms`` lacks from an earlier results file's per-model records (the
    ``--truth-from`` of evaluate.py): the store of the machine that measured them, carried in
    the repository.  A record counts only when its model's content hash equals this entry's.
    Files written before the hash was recorded have none: with ``trust_names`` their records
    are matched by model name, which holds only while the zoo generators and the importer are
    unchanged since the file was written (``git log nnmeter_tvm/zoo``).  Returns what was taken."""
    import json

    data = json.loads(Path(path).read_text())
    by_name = {r["model"]: r for r in data.get("models", [])}
    names = {"A": "pass_a_ms", "B": "pass_b_ms", TIEBREAK: "pass_c_ms"}
    models, passes, by_name_only = 0, 0, 0
    for e in entries:
        rec = by_name.get(e.item.name)
        digest = rec.get("digest") if rec else None
        if rec is None or (digest != e.digest and not (digest is None and trust_names)):
            continue
        took = [p for p, f in names.items() if p not in e.ms and rec.get(f) is not None]
        for p in took:
            e.ms[p] = float(rec[names[p]])
        models += bool(took)
        passes += len(took)
        by_name_only += bool(took) and digest is None
    earlier = (data.get("dataset") or {}).get("truth_from") or {}  # it took its truth too
    return {"file": str(path), "date": earlier.get("date") or data.get("date"),
            "cpu_model": truth_cpu(data), "backend": data.get("backend"),
            "backend_version": data.get("backend_version"), "models": models, "passes": passes,
            "matched_by_name": by_name_only}


def pass_order(n: int, pass_: str, seed: int = 0) -> list[int]:
    """Pass A: a seeded permutation; pass B: its reverse (a different order, far in time)."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    return order if pass_ == "A" else order[::-1]


def measure(entries, backend, store, *, chunk: int | None = None, timeout_s: float = 120.0,
            budget_s: float | None = None, progress: bool = True) -> dict:
    """Measure what the store lacks; stops (resumably) past ``budget_s``.

    ``chunk=None``: pass A over the whole dataset in a seeded random order, then pass B in the
    reverse order (each measurement builds its own session).  ``chunk=k`` (for backends whose
    build is slow, e.g. TVM compiling a model in ~20 s): the same order cut into groups of k
    models, each model built once per group and timed in pass A, then in pass B over the group
    in reverse order, so the two passes are still taken in different orders at different times.
    Then the tie-break pass C, in pass A's order, over the models whose A and B disagree.
    """
    from nnmeter_tvm.errors import NNMeterError

    t0 = time.monotonic()
    todo = sum(1 for e in entries for p in PASSES if p not in e.ms and e.error is None)
    count = {"done": 0, "failed": 0}
    log(f"  measuring {todo} of {2 * len(entries)} model-passes on {backend.name} "
        f"(the rest are in the store {store.path})")

    def take(e, p, runners=None) -> bool:
        """One pass of one model; False once the budget is spent."""
        if p in e.ms or e.error is not None:
            return True
        if budget_s is not None and time.monotonic() - t0 >= budget_s:
            return False
        key = e.key(backend.name, p)
        try:
            runner = None if runners is None else runners.get(e.item.name)
            if runner is None:
                runner = prepare_runner(backend, e.item.model(), key=key, store=store)
                if runners is not None:
                    runners[e.item.name] = runner
            m = measure_clean(backend, key=key, store=store, runner=runner, timeout_s=timeout_s)
        except NNMeterError as exc:  # recorded failed in the store
            e.error = str(exc).splitlines()[0][:300]
            count["failed"] += 1
            return True
        count["done"] += 1
        if m.steady:
            e.ms[p] = m.median_ms
        elif not m.ok:
            e.error = m.error or "failed"
            count["failed"] += 1
        # else: every attempt drifted; left for a quieter rerun
        done = count["done"]
        if progress and (done % 10 == 0 or done == todo):
            el = time.monotonic() - t0
            eta = el / done * max(0, todo - done - count["failed"])
            log(f"  pass {p}: {done}/{todo} measured, {count['failed']} failed, {el:.0f} s, "
                f"~{eta:.0f} s left  [{e.item.name}: {m.median_ms or float('nan'):.3f} ms]")
        return True

    order = pass_order(len(entries), "A")
    groups = [order] if chunk is None else [order[i:i + chunk] for i in range(0, len(order), chunk)]
    going = True
    for group in groups:
        runners = None if chunk is None else {}
        for p in PASSES:
            for i in (group if p == "A" else group[::-1]):
                going = going and take(entries[i], p, runners)
    ties = [i for i in order if entries[i].needs_tiebreak and TIEBREAK not in entries[i].ms]
    if going and ties:
        log(f"  pass {TIEBREAK}: {len(ties)} models whose passes A and B disagree by more than "
            f"{TIEBREAK_AT:.0%}")
        todo += len(ties)
        for i in ties:
            going = going and take(entries[i], TIEBREAK)
    return {"measured_now": count["done"], "failed_now": count["failed"],
            "seconds": time.monotonic() - t0, "stopped_by_budget": not going}
