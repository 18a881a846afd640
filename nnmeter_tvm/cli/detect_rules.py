"""``nnmeter-tvm detect-rules --backend B -o FILE``: detect a backend's fusion rules by timing.

Builds test cases from the ops, pairs, chains and connections the zoo's models (and
``--models``) contain, plus curated ones, times them on the backend under the measuring
protocol (each test model in ``--repeats`` interleaved sessions, by the sum of its kernels'
durations in the backend's profiler) and writes a rules file (schema: rules/SCHEMA.md).
``--add-to RULES`` keeps a file's rules and tests only the patterns it lacks.  Every
measurement goes to the measurement store first, so a run stopped by Ctrl-C or by
``--budget`` resumes where it stopped when run again.
"""
from __future__ import annotations

import sys
import time


# timing alone cannot see a layout pass: on onnxruntime such rules reproduced 39.8 % of its
# kernels on the zoo, against 99.96 % with its kernel list (benchmarks/results/xeon/rules/)
NO_OBSERVE_NOTE = (
    "note: --no-observe: these rules have no layout model, so kernels the backend inserts for "
    "its own layout are not predicted, and a fusion it makes in one layout only is applied in "
    "every layout or in none; where the backend lists its kernels, check with `nnmeter-tvm "
    "kernels MODEL.onnx --rules {out} --compare-truth --backend {backend}`")


