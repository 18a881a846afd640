"""The noise ceiling of the measurement protocol on one backend (shared/MEASURE.md).

    python benchmarks/noise.py --backend ort-cpu [--per-family 5] [--families resnet,vgg]
                               [--input-size S] [--store PATH]

Every model (zoo seed 0, variants 0..N-1 of each family) is built once and measured twice, in
two passes with different orders (pass 1 in family order, pass 2 in a seeded shuffle).  Each
measurement gets a fresh onnxruntime session (ort-cpu) or a fresh VM on the same compiled
module (tvm-llvm), under the full protocol (pinned core, machine-wide lock, drift guard).

Reports the fraction of models whose two medians agree within ±5 % and ±10 %
(``|a - b| / min(a, b)``), the worst cases, the drift guard's readings and re-measurements, the
machine and the date, in ``benchmarks/results/noise-<backend>.json`` and ``.md``.  Every
measurement is also appended to the measurement store.

tvm-llvm defaults to input size 32 (the default pipeline does no scheduling: kernels are plain
loop nests, 10-100x slower than onnxruntime); ort-cpu to each family's default input size.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np

from nnmeter_tvm.backends import get_backend
from nnmeter_tvm.backends.base import load
from nnmeter_tvm.backends.machine import describe_machine
from nnmeter_tvm.backends.store import Store
from nnmeter_tvm.errors import NNMeterError
from eval_lib.report import write_results

RESULTS = Path(__file__).resolve().parent / "results"
INPUT_SIZE = {"tvm-llvm": 32}
NOTES = {"tvm-llvm": "Input size 32 for every family: TVM's default CPU pipeline does no "
                     "scheduling (plain loop nests, 10-100x slower than onnxruntime), so larger "
                     "inputs make the zoo take hours to compile and time."}


def log(msg: str):
    print(msg, file=sys.stderr, flush=True)


def agreement(a: float, b: float) -> float:
    return abs(a - b) / min(a, b)


def build_models(backend, families, per_family: int, input_size):
    from nnmeter_tvm import zoo

    models, failed = [], []
    for fam in families:
        for i, proto in enumerate(zoo.variants(fam, per_family, seed=0, input_size=input_size)):
            name = f"{fam}_s0_i{i}"
            loaded = load(proto)
            t = time.perf_counter()
            try:
                runner = backend.prepare(loaded)
            except NNMeterError as exc:
                failed.append({"model": name, "error": str(exc)})
                log(f"  {name}: cannot build: {exc}")
                continue
            models.append({"model": name, "family": fam, "key": loaded.key(name),
                           "runner": runner, "build_s": time.perf_counter() - t})
            log(f"  built {name} in {models[-1]['build_s']:.1f} s")
    return models, failed


def run_passes(backend, models, store, timeout_s: float, seed: int = 1):
    orders = [list(range(len(models))), list(np.random.default_rng(seed).permutation(len(models)))]
    for p, order in enumerate(orders):
        for n, i in enumerate(order, 1):
            entry = models[i]
            m = backend.measure_runner(entry["runner"].fresh(), key=entry["key"],
                                       timeout_s=timeout_s, store=store)
            entry.setdefault("passes", [None, None])[p] = m
            shown = f"{m.median_ms:.4f} ms" if m.ok else f"FAILED ({m.error})"
            log(f"  pass {p + 1} [{n}/{len(order)}] {entry['model']}: {shown}, "
                f"drift {100 * (m.drift or 0):.1f} %, {m.attempts} attempt(s)")


def _m(m) -> dict:
    keep = ("status", "median_ms", "p10_ms", "p90_ms", "runs", "drift", "attempts", "core",
            "total_s", "timestamp", "error")
    return {k: getattr(m, k) for k in keep}


def summarize(backend, models, failed, args, config, wall_s: float) -> dict:
    rows, drifts, attempts = [], [], []
    for e in models:
        a, b = e["passes"]
        for m in (a, b):
            if m.ok:
                drifts.append(m.drift)
                attempts.append(m.attempts)
        diff = agreement(a.median_ms, b.median_ms) if a.ok and b.ok else None
        rows.append({"model": e["model"], "family": e["family"], "key": e["key"],
                     "build_s": round(e["build_s"], 2), "diff": diff,
                     "pass1": _m(a), "pass2": _m(b)})
    ok = [r for r in rows if r["diff"] is not None]
    diffs = np.array([r["diff"] for r in ok])
    per_family = {}
    for fam in dict.fromkeys(r["family"] for r in ok):
        d = np.array([r["diff"] for r in ok if r["family"] == fam])
        med = [r["pass1"]["median_ms"] for r in ok if r["family"] == fam]
        per_family[fam] = {"n": int(len(d)), "within_5": float(np.mean(d <= 0.05)),
                           "within_10": float(np.mean(d <= 0.10)),
                           "median_ms": float(np.median(med))}
    drifts, attempts = np.array(drifts), np.array(attempts)
    return {
        "benchmark": "noise ceiling (shared/MEASURE.md): every model measured twice, two passes "
                     "in different orders; agreement = |a - b| / min(a, b)",
        "backend": backend.name, "backend_version": backend.version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "protocol": {k: v for k, v in dataclasses.asdict(config).items() if k != "lock_path"},
        "timeout_s": args.timeout,
        "input_size": args.input_size or "family default",
        "per_family": args.per_family, "families": args.families,
        "note": NOTES.get(backend.name, ""),
        "models": len(rows), "compared": len(ok), "build_failed": failed,
        "measure_failed": [r["model"] for r in rows if r["diff"] is None],
        "within_5": float(np.mean(diffs <= 0.05)) if len(ok) else None,
        "within_10": float(np.mean(diffs <= 0.10)) if len(ok) else None,
        "median_diff": float(np.median(diffs)) if len(ok) else None,
        "worst": [{"model": r["model"], "diff": r["diff"], "pass1_ms": r["pass1"]["median_ms"],
                   "pass2_ms": r["pass2"]["median_ms"], "drift1": r["pass1"]["drift"],
                   "drift2": r["pass2"]["drift"]}
                  for r in sorted(ok, key=lambda r: -r["diff"])[:10]],
        "drift": {"median": float(np.median(drifts)), "p90": float(np.percentile(drifts, 90)),
                  "max": float(drifts.max()),
                  "above_limit": float(np.mean(drifts > config.drift_limit))}
        if len(drifts) else {},
        "attempts": {"mean": float(attempts.mean()), "max": int(attempts.max()),
                     "remeasured": float(np.mean(attempts > 1))} if len(attempts) else {},
        "per_family_results": per_family,
        "wall_s": round(wall_s, 1),
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
    }


def _load(r: dict) -> str:
    if "load_average_end" in r:
        return f"at the end {r['load_average_end']}"
    return f"during the run {r.get('load_average_during', 'n/a')} (read with uptime)"


def markdown(r: dict) -> str:
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f} %"   # noqa: E731
    m = r["machine"]
    lines = [
        f"# Noise ceiling: {r['backend']} {r['backend_version']}",
        "",
        f"Date {r['date']}; {m['cpu_model']} ({', '.join(m['cpu_flags'])}), {m['cores']} cores; "
        f"Python {m['python']}, onnxruntime {m['onnxruntime']}, TVM {m['tvm']}.",
        f"Models: zoo seed 0, {r['per_family']} variants per family, input size "
        f"{r['input_size']}; each measured twice in two passes with different orders, "
        "fresh session each time, full protocol (one pinned core, machine-wide lock, drift "
        f"guard at {100 * r['protocol']['drift_limit']:.0f} %). Wall time {r['wall_s']} s; "
        f"load average {_load(r)} (other jobs share the machine).",
        r.get("note", ""),
        "",
        "| models compared | within ±5 % | within ±10 % | median difference |",
        "| --- | --- | --- | --- |",
        f"| {r['compared']} | {pct(r['within_5'])} | {pct(r['within_10'])} | "
        f"{pct(r['median_diff'])} |",
        "",
        "Drift guard (reference workload vs. its session baseline, per kept measurement): "
        f"median {pct(r['drift'].get('median'))}, p90 {pct(r['drift'].get('p90'))}, "
        f"max {pct(r['drift'].get('max'))}; {pct(r['drift'].get('above_limit'))} of "
        "measurements kept a drift above the limit after all retries. "
        f"Re-measured: {pct(r['attempts'].get('remeasured'))} of measurements "
        f"(mean {r['attempts'].get('mean', 0):.2f} attempts, max {r['attempts'].get('max')}).",
        "",
    ]
    if r["build_failed"] or r["measure_failed"]:
        lines += [f"Not compared: {len(r['build_failed'])} failed to build, "
                  f"{len(r['measure_failed'])} failed to measure.", ""]
    lines += ["## Worst cases", "",
              "| model | pass 1 ms | pass 2 ms | difference | drift 1 | drift 2 |",
              "| --- | --- | --- | --- | --- | --- |"]
    for w in r["worst"]:
        lines.append(f"| {w['model']} | {w['pass1_ms']:.4f} | {w['pass2_ms']:.4f} | "
                     f"{pct(w['diff'])} | {pct(w['drift1'])} | {pct(w['drift2'])} |")
    lines += ["", "## Per family", "", "| family | n | within ±5 % | within ±10 % | median ms |",
              "| --- | --- | --- | --- | --- |"]
    for fam, f in r["per_family_results"].items():
        lines.append(f"| {fam} | {f['n']} | {pct(f['within_5'])} | {pct(f['within_10'])} | "
                     f"{f['median_ms']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from nnmeter_tvm import zoo

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="ort-cpu")
    p.add_argument("--per-family", type=int, default=5)
    p.add_argument("--families", type=lambda s: [f for f in s.split(",") if f],
                   default=None, help="comma-separated zoo families (default: all)")
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--store", default=None, help="measurement store (default: the usual one)")
    p.add_argument("--out", default=None, help="results file stem (default noise-<backend>)")
    args = p.parse_args(argv)
    args.families = args.families or list(zoo.FAMILIES)
    args.input_size = args.input_size or INPUT_SIZE.get(args.backend)
    backend = get_backend(args.backend)
    start = time.perf_counter()
    log(f"noise ceiling on {args.backend}: building {args.per_family} x {len(args.families)} "
        "models")
    models, failed = build_models(backend, args.families, args.per_family, args.input_size)
    with Store(args.store) as store:
        run_passes(backend, models, store, args.timeout)
    result = summarize(backend, models, failed, args, backend.config, time.perf_counter() - start)
    stem = RESULTS / (args.out or f"noise-{args.backend}")
    write_results(stem, result, markdown(result))
    log(markdown(result))
    log(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
