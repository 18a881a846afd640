"""The noise ceiling of kernel samples: how well two measurements of the same kernel agree.

    python benchmarks/kernel_noise.py [--backend ort-cpu] [--packs 20] [--repeats 3]

The builder times each kernel sample inside a small model of several kernels side by side
(``builder.kernel_models.build_model``), profiled under the protocol in ``--repeats`` fresh
sessions.  Here the first ``--packs`` such models of a build's sample log (default: the build's
own log) are profiled twice, exactly as the builder does, and each kernel's two times compared
(``|a - b| / min(a, b)``).  A per-kernel cost model cannot be scored higher than this agreement,
so it bounds the held-out ±10 % accuracy a bundle's ``families`` report.  ``--repeats 1`` shows
what one session per model gives.  Writes ``benchmarks/results/kernel-noise-<backend>.json``
and ``.md``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

from nnmeter_tvm.backends.machine import describe_machine
from nnmeter_tvm.builder.build import Builder, BuildConfig
from nnmeter_tvm.builder.kernel_models import build_model
from eval_lib.report import write_results

RESULTS = Path(__file__).resolve().parent / "results"


def pack_units(log_path: Path, count: int, spread: bool = False) -> list[dict]:
    """The log's first ``count`` kernel models, or ``count`` evenly spaced over it (``spread``:
    the first ones are all of one origin, the initial samples)."""
    units = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    packs = [u for u in units if u.get("kind") == "pack" and u.get("kernels")]
    if spread and len(packs) > count:
        return [packs[i] for i in np.linspace(0, len(packs) - 1, count).round().astype(int)]
    return packs[:count]


def agreement(builder: Builder, units: list[dict]) -> tuple[np.ndarray, list[dict]]:
    """Relative differences of every kernel's two times, and per-kernel rows."""
    diffs, rows = [], []
    for unit in units:
        model = build_model(unit["specs"], seed=unit.get("seed", 0))
        first, second = builder.timed_kernels(model), builder.timed_kernels(model)
        for a, b in zip(first, second):
            if a.ms and b.ms and a.nodes == b.nodes:
                d = abs(a.ms - b.ms) / min(a.ms, b.ms)
                diffs.append(d)
                rows.append({"op": a.op_type, "a_ms": a.ms, "b_ms": b.ms, "diff": d})
    return np.array(diffs), rows


def summary(diffs: np.ndarray, rows: list[dict]) -> dict:
    small = np.array([min(r["a_ms"], r["b_ms"]) < 0.02 for r in rows])

    def within(mask, tol):
        return float(100 * np.mean(diffs[mask] <= tol)) if mask.any() else None

    every = np.ones(len(diffs), dtype=bool)
    return {"kernels": int(len(diffs)), "within5": within(every, 0.05),
            "within10": within(every, 0.10), "median_diff": float(np.median(diffs) * 100),
            "under_20us": {"kernels": int(small.sum()), "within10": within(small, 0.10)},
            "from_20us": {"kernels": int((~small).sum()), "within10": within(~small, 0.10)}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="ort-cpu")
    ap.add_argument("--packs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=None,
                    help="sessions per model (default: the build's)")
    ap.add_argument("--min-runs", type=int, default=None,
                    help="timed runs per session, at least (default: the build's)")
    ap.add_argument("--min-time", type=float, default=None,
                    help="seconds of timed runs per session, at least (default: the build's)")
    ap.add_argument("--spread", action="store_true",
                    help="take the packs evenly spaced over the log, not the first ones")
    ap.add_argument("--log", default=None, help="sample log (default: the build's)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    overrides = {k: v for k, v in (("repeats", args.repeats), ("min_runs", args.min_runs),
                                   ("min_time_s", args.min_time)) if v is not None}
    config = BuildConfig.for_backend(args.backend, **overrides)
    builder = Builder(config, store=args.log)
    log_path = Path(builder.log.path)
    units = pack_units(log_path, args.packs, args.spread)
    if not units:
        print(f"kernel_noise: {log_path} has no measured kernel models; run "
              f"`nnmeter-tvm build --backend {args.backend}` first", file=sys.stderr)
        return 2
    start = time.monotonic()
    diffs, rows = agreement(builder, units)
    result = {"backend": args.backend, "date": datetime.datetime.now(datetime.timezone.utc)
              .isoformat(timespec="seconds"), "machine": describe_machine(),
              "sample_log": str(log_path), "packs": len(units), "spread": args.spread,
              "repeats": config.repeats,
              "protocol": {"min_runs": config.min_runs, "min_time_s": config.min_time_s},
              "seconds": round(time.monotonic() - start, 1), **summary(diffs, rows),
              "rows": rows}
    out = Path(args.out)
    name = f"kernel-noise-{args.backend}" + "".join(
        f"-{tag}{value}" for tag, value in (("r", args.repeats), ("n", args.min_runs),
                                            ("t", args.min_time)) if value is not None)
    write_results(out / name, result, render(result))
    print(f"{args.backend}: {result['kernels']} kernels measured twice, "
          f"{result['within10']:.1f} % agree within ±10 % ({result['within5']:.1f} % within "
          f"±5 %); wrote {out / name}.json and .md")
    return 0


def render(r: dict) -> str:
    m = r["machine"]
    return (f"# Kernel-sample noise ceiling: {r['backend']}\n\n"
            f"Generated by `benchmarks/kernel_noise.py` on {r['date']} in {r['seconds']} s; "
            f"{m.get('cpu_model')}, {m.get('cores')} cores.  {r['packs']} kernel models of the "
            f"sample log `{r['sample_log']}`, each profiled twice as the builder does "
            f"({r['repeats']} fresh sessions per profile, >= {r['protocol']['min_runs']} runs "
            f"and >= {r['protocol']['min_time_s']} s per session).\n\n"
            "| kernels | within ±5 % | within ±10 % | median difference | ±10 %, kernels < 20 µs "
            "| ±10 %, kernels >= 20 µs |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n"
            f"| {r['kernels']} | {r['within5']:.1f} % | {r['within10']:.1f} % | "
            f"{r['median_diff']:.1f} % | {_pct(r['under_20us'])} | {_pct(r['from_20us'])} |\n\n"
            "A per-kernel cost model cannot be scored above this agreement: it bounds the "
            "held-out ±10 % accuracy in a bundle's `families`.\n")


def _pct(block: dict) -> str:
    v = block["within10"]
    return "-" if v is None else f"{v:.1f} % (n={block['kernels']})"


if __name__ == "__main__":
    sys.exit(main())
