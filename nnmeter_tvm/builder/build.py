"""``nnmeter-tvm build``: sample and measure kernels, train the cost models, write a bundle.

Pipeline (each step resumable from the sample log):

1. **Prior and in-situ kernels.**  Zoo variants drawn with the build's own zoo seed (evaluation
   uses other seeds) are partitioned with the backend's rules.  Their kernels' specs form the
   sampling prior; a few of those models per family are also profiled on the backend, and each
   kernel whose node set the backend's own view confirms becomes a sample (kernel time from the
   backend's per-kernel profile, no session overhead).
2. **Initial samples.**  Specs drawn from the prior (the frequent ones first, then channel-
   rescaled neighbours), and family-agnostic ones (``Sampler.grid``), are written into small
   models, several side by side in one model, and profiled (the two kinds interleaved, so a
   build cut by its deadline has both); each kernel the backend ran becomes a sample.
3. **Adaptive rounds** (nn-Meter): train, take held-out configurations off by more than 10 %,
   draw new specs near them (channels x [0.5, 1.2], the rest kept), measure, retrain; stop when
   the held-out ±10 % accuracy stops improving, or at the time or sample budget.
4. **Overhead.**  Chains of tiny kernels (``chain_model``), which show the per-kernel cost
   that no zoo family isolates, and a few whole zoo models are timed under the protocol
   (right after step 1, so that a build cut short by its deadline still has them all; one
   whose reference drifted is timed again between packs); the per-run and per-kernel
   overheads (and a scale for profiler times) are fitted on them at the end.
5. **Bundle.**  Models, rules, the generic fallback fitted on every sample, metadata.

A profiled session gets ``attempts`` protocol attempts, not the protocol's six: on a host that
changes speed for seconds at a time the six mostly wait, and a drifted model is timed again
later instead.  ``build.phases`` in the bundle records the seconds each step took.

Samples go to a JSON-lines log (``--store``) as they are measured: a stopped build resumes
where it stopped, and a rebuild with the same log measures nothing again.  The bundle carries a
gzipped copy of the log (``samples.jsonl.gz``) and the calibration models' times, so that its
cost models can be retrained, on a subset (leave-one-family-out) or after a change of features
or training (:func:`retrain`), on any machine; :func:`extend` adds the wide grid's layers
(transformer layers, standalone pads) to a bundle, measuring those alone.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..backends.protocol import DRIFT_LIMIT, ProtocolConfig, within_drift
from ..errors import BundleError, MeasurementError, NNMeterError, unknown_name
from .kernel_models import (build_model, chain_model, pack_specs, scope_of, spec_from_kernel,
                            spec_key, specs_by_scope)
from .sampler import (EXTEND_GRIDS, GRIDS, OPS_GRID, OPS_PER_OP, Sampler, ops_op,
                      prior_from_kernels, wide_counts, wide_kind)


@dataclass(frozen=True)
class BuildConfig:
    """Budgets and sizes of one build; ``for_backend`` gives the defaults of each backend."""

    backend: str
    minutes: float = 15.0
    finish_s: float = 210.0         # seconds of the budget kept for the final and overhead fits
    max_samples: int = 3000
    seed: int = 0
    zoo_seed: int = 1000            # the zoo variants used for building (evaluation: seed 0)
    input_size: int | None = None   # zoo input size (None: each family's default)
    prior_per_family: int = 3       # zoo models partitioned for the prior (no measuring)
    prior_min_specs: int = 0        # ... more of a family's models (up to 4x) until it shows
                                    # this many distinct specs (0: off, as older bundles built)
    insitu_per_family: int = 1      # of those, profiled on the backend (~100 kernels each)
    insitu_counts: dict = field(default_factory=dict)  # ... or this many of a named family
                                    # (NAS-Bench-201 6, within the sample budget: no better
                                    # overall, results/nb201-insitu/)
    calib_per_family: int = 3       # whole models timed to fit the overhead (in-situ ones first)
    calib_chains: tuple = (16, 64, 160)  # ... and chains of this many tiny kernels (chain_model)
    calib_retries: int = 3          # a drifted calibration model is timed again between packs
    initial_samples: int = 900      # specs drawn from the prior before the adaptive rounds
    grid_samples: int = 250         # family-agnostic specs (``Sampler.grid``) beside those
    grid: str = "cnn"               # ... of this grid ("wide": transformer layers and pads
                                    # on top; the default of ort-cpu)
    wide_samples: int = 150         # the wide grid's specs (``Sampler.wide``, ``wide_counts``),
                                    # out of the adaptive rounds' share of the budget
    near_per_bad: int = 4           # new specs around each bad held-out configuration
    round_samples: int = 300        # at most this many new specs per adaptive round
    max_rounds: int = 2
    pack_flops: float = 4e8         # specs per kernel model: up to this many FLOPs ...
    pack_max: int = 12              # ... and at most this many specs
    min_runs: int = 10              # kernel-model profiling: runs and time per model
    min_time_s: float = 0.1
    repeats: int = 3                # sessions profiled per model; per-kernel median across them
    attempts: int = 3               # protocol attempts of a profiled session, and of a
                                    # calibration model before sampling (the protocol's 6 at the
                                    # overhead fit): on a host that changes speed for seconds at
                                    # a time, a drifted measurement is taken again later rather
                                    # than waited for (6 attempts cost ~19 s, mostly waiting)
    calib_run: str = "2"            # tag of the calibration measurements in the store
    families: tuple | None = None   # zoo families to draw from (None: all)
    train_rounds: int = 200         # trees per family in the final fit

    @classmethod
    def for_backend(cls, backend: str, **overrides) -> "BuildConfig":
        # ort-cpu: the wide grid, transformer layers on top of the CNN grid, cost the zoo
        # nothing in three builds of each (results/build-from-scratch-wide/README.md); 600
        # family-agnostic specs for 550 drawn from the prior, not 250 for 900: NAS-Bench-201
        # left out moves 2.8 % on average, not 9.3 %, and the rest scores no worse, in three
        # builds of each (results/xeon/grid-share/README.md)
        base = {"ort-cpu": {"prior_min_specs": 150, "grid": "wide", "grid_samples": 600,
                            "initial_samples": 550}, "tvm-llvm": {
            # untuned TVM kernels are 10-100x slower and every model compiles: small shapes,
            # a longer budget (a from-scratch build took about 22 min)
            "minutes": 30.0, "input_size": 64, "prior_per_family": 2, "insitu_per_family": 1,
            "initial_samples": 400, "grid_samples": 100, "round_samples": 120,
            "max_rounds": 2, "pack_flops": 2e8, "pack_max": 24, "max_samples": 2500, "repeats": 3,
            "calib_run": "", "calib_chains": (),  # TVM fuses a chain into one kernel
            "min_runs": 5, "min_time_s": 0.1}}
        if backend not in base:
            raise unknown_name("backend", backend, base)
        if overrides.get("grid", "cnn") not in GRIDS:
            raise unknown_name("grid", overrides["grid"], GRIDS)
        return cls(backend=backend, **{**base[backend], **overrides})


# ---- the sample log -----------------------------------------------------------------------------
SAMPLES_FILE = "samples.jsonl.gz"  # the log's copy inside a bundle


class SampleLog:
    """Append-only JSON lines, one line per measured model (a *unit*): what the model was (a zoo
    variant, the specs packed into it, or a user's model without its weights, ``model_record``)
    and the backend's timed kernels, as the backend reported them.  Samples are derived from it
    with the current rules (:meth:`Builder.rows`), so a change of rules needs no new
    measurement."""

    def __init__(self, path, backend: str, backend_version: str | None, cpu: str):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.context = {"backend": backend, "backend_version": backend_version, "cpu": cpu}
        self.units: dict[str, dict] = {}
        self.runs: list[dict] = []  # one record per finished build run (its wall time)
        self.retimed = 0  # kernels of records a unit measured again replaced (still timed)
        if self.path.is_file():
            opener = gzip.open if self.path.suffix == ".gz" else open
            with opener(self.path, "rt") as f:
                lines = f.read().splitlines()
            for line in lines:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash: that unit is measured again
                if not all(rec.get(k) == v for k, v in self.context.items()):
                    continue
                if rec.get("type") == "unit":
                    self._keep(rec)
                elif rec.get("type") == "run":
                    self.runs.append(rec)

    def add(self, unit: str, truth=None, error: str | None = None, **info) -> dict:
        kernels = [{"nodes": list(t.nodes), "inserted": bool(t.inserted), "op": t.op_type,
                    "ms": t.ms, **({"tensor": t.tensor} if getattr(t, "tensor", "") else {})}
                   for t in (truth or ()) if t.ms is not None]
        rec = dict(self.context, type="unit", unit=unit, kernels=kernels, **info)
        if error:
            rec["error"] = error
        self._append(rec)
        self._keep(rec)
        return rec

    def add_run(self, seconds: float, kernels_timed: int) -> None:
        """Record a finished build run, so that a resumed build reports every run's time."""
        rec = dict(self.context, type="run", seconds=round(seconds, 1),
                   kernels_timed=kernels_timed,
                   date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self._append(rec)
        self.runs.append(rec)

    def _append(self, rec: dict) -> None:
        with self.path.open("a") as f:
            f.write(_line(rec))

    def _keep(self, rec: dict) -> None:
        """The latest record of a unit is the one used."""
        old = self.units.get(rec["unit"])
        self.retimed += len(old["kernels"]) if old else 0
        self.units[rec["unit"]] = rec

    def done(self, unit: str) -> bool:
        """Logged, and not timed while the machine drifted (those are measured again)."""
        return unit in self.units and not self.drifted(self.units[unit])

    @staticmethod
    def drifted(rec: dict) -> bool:
        """The unit's worst profiled session drifted past the protocol's limit (older logs
        recorded no drift: taken as they are)."""
        return not within_drift(rec.get("drift"))

    def export(self, path) -> dict:
        """Write this log's units, gzipped, to ``path`` (the copy a bundle carries)."""
        text = "".join(_line(rec) for rec in self.units.values())
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(text.encode())  # mtime 0: the same log gives the same bytes
        return {"file": Path(path).name, "sha256": hashlib.sha256(Path(path).read_bytes())
                .hexdigest(), "units": len(self.units), "kernels": self.kernel_measurements(),
                "context": dict(self.context)}

    def pool(self, other: "SampleLog", source: str) -> None:
        """Take the units of ``other`` (the samples of bundle ``source``) that this log lacks;
        both must come from one backend version on one CPU."""
        if other.context != self.context:
            raise BundleError(f"bundle {source}: samples of {other.context}, not "
                              f"{self.context}; pool only samples of the same backend version "
                              "on the same CPU (extend a bundle on the machine that built it)")
        for key, unit in other.units.items():
            self.units.setdefault(key, unit)

    def kernel_measurements(self) -> int:
        """Kernels timed: those of every unit's record, and of the records replaced."""
        return sum(len(u["kernels"]) for u in self.units.values()) + self.retimed

    def drifted_units(self) -> list[dict]:
        return [u for u in self.units.values() if self.drifted(u)]


def _line(rec: dict) -> str:
    """One record of the log, as a line of compact JSON."""
    return json.dumps(rec, separators=(",", ":")) + "\n"


def origin_kind(origin: str) -> str:
    """The kind of a sample's origin: ``adaptive2`` -> ``adaptive`` (zoo, initial, grid...)."""
    return origin.rstrip("0123456789")


# ---- progress -------------------------------------------------------------------------------------
class Progress:
    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.start = time.monotonic()

    def __call__(self, phase: str, done: int, total: int, note: str = ""):
        if not self.enabled:
            return
        width = 24
        frac = min(1.0, done / total) if total else 1.0
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        el = time.monotonic() - self.start
        self.stream.write(f"\r[{bar}] {phase:<10} {done}/{total} {note:<32} {el:6.0f}s")
        self.stream.flush()

    def line(self, text: str):
        if self.enabled:
            self.stream.write("\n" + text + "\n")
            self.stream.flush()


# ---- matching the backend's kernels to ours ------------------------------------------------------
@dataclass(frozen=True)
class _Truth:
    nodes: tuple
    inserted: bool
    op: str
    ms: float | None
    tensor: str = ""

    @property
    def op_type(self):
        return self.op

    @property
    def name(self):
        return self.op


def truth_kernels(graph, truth, block: int = 0, predictor=None) -> list[tuple[object, float]]:
    """The backend's own kernels as :class:`Kernel` records, with their times.

    Samples are the kernels the backend really ran, whatever our partition forms, so the cost
    models stay right when the rules change.  Members are put in graph order; the anchor is the
    first compute op (as in the partition).  With ``predictor``, each kernel gets the layout its
    partition runs the anchor in (``attrs["layout"]`` and ``["block"]``, the features'
    context), as a prediction of the same graph would.  An inserted reorder converts the tensor
    the backend names (``tensor``); in a log written before the backend named it, its
    neighbour's: the first outside input of the next kernel (to blocked) or the last output of
    the previous one (from blocked).  The guess misses where a reorder does not sit beside the
    kernel it serves (3 of 439 reorders of 26 zoo models in one reading), and such logs'
    reorder times are unreliable anyway (``backends.ort_cpu._node_times``): only profiling
    again (``build --retrain --reprofile``) makes such a log right.  Other kernels with no node give
    no sample: they are no layout reorder (a HardSwish's halves a profile reported as inserted,
    or, before the ground truth put them in their Gemm's kernel, the Reshapes onnxruntime
    wraps around a Gemm over a 3-D input).
    """
    from ..kernels import Kernel, kernel_type
    from ..kernels.kernel import REORDER_OPS, reorder_direction, reorder_kernel
    from ..ops import category

    truth = [_Truth(**t) if isinstance(t, dict) else t for t in truth]
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    layouts = {} if predictor is None else {  # the context: layout and block
        n: {a: k.attrs[a] for a in ("layout", "block") if a in k.attrs}
        for k in predictor.partition(graph) if k.attrs.get("layout") for n in k.nodes}
    shapes = graph.tensor_shapes()
    out = []
    real = [i for i, t in enumerate(truth) if t.nodes]
    for i, t in enumerate(truth):
        if t.ms is None:
            continue
        if t.nodes:
            names = sorted((n for n in t.nodes if n in order), key=order.__getitem__)
            if not names:
                continue
            nodes = [graph.node(n) for n in names]
            anchor = next((n for n in nodes if category(n.op) == "compute"), nodes[0])
            ops = tuple(n.op for n in nodes)
            out.append((Kernel(name=names[0], type=kernel_type(ops), nodes=tuple(names),
                               anchor=anchor.name, ops=ops,
                               attrs=dict(layouts.get(anchor.name, {}))), t.ms))
            continue
        if t.op_type not in REORDER_OPS:
            continue  # no node, but no layout reorder either: not a kernel we price
        direction = reorder_direction(t.op_type)
        if t.tensor and t.tensor in shapes:
            cands = [(t.tensor, shapes[t.tensor])]
        elif direction == "to_blocked":
            nxt = next((truth[j] for j in real if j > i), None)
            members = set(nxt.nodes) if nxt else set()
            cands = [(x, s) for n in sorted(members & set(order), key=order.__getitem__)
                     for x, s in zip(graph.node(n).inputs, graph.node(n).input_shapes)
                     if graph.producer(x) not in members]
        else:
            prev = next((truth[j] for j in reversed(real) if j < i), None)
            members = set(prev.nodes) if prev else set()
            cands = [(x, s) for n in sorted(members & set(order), key=order.__getitem__)
                     for x, s in zip(graph.node(n).outputs, graph.node(n).output_shapes)]
            cands = cands[-1:]
        if not cands:
            continue
        tensor, shape = cands[0]
        out.append((reorder_kernel(tensor, shape, direction, block), t.ms))
    return out


def _sample_rows(graph, matched, features, origin: str,
                 specs: dict | None = None) -> list[dict]:
    rows = []
    for kernel, ms in matched:
        if ms is None or ms <= 0:
            continue
        family, raw = features.kernel_config(kernel, graph)
        spec = spec_from_kernel(kernel, graph)
        row = {"family": family, "raw": [float(v) for v in raw], "ms": float(ms),
               "origin": origin, "kernel": kernel.type, "spec": spec}
        if specs is not None:  # a packed model: which spec did this kernel come from?
            tag = scope_of(kernel.anchor or "")
            if tag in specs:
                row["target"] = spec_key(specs[tag])
                row["exact"] = spec == specs[tag]
        rows.append(row)
    return rows


def interleave(packs_by_origin: dict[str, list]) -> list[tuple[str, list]]:
    """``(origin, pack)`` pairs of every origin in one queue, each origin's packs spread
    evenly over it in their own order (a stable sort on each pack's place in its origin)."""
    queue = [((i + 0.5) / len(packs), origin, pack)
             for origin, packs in packs_by_origin.items() for i, pack in enumerate(packs)]
    return [(origin, pack) for _, origin, pack in sorted(queue, key=lambda q: q[0])]


# ---- the build -----------------------------------------------------------------------------------
@dataclass
class BuildResult:
    bundle: Path
    seconds: float
    measurements: int  # kernels timed (the sample budget counts these)
    samples: int       # of those, the ones matched to a kernel of our partition
    by_family: dict = field(default_factory=dict)
    rounds: list = field(default_factory=list)
    overhead: dict = field(default_factory=dict)
    drifted: int = 0   # profiled models timed while the machine was loaded: no samples
    carried: int = 0   # samples carried from another machine's bundle (``transfer``)


class Builder:
    """Runs one build.  ``store`` is the sample log path; ``progress`` a :class:`Progress`."""

    def __init__(self, config: BuildConfig, store=None, progress: Progress | None = None,
                 backend=None, rules_file=None):
        self.config = config
        self.progress = progress or Progress(False)
        self._backend = backend
        self.rules_file = rules_file  # None: rules/<backend>.json
        self.measure_store = None  # whole-model measurements: None is the default Store
        path = store or Path("~/.cache/nnmeter-tvm") / f"samples-{config.backend}.jsonl"
        self.log = self.new_log(path)
        self.start = time.monotonic()
        # measuring stops here; what is left of the budget is for the final fit
        self.deadline = self.start + 60.0 * config.minutes - min(config.finish_s,
                                                                  20.0 * config.minutes)
        self.measured_now = 0  # kernels timed in this process (not resumed)
        self._rows: dict[str, list] = {}
        self.calib_ms: dict[str, float] = {}  # calibration model store key -> measured ms
        self.calib_known: dict[str, float] = {}  # ... times a bundle brings (``extend``)
        self._calib_pending: list = []  # calibration models whose times drifted, to retry
        self._calib_tries: Counter = Counter()
        self.phases: dict[str, float] = {}  # seconds of this run per step (where the time goes)
        self._phase_start = self.start
        self.features = None
        self.predictor = None
        self.carried: list[dict] = []  # another machine's samples, rescaled (``transfer``)
        self.transferred: dict | None = None  # ... and what they came from

    # -- helpers
    def new_log(self, path) -> SampleLog:
        """A sample log at ``path`` for this machine: this backend's version, this CPU."""
        from ..backends.machine import describe_machine
        from ..predictors.bundle import backend_version

        return SampleLog(path, self.config.backend, backend_version(self.config.backend),
                         describe_machine()["cpu_model"])

    @property
    def backend(self):
        if self._backend is None:
            from ..backends import get_backend

            self._backend = get_backend(self.config.backend)
        return self._backend

    def _left(self) -> float:
        return self.deadline - time.monotonic()

    def _phase(self, name: str) -> None:
        """Close the step that ran since the last call: its seconds go to ``phases[name]``."""
        now = time.monotonic()
        self.phases[name] = round(self.phases.get(name, 0.0) + now - self._phase_start, 1)
        self._phase_start = now

    def _kernel_config(self):
        return ProtocolConfig(min_runs=self.config.min_runs, min_time_s=self.config.min_time_s,
                              warmup_runs=3, warmup_s=0.05, max_attempts=self.config.attempts)

    def profile(self, model):
        """The backend's timed kernels for ``model`` (a ``KernelTruth``, with the worst drift
        of its sessions), profiled in ``config.repeats`` sessions (per kernel the median across
        them: one session's small kernels can read 2x off)."""
        backend = self.backend
        saved = backend.config, backend.profile_sessions
        backend.config = self._kernel_config()
        backend.profile_sessions = max(1, self.config.repeats)
        try:
            return backend.truth(model, timed=True)
        finally:
            backend.config, backend.profile_sessions = saved

    def timed_kernels(self, model) -> list:
        return list(self.profile(model).kernels)

    # -- samples: derived from the log with the current rules, cached per unit
    def rows(self, unit: dict) -> list[dict]:
        key = unit["unit"]
        if key not in self._rows:
            ok = unit["kernels"] and not SampleLog.drifted(unit)
            self._rows[key] = self._derive(unit) if ok else []
        return self._rows[key]

    def _derive(self, unit: dict) -> list[dict]:
        graph, specs = self._unit_graph(unit), None
        if unit["kind"] == "pack":
            specs = specs_by_scope(unit["specs"])
        matched = truth_kernels(graph, unit["kernels"], self._block(), self.predictor)
        return _sample_rows(graph, matched, self.features, unit["origin"], specs=specs)

    def _unit_graph(self, unit: dict):
        from ..onnx_import import load_graph

        return load_graph(self._unit_model(unit))

    @staticmethod
    def _unit_model(unit: dict):
        from .. import zoo

        if unit["kind"] == "zoo":
            family, seed, index, size = unit["zoo"]
            return zoo.generate(family, seed, index, size)
        if unit["kind"] == "model":
            return model_from_record(unit["user_model"])
        return build_model(unit["specs"], seed=unit.get("seed", 0))

    def retime_drifted(self) -> int:
        """Measure again, while time is left, the units timed while the machine drifted
        (they give no sample until then); returns how many were measured."""
        redo = self.log.drifted_units()
        for n, unit in enumerate(redo):
            self.progress("retime", n + 1, len(redo), "drifted units measured again")
            if self._left() <= 0:
                return n
            if not self._measure_unit(unit["unit"], self._unit_model(unit), **_unit_info(unit)):
                return n
        return len(redo)

    def stale_units(self) -> list[dict]:
        """The steady units whose model, as this code writes it, has a node that none of their
        logged kernels ran and the backend did not report eliminated: the way a kernel model
        is written changed since they were profiled (e.g. the operand of a conv's add,
        ``kernel_models._epi``), so their kernels are not those a build would time now.  (A
        log written before units recorded ``eliminated`` also flags a model whose backend
        dropped a node, such as a repeated relu: profiling it again costs time, nothing else.)"""
        stale = []
        for unit in self.log.units.values():
            if not unit["kernels"] or SampleLog.drifted(unit):
                continue  # no samples either way; a drifted unit is measured again anyway
            ran = {n for k in unit["kernels"] for n in k["nodes"]}
            ran |= set(unit.get("eliminated") or ())
            if any(n.name not in ran for n in self._unit_model(unit).graph.node):
                stale.append(unit)
        return stale

    def reprofile(self, units: list[dict]) -> None:
        """Profile ``units`` (log records, e.g. another log's) again into this log, skipping
        those it holds already: the same sample plan, timed here and now."""
        self.measure_units(units, "reprofile", budget=False)

    def measure_units(self, units: list[dict], phase: str, budget: bool = True) -> int:
        """Profile ``units`` (log records of a plan, e.g. another log's) into this log in
        order, skipping those it holds, then measure the drifted ones again
        (:meth:`retime_drifted`, whose count it returns).  With ``budget`` (a transfer's plan)
        stop at the deadline or at the first pack the sample budget has no room for (a zoo
        model too big is passed over); without (the same plan timed again), profile each."""
        for n, unit in enumerate(units):
            self.progress(phase, n + 1, len(units),
                          f"{self.log.kernel_measurements()} kernels timed")
            if self.log.done(unit["unit"]):
                continue
            if budget and self._left() <= 0:
                break
            fits = self._measure_unit(unit["unit"], self._unit_model(unit), **_unit_info(unit))
            if budget and not fits and unit["kind"] == "pack":
                break
            self.retry_calibration()
        return self.retime_drifted()

    def _block(self) -> int:
        layout = getattr(self.predictor.rules, "layout", None)
        return int(getattr(layout, "block", 0) or 0)

    def partition_agreement(self) -> dict:
        """How many of the backend's kernels in the profiled zoo models our partition forms
        exactly (a diagnostic of the rules; samples do not depend on it)."""
        same = total = 0
        for unit in self.log.units.values():
            if unit["kind"] != "zoo" or not unit["kernels"]:
                continue
            graph = self._unit_graph(unit)
            ours = {frozenset(k.nodes) for k in self.predictor.partition(graph) if not k.inserted}
            real = [frozenset(k["nodes"]) for k in unit["kernels"] if k["nodes"]]
            same += sum(1 for k in real if k in ours)
            total += len(real)
        return {"kernels": total, "formed_exactly": same,
                "fraction": same / total if total else None}

    def samples(self) -> list[dict]:
        return [r for u in self.log.units.values() for r in self.rows(u)]

    def training_samples(self) -> list[dict]:
        """What the cost models are fitted on: this machine's samples and those carried from
        another (:mod:`.transfer`)."""
        return self.samples() + self.carried

    def _budget_left(self) -> int:
        return self.config.max_samples - self.log.kernel_measurements()

    def _measure_unit(self, unit: str, model, **info) -> bool:
        """Profile one model and log its kernels; False when the sample budget has no room
        for it (its node count bounds its kernel count, bar inserted reorders, which are
        dropped past the budget)."""
        room = self._budget_left()
        if room < len(model.graph.node):
            return False
        try:
            truth = self.profile(model)
        except NNMeterError as exc:
            self.log.add(unit, error=str(exc)[:300], **info)
            return True
        kernels = [t for t in truth.kernels if t.ms is not None][:room]
        self._rows.pop(unit, None)  # a unit measured again
        rec = self.log.add(unit, kernels, drift=truth.drift,
                           eliminated=list(truth.eliminated), **info)
        self.measured_now += len(rec["kernels"])
        return True

    # -- step 1: prior and in-situ kernels
    def zoo_models(self, count: int, counts=None):
        """(family, index) of ``count`` zoo models per family (``counts``: of a named one)."""
        from .. import zoo

        for family in self.config.families or zoo.FAMILIES:
            for index in range((counts or {}).get(family, count)):
                yield family, index

    def prior_models(self) -> dict[str, list]:
        """Per family, the (graph, kernels) of the zoo models the prior is read from:
        ``prior_per_family`` models, and more (up to 4x) while the family shows fewer than
        ``prior_min_specs`` distinct specs.  A family of few distinct layers (NAS-Bench-201
        cells, AlexNet) otherwise has a few dozen specs to draw from, and its other variants'
        channel counts go unsampled."""
        from .. import zoo
        from ..onnx_import import load_graph

        cfg = self.config
        families = cfg.families or zoo.FAMILIES
        out = {}
        for n, family in enumerate(families):
            self.progress("prior", n + 1, len(families), family)
            pairs, seen = [], set()
            for index in range(4 * cfg.prior_per_family):
                if index >= cfg.prior_per_family and len(seen) >= cfg.prior_min_specs:
                    break
                graph = load_graph(zoo.generate(family, cfg.zoo_seed, index, cfg.input_size))
                pairs.append((graph, self.predictor.partition(graph)))
                seen.update(prior_from_kernels(pairs[-1:]))
            out[family] = pairs
        return out

    def prior(self) -> Counter:
        """The specs of the prior models, each family weighted as ``prior_per_family`` models
        (its extra models widen its specs, not its share of the draw)."""
        counts = Counter()
        for pairs in self.prior_models().values():
            scale = self.config.prior_per_family / len(pairs)
            for key, n in prior_from_kernels(pairs).items():
                counts[key] += n * scale
        return counts

    def insitu(self) -> None:
        """Profile zoo models on the backend (needs no rules: matching happens later)."""
        from .. import zoo

        cfg = self.config
        items = list(self.zoo_models(cfg.insitu_per_family, cfg.insitu_counts))
        for n, (family, index) in enumerate(items):
            unit = f"zoo:{family}:{cfg.zoo_seed}:{index}:{cfg.input_size}"
            self.progress("in-situ", n + 1, len(items), family)
            if self.log.done(unit):
                continue
            if self._left() < 0.5 * 60 * cfg.minutes:
                break
            model = zoo.generate(family, cfg.zoo_seed, index, cfg.input_size)
            self._measure_unit(unit, model, kind="zoo", origin="zoo",
                               zoo=[family, cfg.zoo_seed, index, cfg.input_size])

    # -- steps 2 and 3: packed kernel models
    def measure_specs(self, groups: dict[str, list[dict]]) -> None:
        """Measure the specs of each origin (``{origin: specs}``), packed several to a model
        (:func:`pack_specs`); the origins' packs are interleaved in proportion, so a build
        stopped by its deadline has measured a like share of each."""
        queue = interleave({origin: pack_specs(specs, self.config.pack_max,
                                               self.config.pack_flops)
                            for origin, specs in groups.items()})
        phase = "/".join(groups)
        for n, (origin, pack) in enumerate(queue):
            self.progress(phase, n + 1, len(queue),
                          f"{self.log.kernel_measurements()} kernels timed")
            unit = "pack:" + spec_key(pack)
            if self.log.done(unit):
                continue
            if self._left() <= 0:
                break
            model = build_model(pack, seed=self.config.seed, name=f"pack{n}")
            if not self._measure_unit(unit, model, kind="pack", origin=origin, specs=pack,
                                      seed=self.config.seed):
                break
            self.retry_calibration()

    def sampler(self, prior) -> Sampler:
        """A sampler over ``prior`` that has every spec measured so far marked, so it never
        draws one again."""
        sampler = Sampler(prior, seed=self.config.seed)
        sampler.mark(s["target"] for s in self.samples() if s.get("target"))
        sampler.mark(spec_key(s["spec"]) for s in self.samples() if s.get("spec"))
        return sampler

    def wide_specs(self, sampler) -> list[dict]:
        """The wide grid's specs this build still lacks, kind by kind."""
        drawn = Counter(wide_kind(s) for u in self.log.units.values()
                        if u["origin"] == "grid-wide" for s in u["specs"])
        return sampler.wide({kind: max(0, n - drawn[kind])
                             for kind, n in wide_counts(self.config.wide_samples).items()})

    def ops_specs(self, sampler) -> list[dict]:
        """The ops grid's specs this build still lacks, op by op."""
        drawn = Counter(ops_op(s) for u in self.log.units.values()
                        if u["origin"] == "grid-ops" for s in u["specs"])
        return sampler.ops({op: max(0, OPS_PER_OP - drawn[op]) for op in OPS_GRID})

    def _drawn(self, origin: str) -> int:
        """Specs of ``origin`` already profiled (a resumed build draws only the rest)."""
        return sum(len(u["specs"]) for u in self.log.units.values() if u["origin"] == origin)

    # -- training
    def train(self, rounds: int, targets=None):
        from ..predictors.cost_model import TARGETS
        from .training import train_family

        by_family = defaultdict(list)
        for s in self.training_samples():
            by_family[s["family"]].append(s)
        results = {}
        for family, rows in sorted(by_family.items()):
            raw = np.array([r["raw"] for r in rows], dtype=np.float64)
            x = self.features.encode(family, raw)
            ms = np.array([r["ms"] for r in rows])
            keys = [spec_key(r["spec"]) if r.get("spec") else None for r in rows]
            results[family] = train_family(family, x, ms, keys,
                                           self.features.feature_names(family),
                                           seed=self.config.seed, rounds=rounds,
                                           targets=targets or TARGETS)
        return results

    @staticmethod
    def overall(results) -> float:
        """Held-out ±10 % accuracy over all families, weighted by held-out rows."""
        n = sum(r.heldout.get("n", 0) for r in results.values() if r.model)
        hit = sum(r.heldout.get("acc10", 0) * r.heldout.get("n", 0)
                  for r in results.values() if r.model)
        return hit / n if n else 0.0

    # -- step 4: overhead
    def calibrate(self, predictor, rows=None) -> dict:
        """Fit the per-run and per-kernel overheads on whole zoo models timed under the
        protocol (small and large ones: the per-kernel term shows only on small models):
        ``rows`` of :meth:`calibration_rows` (default: all of them), priced by ``predictor``."""
        from .training import fit_overhead

        rows = self.calibration_rows(predictor) if rows is None else rows
        sums = [float(predictor.kernel_ms(graph, kernels)[0].sum())
                for _, graph, kernels, _ in rows]
        return fit_overhead([r[3] for r in rows], sums, [len(r[2]) for r in rows])

    def calibration_rows(self, predictor, measure: bool = True, known=None) -> list:
        """(family, graph, kernels, measured ms) of the calibration models; ``known`` (store
        key -> ms, a bundle's ``build.calibration_ms``) comes first, and ``measure=False``
        measures nothing: leave-one-family-out and a retraining refit the overhead so.  The
        kernels are the backend's own where the log has the model's in-situ profile (the
        overhead is a property of how the backend runs, so it is fitted apart from any error
        of our partition), else our partition's.  Each time used is kept in ``calib_ms``."""
        from ..backends.store import Store
        from ..onnx_import import load_graph

        cfg = self.config
        rows = []
        items = self._calibration_items()
        store = Store(self.measure_store)
        for n, (family, index) in enumerate(items):
            self.progress("overhead", n + 1, len(items), family)
            unit = self.log.units.get(f"zoo:{family}:{cfg.zoo_seed}:{index}:{cfg.input_size}")
            key = self._calibration_key(family, index)
            ms = self._calibration_ms(store, key, family, index, measure, known or {})
            if ms is None:
                continue
            self.calib_ms[key] = ms
            if unit and unit["kernels"]:
                graph = self._unit_graph(unit)
                kernels = [k for k, _ in truth_kernels(graph, unit["kernels"], self._block(),
                                                       predictor)]
            else:
                graph = load_graph(self._calibration_model(family, index))
                kernels = [k for k in predictor.partition(graph) if not k.attrs.get("view")]
            rows.append((family, graph, kernels, ms))
        store.close()
        return rows

    def measure_calibration(self) -> int:
        """Time the calibration models now, before sampling: the overhead fit needs all of
        them (a from-scratch build whose sampling ran to its deadline timed 10 of 39, and its
        fixed term priced NAS-Bench-201 cells 88 % high), while fewer samples cost little.
        Those that drifted are queued for :meth:`retry_calibration`.  Returns how many have a
        time."""
        items = self._calibration_items()
        self._calib_pending = [item for n, item in enumerate(items)
                               if not self._time_calibration(item, n, len(items))]
        return len(items) - len(self._calib_pending)

    def retry_calibration(self) -> None:
        """Time the first drifted calibration model again, between two packs: the host that
        drifted for it (it changes speed for seconds at a time) may be steady now.  Still
        drifted, it goes to the back of the queue, at most ``calib_retries`` times; the overhead
        fit tries once more whatever is left."""
        if not self._calib_pending:
            return
        item = self._calib_pending.pop(0)
        self._calib_tries[item] += 1
        steady = self._time_calibration(item)
        if not steady and self._calib_tries[item] < self.config.calib_retries:
            self._calib_pending.append(item)

    def _time_calibration(self, item, n: int = 0, total: int = 0) -> bool:
        """One calibration model timed (or found in the store) with ``attempts``: steady?"""
        from ..backends.store import Store

        family, index = item
        if total:
            self.progress("overhead", n + 1, total, family)
        store = Store(self.measure_store)
        try:
            return self._calibration_ms(store, self._calibration_key(family, index), family,
                                        index, True, self.calib_known,
                                        attempts=self.config.attempts) is not None
        finally:
            store.close()

    def _calibration_items(self) -> list[tuple[str, int]]:
        """(family, index) of each calibration model: ("chain", n) first (small and quick to
        time, and the only models that show the per-kernel term well), then zoo variants."""
        return [("chain", n) for n in self.config.calib_chains] + list(
            self.zoo_models(self.config.calib_per_family))

    def _calibration_model(self, family: str, index: int):
        from .. import zoo

        if family == "chain":
            return chain_model(index)
        return zoo.generate(family, self.config.zoo_seed, index, self.config.input_size)

    def _calibration_key(self, family: str, index: int) -> str:
        cfg = self.config
        return f"build-calib{cfg.calib_run}:{family}:{cfg.zoo_seed}:{index}:{cfg.input_size}"

    def _calibration_ms(self, store, key, family, index, measure, known,
                        attempts: int | None = None) -> float | None:
        """A calibration model's whole-run median: ``known`` (a bundle's own times: a refit of
        that bundle uses them, not what this machine's store holds), else from the store, else
        measured now (``measure`` and time left; ``attempts``: the protocol's drift retries,
        None for its default); None when there is none.  A time whose
        reference workload drifted past ``DRIFT_LIMIT`` is not used, as the evaluation drops
        such a measurement (a from-scratch build on a loaded host timed 12 of its 42 models so,
        up to 40 % slow): it is measured again, here or in a resumed build."""
        cfg = self.config
        if key in known:
            return float(known[key])
        m = store.get(cfg.backend, key, backend_version=self.log.context["backend_version"])
        if m is not None and not m.steady:
            m = None
        if m is None:
            if not measure or self._left() < -180:  # past the deadline: fit on what we have
                return None
            config = self.backend.config
            if attempts is not None:
                config = replace(config or ProtocolConfig(), max_attempts=attempts)
            try:
                m = self.backend.measure(self._calibration_model(family, index), store=store,
                                         key=key, config=config)
            except NNMeterError:
                return None
        return m.median_ms if m.steady else None

    # -- everything
    def measure_only(self) -> None:
        """The rules-independent part: profile the in-situ zoo models."""
        self.insitu()
        self.progress.line(f"in-situ: {self.log.kernel_measurements()} kernels timed")

    def run(self, out_dir) -> BuildResult:
        from .. import features
        from ..predictors import Predictor

        cfg = self.config
        self.features = features
        self.predictor = Predictor(cfg.backend, rules_file=self.rules_file)  # to partition
        self.insitu()
        self._phase("insitu")
        self.measure_calibration()
        self._phase("calibration")
        sampler = self.sampler(self.prior())
        self.progress.line(f"in-situ: {self.log.kernel_measurements()} kernels timed, "
                           f"{len(self.samples())} samples")
        groups = {
            "initial": sampler.initial(max(0, cfg.initial_samples - self._drawn("initial"))),
            "grid": sampler.grid(max(0, cfg.grid_samples - self._drawn("grid")))}
        if cfg.grid == "wide":
            groups["grid-wide"] = self.wide_specs(sampler)
        self.measure_specs(groups)
        self._phase("initial")
        # between rounds only the held-out errors matter: a smaller fit, one target
        quick = max(20, cfg.train_rounds // 3)
        results = self.train(quick, targets=("log",))
        self._phase("training")
        history = [{"round": 0, "samples": len(self.samples()),
                    "kernels_timed": self.log.kernel_measurements(),
                    "heldout_acc10": self.overall(results)}]
        self.progress.line(f"initial: {history[0]['samples']} samples, held-out ±10% "
                           f"{100 * history[0]['heldout_acc10']:.1f}%")
        best = history[0]["heldout_acc10"]
        for r in range(1, cfg.max_rounds + 1):
            if self._left() < 60 or self._budget_left() <= 0:
                break
            bad = [json.loads(k) for res in results.values() for k in res.bad if k]
            new = []
            for spec in bad:
                new += sampler.near(spec, cfg.near_per_bad)
                if len(new) >= cfg.round_samples:
                    break
            if not new:
                break
            timed = self.log.kernel_measurements()
            self.measure_specs({f"adaptive{r}": new[: cfg.round_samples]})
            self._phase("adaptive")
            if self.log.kernel_measurements() == timed:
                break  # the budget had no room for one more model: no round
            results = self.train(quick, targets=("log",))
            self._phase("training")
            acc = self.overall(results)
            history.append({"round": r, "samples": len(self.samples()),
                            "kernels_timed": self.log.kernel_measurements(),
                            "heldout_acc10": acc, "bad": len(bad),
                            "drawn": len(new[: cfg.round_samples])})
            self.progress.line(f"round {r}: {history[-1]['samples']} samples, held-out ±10% "
                               f"{100 * acc:.1f}%")
            if acc <= best + 0.002:
                break
            best = acc
        retimed = self.retime_drifted()
        self._phase("drifted_again")
        drifted = len(self.log.drifted_units())  # still: they give no samples
        if retimed or drifted:
            self.progress.line(f"drift: {retimed} units timed while the machine drifted were "
                               f"measured again; {drifted} still drifted (no samples)")
        return self._fit_and_write(out_dir, history, retimed, drifted)

    def _fit_and_write(self, out_dir, history, retimed: int, drifted: int,
                       source: dict | None = None) -> BuildResult:
        """The final fit on every sample, the fallback, the overhead fit, and the bundle;
        ``source``: a retraining's source bundle (what it measured, and a ``record`` of it)."""
        from .. import features
        from ..predictors import Predictor, save_bundle
        from ..predictors.bundle import machine_info
        from ..predictors.fallback import GenericModel, generic_stats

        cfg = self.config
        results = self.train(cfg.train_rounds)  # the final fit
        self._phase("training")
        models = {f: r.model for f, r in results.items() if r.model is not None}
        samples = self.samples()
        if not models:
            raise MeasurementError(
                f"build {cfg.backend}: no kernel family has enough samples to train a cost model "
                f"({len(samples)} samples; {drifted} profiled models were timed while another "
                "process loaded the machine); no bundle written: run the same command again "
                "when the machine is quieter, the build resumes")
        # the generic fallback: FLOPs and bytes of every sample, all families together
        stats, ms = [], []
        by_family = defaultdict(list)
        for s in self.training_samples():
            by_family[s["family"]].append(s)
        for family, rows in by_family.items():
            x = features.encode(family, np.array([r["raw"] for r in rows]))
            stats.append(generic_stats(features, family, x))
            ms.extend(r["ms"] for r in rows)
        fallback = GenericModel(backend=cfg.backend)
        if stats:
            fallback.fit(np.vstack(stats), np.array(ms))
        trained = Predictor(cfg.backend, rules=self.predictor.rules, models=models,
                            fallback=fallback, rules_file=self.rules_file)
        rows = None if source is None else self.calibration_rows(
            trained, measure=False, known=source["calibration_ms"])
        overhead = self.calibrate(trained, rows)
        trained.overhead = {k: overhead[k] for k in ("fixed_ms", "per_kernel_ms", "scale")}
        self._phase("overhead_fit")  # with calibration models measured again (drifted)
        seconds = time.monotonic() - self.start
        measuring = source is None or source.get("extended")  # a retraining measured nothing
        if measuring:
            self.log.add_run(seconds, self.measured_now)
        own_runs = [{k: r[k] for k in ("seconds", "kernels_timed", "date")}
                    for r in self.log.runs] if measuring else []
        units = list(self.log.units.values())
        build_meta = {
            "config": source["config"] if source and not measuring else asdict(cfg),
            "seconds": round(seconds, 1),
            "phases": dict(self.phases),  # this run's seconds per step
            # every finished run on this sample log (a stopped one is not recorded); a
            # retraining has none of its own: the measuring runs of its source
            "runs": (source["runs"] if source else []) + own_runs,
            "kernel_samples": len(samples),
            "kernels_timed": self.log.kernel_measurements(),
            "kernels_timed_this_run": self.measured_now,
            "models_profiled": len(units),
            # units profiled while the reference workload drifted > DRIFT_LIMIT: no samples
            "drift": {"limit": DRIFT_LIMIT, "units_measured_again": retimed,
                      "units_still_drifted": drifted,
                      "kernels_timed_again": self.log.retimed},
            "samples_by_origin": dict(Counter(origin_kind(s["origin"]) for s in samples)),
            "exact_spec_fraction": _frac(s.get("exact") for s in samples if "exact" in s),
            "partition_agreement": self.partition_agreement(),
            "rounds": history,
            "overhead_fit": overhead,
            "fallback_fit_on": fallback.fitted_on,
            # where this build appended (to resume); a retraining appended nowhere
            "sample_log": source["sample_log"] if source else str(self.log.path),
            "zoo": {"seed": cfg.zoo_seed, "input_size": cfg.input_size,
                    "note": f"built from zoo seed {cfg.zoo_seed}; evaluate on other seeds"},
        }
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        build_meta["samples"] = self.log.export(Path(out_dir) / SAMPLES_FILE)
        build_meta["calibration_ms"] = dict(sorted(self.calib_ms.items()))
        if self.transferred:
            build_meta["transferred_from"] = self.transferred
        if source is not None:
            build_meta["extended_from" if source.get("extended") else "retrained_from"] = \
                source["record"]
            build_meta["reprofiled"] = bool(source.get("reprofiled"))
            if source.get("reprofiled_stale"):
                build_meta["reprofiled_stale_units"] = source["reprofiled_stale"]
        # where the samples were timed
        machine = source["machine"] if source and not source.get("reprofiled") else machine_info()
        trained.meta = {"name": cfg.backend, "machine": machine, "build": build_meta}
        path = save_bundle(trained, out_dir, rules_file=self.rules_file)
        self.progress.line(f"bundle written: {path} ({seconds:.0f} s, {len(samples)} samples; "
                           + ", ".join(f"{k} {v:.0f} s" for k, v in self.phases.items()) + ")")
        return BuildResult(Path(out_dir), seconds, self.log.kernel_measurements(), len(samples),
                           {f: {"samples": r.samples, "heldout": r.heldout}
                            for f, r in results.items()}, history, overhead, drifted,
                           len(self.carried))


def _frac(values) -> float | None:
    values = [bool(v) for v in values]
    return sum(values) / len(values) if values else None


def bundle_builder(predictor) -> "Builder":
    """A Builder over the samples a bundle carries (its ``samples.jsonl.gz``, checked against
    the bundle's checksum), with the bundle's build config, partitioning with its rules."""
    from dataclasses import fields

    from .. import features

    build_meta = predictor.meta.get("build") or {}
    own = build_meta.get("samples") or {}
    if build_meta.get("transferred_from"):
        raise BundleError(f"predictor {predictor.name!r} was transferred from "
                          f"{build_meta['transferred_from'].get('bundle')!r}: its cost models "
                          "were fitted on that bundle's samples too, which it does not carry; "
                          "build it again with --transfer-from instead")
    if not (own.get("file") and predictor.meta.get("source")):
        raise BundleError(f"predictor {predictor.name!r} carries no kernel samples (a "
                          "bundle built before samples.jsonl.gz was shipped); rebuild it")
    path = Path(predictor.meta["source"]) / own["file"]
    if not path.is_file():
        raise BundleError(f"{path}: the bundle's kernel samples are missing; restore the "
                          "file or rebuild the bundle")
    if own.get("sha256") and hashlib.sha256(path.read_bytes()).hexdigest() != own["sha256"]:
        raise BundleError(f"{path}: checksum differs from the bundle's build.samples; "
                          "restore the file or rebuild the bundle")
    names = {f.name for f in fields(BuildConfig)}
    cfg = BuildConfig(**{k: (tuple(v) if isinstance(v, list) else v)
                         for k, v in (build_meta.get("config") or {}).items() if k in names})
    builder = Builder(cfg, store=path)
    if own.get("context"):  # the bundle's own units, whatever backend version and CPU is here
        builder.log = SampleLog(path, **own["context"])
    builder.features, builder.predictor = features, predictor
    return builder


def retrain(bundles, out_dir, progress: bool = True, reprofile: bool = False,
            rules_file=None, reprofile_stale: bool = False) -> BuildResult:
    """A bundle trained again from the samples other bundles carry, measuring nothing: after a
    change of features or training, the same measurements give new cost models.  ``bundles``:
    one bundle (name or folder) or several of the same backend, version and CPU, whose samples
    are pooled (a unit profiled in more than one is taken from the first).  The first gives
    the build config, the rules and the calibration times; ``build.retrained_from`` names
    them all.  ``reprofile``: every pooled unit is profiled again on this machine first, after
    a fix of the profiling (resumable: the log ``out_dir/reprofile.jsonl`` is kept until the
    bundle is written); the calibration times, whole-model runs no profiling touches, are
    kept (timed again on a loaded host they moved the fixed overhead from 5 to 18 µs:
    ``benchmarks/results/reorder-times/``).  ``reprofile_stale``: only the units whose model
    is written differently now (:meth:`Builder.stale_units`) are profiled again, the others
    kept.  ``rules_file``: partition with these rules instead of the first bundle's (e.g. the
    same file with rules added for other models)."""
    from ..predictors import Predictor, load_predictor

    names = [bundles] if isinstance(bundles, (str, Path)) else list(bundles)
    sources = [load_predictor(b, models=False) for b in names]  # samples, not models: any schema
    builder = bundle_builder(sources[0])
    builder.progress = Progress(progress)
    builder.rules_file = sources[0].rules_file  # the rules its samples were partitioned with
    if rules_file is not None:
        builder.rules_file = rules_file
        builder.predictor = Predictor(builder.config.backend, rules_file=rules_file)
    runs = []
    for src in sources:
        if src is not sources[0]:
            builder.log.pool(bundle_builder(src).log, src.meta.get("source"))
        runs += (src.meta.get("build") or {}).get("runs") or []
    first = sources[0].meta.get("build") or {}
    only_stale = reprofile_stale and not reprofile
    working = Path(out_dir) / "reprofile.jsonl" if reprofile or only_stale else None
    units = []
    if working is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        old = builder.log
        units = builder.stale_units() if only_stale else list(old.units.values())
        builder.log = builder.new_log(working)
        builder.reprofile(units)
        if only_stale:
            builder.log.pool(old, str(names[0]))  # the other units as they were
        builder._phase("reprofile")
    result = builder._fit_and_write(out_dir, first.get("rounds") or [], 0,
                                    len(builder.log.drifted_units()), source={
        "record": [_source_record(name, src) for name, src in zip(names, sources)],
        "machine": sources[0].meta.get("machine"), "config": first.get("config") or {},
        "runs": runs, "sample_log": first.get("sample_log"), "reprofiled": reprofile,
        "reprofiled_stale": len(units) if only_stale else 0,
        "calibration_ms": first.get("calibration_ms") or {}})
    if working is not None:
        working.unlink(missing_ok=True)
    return result


def model_record(model) -> dict:
    """A user's model as a sample-log record: the ONNX graph without its weights (base64), and
    each weight's shape and element type.  Latency does not depend on the weights' values, so
    :func:`model_from_record` gives it back with zeros, to partition and to profile again."""
    import base64

    from ..onnx_import import _without_weights

    light, big = _without_weights(model)
    types = {t.name: t.data_type for t in model.graph.initializer}
    return {"onnx": base64.b64encode(light.SerializeToString()).decode("ascii"),
            "weights": {name: [list(dims), types[name]] for name, dims in big.items()}}


def model_from_record(record: dict):
    """The ModelProto of :func:`model_record`, its weights zeros."""
    import base64

    import onnx
    from onnx import helper

    light = onnx.load_from_string(base64.b64decode(record["onnx"]))
    weights = record["weights"]
    graph = light.graph
    inputs = [v for v in graph.input if v.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    for name, (dims, dtype) in weights.items():
        count = int(np.prod(dims))
        graph.initializer.append(helper.make_tensor(name, dtype, dims, bytes(
            count * helper.tensor_dtype_to_np_dtype(dtype).itemsize), raw=True))
    return light


def load_user_models(models: list, input_shapes: dict | None = None) -> list:
    """``(path, ModelProto)`` of each of ``models`` (ONNX paths; ``input_shapes`` fixes
    symbolic inputs), all checked before anything is measured: a bad path fails in one line."""
    from ..onnx_import import load_model

    return [(m, load_model(m, _shapes_for(m, input_shapes))) for m in models]


def extend_with_models(builder, models: list) -> int:
    """Profile ``models`` (from :func:`load_user_models`) on the builder's backend into its
    log, each a unit of kind ``model`` (origin ``user``): their own kernels as samples.
    Returns the kernels timed."""
    before = builder.measured_now
    builder.config = replace(builder.config, max_samples=builder.log.kernel_measurements()
                             + sum(2 * len(proto.graph.node) for _, proto in models))
    for n, (path, proto) in enumerate(models):
        record = model_record(proto)
        unit = "model:" + hashlib.sha256(record["onnx"].encode()).hexdigest()[:16]
        builder.progress("models", n + 1, len(models), Path(str(path)).name)
        if not builder.log.done(unit):
            builder._measure_unit(unit, model_from_record(record), kind="model",
                                  origin="user", user_model=record)
    return builder.measured_now - before


def _shapes_for(model, input_shapes: dict | None) -> dict | None:
    """The given input shapes that name one of ``model``'s inputs (one flag for many models)."""
    import onnx

    if not input_shapes:
        return None
    try:
        names = {v.name for v in onnx.load(str(model), load_external_data=False).graph.input}
    except Exception:  # a missing or unreadable file: load_model says which, in one line
        return None
    return {k: v for k, v in input_shapes.items() if k in names} or None


def extend(bundle, out_dir, progress: bool = True, grid: str = "wide",
           backend=None, rules_file=None, models=None, input_shapes=None) -> BuildResult:
    """``bundle`` with the family-agnostic samples of ``grid`` that it lacks measured here and
    now, kind by kind (``wide``: the transformer layers and pads of ``Sampler.wide``; ``ops``:
    standalone kernels of the ops no other draw runs, ``Sampler.ops``), then every cost model
    trained again on the pooled samples.  Nothing else is drawn (no adaptive round, no drifted
    unit measured again), so the kernel types the new samples do not touch are trained on the
    same samples as before; the calibration times are the bundle's.
    Resumable: the new units go to ``out_dir/extend.jsonl`` until the bundle is written.
    ``backend``: to measure on (None: the bundle's); ``rules_file``: partition with these
    rules instead of the bundle's.  ``models`` (ONNX paths, ``input_shapes`` for their symbolic
    inputs): profile these instead, whole, and add their own kernels
    (:func:`extend_with_models`): a family the bundle has not seen is then priced from its own
    kernels, as the zoo's families are from their in-situ profiles."""
    if grid not in EXTEND_GRIDS and not models:
        raise BundleError(f"extend: grid {grid!r} has nothing to add to a bundle; the wide "
                          "grid adds transformer layers (--grid wide), the ops grid ops no "
                          "other draw runs (--grid ops)")
    loaded = load_user_models(list(models), input_shapes) if models else []
    working = Path(out_dir) / "extend.jsonl"
    builder, source, old_units = extension_builder(bundle, working, progress, backend,
                                                   rules_file)
    if grid == "wide":  # the bundle now has the wide grid (the ops grid is no build's grid)
        builder.config = replace(builder.config, grid=grid)
    if loaded:
        extend_with_models(builder, loaded)
    else:
        sampler = builder.sampler([])  # the grids need no prior
        specs = (builder.wide_specs if grid == "wide" else builder.ops_specs)(sampler)
        builder.config = replace(builder.config, max_samples=builder.log.kernel_measurements()
                                 + 4 * len(specs))  # room for the new specs
        builder.measure_specs({f"grid-{grid}": specs})
    for unit in builder.log.drifted_units():  # once more, the new ones only
        if unit["unit"] not in old_units:
            builder._measure_unit(unit["unit"], builder._unit_model(unit), **_unit_info(unit))
    builder._phase("extend")
    result = write_extension(builder, bundle, source, out_dir)
    working.unlink(missing_ok=True)
    return result


def extension_builder(bundle, log_path, progress: bool = True, backend=None,
                      rules_file=None) -> tuple["Builder", object, frozenset]:
    """(builder, source predictor, the source's unit keys) to measure more units for
    ``bundle`` on this machine: the bundle's samples pooled into a new log at ``log_path``
    (resumable: the units it already holds stay), its calibration times, partitioning with
    ``rules_file`` (default: the bundle's rules)."""
    from .. import features
    from ..predictors import Predictor, load_predictor

    source = load_predictor(bundle, models=False)
    builder = bundle_builder(source)
    builder._backend = backend
    builder.progress = Progress(progress)
    builder.rules_file = rules_file or source.rules_file
    old = builder.log
    builder.log = builder.new_log(Path(log_path))  # this machine's, and the new units
    builder.log.pool(old, source.meta.get("source"))
    builder.calib_known = (source.meta.get("build") or {}).get("calibration_ms") or {}
    builder.features = features
    builder.predictor = Predictor(builder.config.backend, rules_file=builder.rules_file)
    return builder, source, frozenset(old.units)


def write_extension(builder, bundle, source, out_dir) -> BuildResult:
    """Train every cost model again on the builder's pooled samples and write the bundle,
    recording ``bundle`` (``source``: its predictor) as what it extends."""
    first = source.meta.get("build") or {}
    return builder._fit_and_write(out_dir, first.get("rounds") or [], 0,
                                  len(builder.log.drifted_units()), source={
        "record": [_source_record(bundle, source)], "machine": source.meta.get("machine"),
        "runs": first.get("runs") or [], "sample_log": first.get("sample_log"),
        "calibration_ms": builder.calib_known, "extended": True})


def _unit_info(unit: dict) -> dict:
    """What a log record says of its model besides its kernels (to profile it again)."""
    return {k: unit[k] for k in ("kind", "origin", "zoo", "specs", "seed", "user_model")
            if k in unit}


def _source_record(name, src) -> dict:
    """What a retraining says of one source bundle (and of that bundle's own sources)."""
    build_meta = src.meta.get("build") or {}
    record = {"bundle": str(name), "created": src.meta.get("created"),
              "schema_version": src.meta.get("schema_version"),
              "seconds": build_meta.get("seconds"),
              "kernel_samples": build_meta.get("kernel_samples")}
    for key in ("retrained_from", "extended_from"):
        if build_meta.get(key):
            record[key] = build_meta[key]
    return record


def build(backend: str, out_dir, store=None, progress: bool = True, rules_file=None,
          **overrides) -> BuildResult:
    """Build a predictor bundle for ``backend`` into ``out_dir`` (see the module docstring);
    ``overrides`` set :class:`BuildConfig` fields (``minutes``, ``max_samples``...)."""
    config = BuildConfig.for_backend(backend, **overrides)
    return Builder(config, store=store, progress=Progress(progress),
                   rules_file=rules_file).run(out_dir)