def add_parser(sub):
    p = sub.add_parser("detect-rules", help="detect a backend's fusion rules by timing test models")
    p.add_argument("--backend", required=True, help="backend name, e.g. ort-cpu or tvm-llvm")
    p.add_argument("-o", "--output", required=True, help="rules file to write (JSON)")
    p.add_argument("--alpha", type=float, default=0.5,
                   help="fused when T1 + T2 - T12 > alpha * min(T1, T2) (default 0.5)")
    p.add_argument("--budget", type=float, default=900.0, metavar="SECONDS",
                   help="stop measuring after this long; run again to resume (default 900)")
    p.add_argument("--families", default="all",
                   help="zoo families whose patterns to test, comma-separated (default all; "
                        "none: only --models)")
    p.add_argument("--models", nargs="+", default=(), metavar="MODEL.onnx",
                   help="more models whose patterns to test (e.g. a family the zoo lacks)")
    p.add_argument("--add-to", metavar="RULES",
                   help="a rules file to add to: its rules, layout and rewrites are kept and "
                        "only patterns it has no rule for are tested")
    p.add_argument("--variants", type=int, default=2, help="zoo variants per family (default 2)")
    p.add_argument("--store", help="measurement store (default: $NNMETER_TVM_STORE or "
                                   "~/.cache/nnmeter-tvm/measurements.sqlite)")
    p.add_argument("--min-time", type=float, default=0.05, metavar="SECONDS",
                   help="timed seconds per session of a test model (protocol default 0.5; "
                        "tiny models need less, and the value is recorded in the rules file)")
    p.add_argument("--shapes", default=None, metavar="CxHW,...",
                   help="test shapes, e.g. 16x56,24x40 (channels x square size; default per "
                        "backend: 32x56,18x56 for ort-cpu, 8x32,12x24 for tvm-llvm).  An op "
                        "under a microsecond at every shape gets no timed verdict")
    p.add_argument("--launch-shape", default="auto", metavar="CxHW|none",
                   help="the launch probe's shape, timed as whole runs so that a fused pair "
                        "costs one kernel launch and a separate pair two (default: 4x2 on "
                        "tvm-llvm; on ort-cpu the blocked layout's block of channels at 2x2, "
                        "16x2 with AVX-512)")
    p.add_argument("--repeats", type=int, default=3,
                   help="fresh sessions per test model, interleaved (default 3)")
    p.add_argument("--whole-runs", action="store_true",
                   help="time whole runs instead of the sum of the profiler's kernel times")
    p.add_argument("--no-observe", action="store_true",
                   help="never read the backend's own kernels: timing alone, as for a backend "
                        "that lists none (no layout model, so no inserted layout kernels and no "
                        "layout conditions; no views)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def parse_shapes(text: str, option: str = "--shapes") -> tuple:
    """``"16x56,24x40"`` -> (CaseShape(16, 56), CaseShape(24, 40))."""
    from ..builder.testcases import CaseShape
    from ..errors import NNMeterError

    shapes = []
    for item in text.split(","):
        c, _, hw = item.strip().partition("x")
        if not (c.isdigit() and hw.isdigit() and int(c) > 0 and int(hw) > 0):
            raise NNMeterError(f"{option}: {item.strip()!r} is not CxHW (e.g. 16x56)")
        shapes.append(CaseShape(int(c), int(hw)))
    return tuple(shapes)


def run(args) -> int:
    from nnmeter_tvm.rules import check_backend, dump
    from nnmeter_tvm.rules import load as load_rules

    from .. import zoo
    from ..backends import ProtocolConfig, get_backend
    from ..backends.store import Store
    from ..builder.rules_tester import RuleTester
    from ..builder.testcases import collect_patterns
    from ..errors import NNMeterError
    from ..onnx_import import load_graph

    if args.alpha <= 0:
        raise NNMeterError(f"--alpha must be positive, got {args.alpha}")
    if args.repeats < 1:
        raise NNMeterError(f"--repeats must be at least 1, got {args.repeats}")
    shapes = parse_shapes(args.shapes) if args.shapes else None
    launch = {"auto": "auto", "none": None}.get(args.launch_shape)
    if args.launch_shape not in ("auto", "none"):
        launch = parse_shapes(args.launch_shape, "--launch-shape")
        if len(launch) != 1:
            raise NNMeterError(f"--launch-shape: one shape (CxHW) or none, got "
                               f"{args.launch_shape!r}")
        launch = launch[0]
    families = {"all": zoo.FAMILIES, "none": ()}.get(args.families,
                                                     tuple(args.families.split(",")))
    unknown = [f for f in families if f not in zoo.FAMILIES]
    if unknown:
        raise NNMeterError(f"--families: unknown family {unknown[0]!r}; choose from "
                           f"{', '.join(zoo.FAMILIES)}, all or none")
    known = check_backend(load_rules(args.add_to), args.backend, f"--add-to {args.add_to}") \
        if args.add_to else None
    graphs = [load_graph(m) for f in families for m in zoo.variants(f, args.variants)]
    graphs += [load_graph(path) for path in args.models]
    if not graphs:
        raise NNMeterError("no models to take patterns from: --families none needs --models")
    patterns = collect_patterns(graphs)
    config = ProtocolConfig(min_time_s=args.min_time, warmup_s=0.02, min_runs=10, max_time_s=3.0)
    backend = get_backend(args.backend, config=config)
    progress = None if args.no_progress else Progress(sys.stderr, args.budget)
    store = Store(args.store)
    tester = RuleTester(backend, alpha=args.alpha, store=store, config=config,
                        budget_s=args.budget, progress=progress, observe=not args.no_observe,
                        repeats=args.repeats, how="session" if args.whole_runs else "kernels",
                        shapes=shapes, launch=launch)
    rules = tester.detect(patterns, graphs, known=known)
    if progress is not None:
        progress.close()
    path = dump(rules, args.output)
    rep = tester.measurer.report
    kinds = {}
    for r in rules.rules:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    print(f"wrote {path}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
          + f"; layout: {rules.layout.name if rules.layout else 'none'}; "
          f"{rep.measurements} measured, {rep.reused} reused from {store.path}, "
          f"{rep.seconds:.0f} s")
    added = rules.detection.get("added_to")
    if added:
        print(f"added {added['added']} rules to the {added['rules']} of {args.add_to}")
    origins = rules.detection.get("verdicts_by_origin", {})
    print("verdicts: " + ", ".join(f"{n} {k}" for k, n in sorted(origins.items())))
    if args.no_observe:
        print(NO_OBSERVE_NOTE.format(out=path, backend=args.backend))
    if rep.failed:
        print(f"{len(rep.failed)} test models failed, e.g. {rep.failed[0]}")
    if not rep.complete:
        print(f"stopped by --budget {args.budget:.0f} s; run the same command again to resume")
        return 3
    return 0


class Progress:
    """A one-line progress bar: stage, rules done of the stage's total, measurements, time."""

    def __init__(self, stream, budget_s: float | None = None, width: int = 24):
        self.stream, self.budget_s, self.width = stream, budget_s, width
        self.start = time.perf_counter()
        self.stage, self.total, self.done, self.measured, self.label = "", 0, 0, 0, ""
        self.tty = stream.isatty()
        self._last = 0.0

    def __call__(self, event, *args):
        if event == "stage":
            self.stage, self.total, self.done = args[0], args[1], 0
        elif event == "rule":
            self.done += 1
            self.label = args[0]
        elif event == "measure":
            self.measured += 1
        self.draw(force=event != "measure")

    def draw(self, force=False):
        now = time.perf_counter()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(frac * self.width)
        elapsed = now - self.start
        budget = f"/{self.budget_s:.0f}" if self.budget_s else ""
        line = (f"[{bar:<{self.width}}] {self.stage} {self.done}/{self.total} "
                f"{self.measured} measured {elapsed:.0f}{budget} s {self.label}")[:110]
        if self.tty:
            self.stream.write("\r" + line.ljust(110))
        elif force:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
