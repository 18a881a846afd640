"""Where a prediction's error comes from: the cost models, or the profiler-to-whole-run gap.

    python benchmarks/error_split.py [--backend ort-cpu] [--variants 5] [--families F,...]

The cost models learn each kernel's time from the backend's profiler; a model's prediction is
their sum plus the bundle's overhead terms, fitted on whole runs.  For the first ``--variants``
evaluation models of each family (``benchmarks/evaluate.py``'s dataset, measured there: run it
first) this profiles each model as the builder does and splits the error in two:

- **cost models against the profiler**: the bundle's cost models (no overhead) on the backend's
  own kernels, summed, over the sum of the profiled kernel times;
- **profiler against the whole run**: the profiled sum minus the evaluation's ground truth,
  per kernel (what the overhead terms have to take away).

Writes ``benchmarks/results/error-split-<backend>.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

from eval_lib import dataset
from eval_lib.report import write_results

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = Path("~/.cache/nnmeter-tvm")


def split_one(entry, builder, predictor) -> dict:
    """One model's ground truth, profiled sum and the cost models' sum on the same kernels."""
    from nnmeter_tvm.builder.build import truth_kernels

    timed = truth_kernels(entry.graph, builder.timed_kernels(entry.item.model()),
                          builder._block(), predictor)
    kernels = [k for k, _ in timed]
    cost, _ = predictor.kernel_ms(entry.graph, kernels)
    return {"model": entry.item.name, "family": entry.item.family, "kernels": len(kernels),
            "measured_ms": entry.measured_ms,
            "profiled_ms": float(sum(ms for _, ms in timed)),
            "cost_models_ms": float(cost.sum()),
            "predicted_ms": predictor.predict_graph(entry.graph).total_ms}


def family_summary(rows: list[dict]) -> dict:
    def med(values):
        return float(np.median(values))

    return {"models": len(rows),
            "cost_over_profiled": med([r["cost_models_ms"] / r["profiled_ms"] for r in rows]),
            "profiled_over_measured": med([r["profiled_ms"] / r["measured_ms"] for r in rows]),
            "profiler_excess_us_per_kernel": med(
                [1000 * (r["profiled_ms"] - r["measured_ms"]) / r["kernels"] for r in rows]),
            "predicted_over_measured": med([r["predicted_ms"] / r["measured_ms"] for r in rows])}


def main(argv=None) -> int:
    from nnmeter_tvm.backends import get_backend
    from nnmeter_tvm.backends.machine import describe_machine
    from nnmeter_tvm.backends.store import Store
    from nnmeter_tvm.builder.build import Builder, BuildConfig
    from nnmeter_tvm.predictors import load_predictor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="ort-cpu")
    ap.add_argument("--variants", type=int, default=5)
    ap.add_argument("--families", default=None, help="comma-separated (default: all evaluated)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    start = time.monotonic()
    plan = dataset.plan_for(args.backend, quick=False)
    wanted = set(args.families.split(",")) if args.families else None
    items = [i for i in plan.items() if i.index < args.variants
             and (wanted is None or i.family in wanted)]
    entries = dataset.prepare(items, progress=False, cache_dir=CACHE)
    dataset.load_cached(entries, get_backend(args.backend), Store(None))
    entries = [e for e in entries if e.complete]
    if not entries:
        print(f"error_split: none of these models is measured yet; run "
              f"`python benchmarks/evaluate.py --backend {args.backend}` first", file=sys.stderr)
        return 2
    predictor = load_predictor(args.backend)
    builder = Builder(BuildConfig.for_backend(args.backend))
    builder.predictor = predictor
    rows = []
    for n, e in enumerate(entries):
        rows.append(split_one(e, builder, predictor))
        print(f"  {n + 1}/{len(entries)} {e.item.name}", file=sys.stderr, flush=True)
    families = sorted({r["family"] for r in rows})
    result = {"backend": args.backend,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": describe_machine(), "predictor": predictor.info,
              "profiling": {"repeats": builder.config.repeats,
                            "min_runs": builder.config.min_runs,
                            "min_time_s": builder.config.min_time_s},
              "seconds": round(time.monotonic() - start, 1),
              "families": {f: family_summary([r for r in rows if r["family"] == f])
                           for f in families},
              "overall": family_summary(rows), "rows": rows}
    write_results(Path(args.out) / f"error-split-{args.backend}", result, render(result))
    o = result["overall"]
    print(f"{args.backend}: cost models / profiler {o['cost_over_profiled']:.3f}, profiler / "
          f"whole run {o['profiled_over_measured']:.3f} (median over {len(rows)} models)")
    return 0


def render(r: dict) -> str:
    m, oh = r["machine"], r["predictor"]
    lines = [f"# Error split: {r['backend']}", "",
             f"Generated by `benchmarks/error_split.py` on {r['date']} in {r['seconds']} s; "
             f"{m.get('cpu_model')}, {m.get('cores')} cores.  Every figure is read from "
             f"`error-split-{r['backend']}.json`.  Ground truth: `benchmarks/evaluate.py`'s "
             "measurements of the same models; profiled as the builder profiles "
             f"({r['profiling']['repeats']} sessions, per-kernel median).  Medians per family.",
             "", "| family | models | cost models / profiler | profiler / whole run | profiler "
             "excess per kernel (µs) | predicted / measured |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, s in list(r["families"].items()) + [("**overall**", r["overall"])]:
        lines.append(f"| {name} | {s['models']} | {s['cost_over_profiled']:.3f} | "
                     f"{s['profiled_over_measured']:.3f} | "
                     f"{s['profiler_excess_us_per_kernel']:.2f} | "
                     f"{s['predicted_over_measured']:.3f} |")
    lines += ["", f"The bundle's overhead terms: {oh['fixed_overhead_ms']:.4f} ms per run, "
              f"{1000 * oh['per_kernel_overhead_ms']:.2f} µs per kernel, kernel scale "
              f"{oh['kernel_scale']:.3f} (a kernel is never priced below a quarter of its "
              "cost-model time)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
