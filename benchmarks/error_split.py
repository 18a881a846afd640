"""Where a prediction's error comes from: the cost models, or the profiler-to-whole-run gap.

    python benchmarks/error_split.py [--backend ort-cpu] [--variants 5] [--families F,...]
    python benchmarks/error_split.py --misses [--backend ort-cpu] [--families F,...]

The cost models learn each kernel's time from the backend's profiler; a model's prediction is
their sum plus the bundle's overhead terms, fitted on whole runs.  For the first ``--variants``
evaluation models of each family (``benchmarks/evaluate.py``'s dataset, measured there: run it
first) this profiles each model as the builder does and splits the error in two:

- **cost models against the profiler**: the bundle's cost models (no overhead) on the backend's
  own kernels, summed, over the sum of the profiled kernel times;
- **profiler against the whole run**: the profiled sum minus the evaluation's ground truth,
  per kernel (what the overhead terms have to take away).

Writes ``benchmarks/results/error-split-<backend>.json`` and ``.md``.

``--misses`` takes instead every model the evaluation's results file has outside ±10 % (the
evaluation's own ground truth, so nothing is measured but the profiles) and also lists, for
each, the kernels whose cost-model time is furthest from their profiled time, with their
configurations and how many of the bundle's samples are near each (``near_samples``: a gap
in the samples or an error of the model): ``error-split-misses-<backend>.json`` and ``.md``.
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


# a sample is near a kernel when it is of its family, has these fields equal, and every other
# field but the epilogue's within a factor of 2 of the kernel's (a zero only near a zero)
NEAR_EXACT = ("kh", "kw", "sh", "sw", "layout", "op_code", "direction")
NEAR_FACTOR = 2.0


def near_samples(samples: dict, family: str, raw) -> int:
    """How many of ``samples`` (family -> raw rows) are near the kernel of raw row ``raw``."""
    from nnmeter_tvm.features.schema import raw_fields

    rows = samples.get(family)
    if rows is None:
        return 0
    near = np.ones(len(rows), bool)
    for j, field in enumerate(raw_fields(family)):
        if field.startswith("ep_") or field in ("dtype_bytes", "channel_block"):
            continue
        v, col = raw[j], rows[:, j]
        if field in NEAR_EXACT or v == 0:
            near &= col == v
        else:
            near &= (col >= v / NEAR_FACTOR) & (col <= v * NEAR_FACTOR)
    return int(near.sum())


def split_one(entry, builder, predictor, worst: int = 0, samples: dict | None = None) -> dict:
    """One model's ground truth, profiled sum and the cost models' sum on the same kernels;
    with ``worst``, also that many kernels furthest (in ms) from their profiled time, and how
    many of ``samples`` are near each."""
    from nnmeter_tvm.builder.build import truth_kernels

    timed = truth_kernels(entry.graph, builder.timed_kernels(entry.item.model()),
                          builder._block(), predictor)
    kernels = [k for k, _ in timed]
    cost, _ = predictor.kernel_ms(entry.graph, kernels)
    row = {"model": entry.item.name, "family": entry.item.family, "kernels": len(kernels),
           "measured_ms": entry.measured_ms,
           "profiled_ms": float(sum(ms for _, ms in timed)),
           "cost_models_ms": float(cost.sum()),
           "predicted_ms": predictor.predict_graph(entry.graph).total_ms}
    if worst:
        gaps = sorted(range(len(timed)), key=lambda i: -abs(cost[i] - timed[i][1]))[:worst]
        row["worst_kernels"] = [kernel_gap(timed[i][0], entry.graph, timed[i][1], cost[i],
                                           samples or {}) for i in gaps]
    return row


def kernel_gap(kernel, graph, profiled_ms: float, cost_ms: float, samples: dict) -> dict:
    """One kernel's profiled and cost-model times, its configuration's non-zero fields and how
    many of ``samples`` (family -> raw rows) are near it."""
    from nnmeter_tvm.features.configs import kernel_config
    from nnmeter_tvm.features.schema import raw_fields

    family, raw = kernel_config(kernel, graph)
    config = {f: float(v) for f, v in zip(raw_fields(family), raw) if v}
    return {"type": kernel.type, "nodes": len(kernel.nodes), "family": family,
            "profiled_ms": float(profiled_ms), "cost_ms": float(cost_ms), "config": config,
            "near_samples": near_samples(samples, family, raw)}


def samples_by_family(predictor) -> dict:
    """The raw rows of the kernel samples a bundle carries, per family."""
    from nnmeter_tvm.builder.build import bundle_builder

    rows: dict[str, list] = {}
    for sample in bundle_builder(predictor).samples():
        rows.setdefault(sample["family"], []).append(sample["raw"])
    return {family: np.array(r) for family, r in rows.items()}


def missed_items(plan, results_path: Path) -> list:
    """The plan's items that the evaluation's results file has outside ±10 %."""
    import json

    models = json.loads(results_path.read_text())["models"]
    missed = {m["model"] for m in models
              if abs(m["predicted_ms"] / m["measured_ms"] - 1) > 0.10}
    return [i for i in plan.items() if i.name in missed]


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
    ap.add_argument("--misses", action="store_true",
                    help="the models the evaluation misses by more than 10 %%, with their "
                         "worst-priced kernels")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    start = time.monotonic()
    plan = dataset.plan_for(args.backend, quick=False)
    wanted = set(args.families.split(",")) if args.families else None
    results_path = RESULTS / f"evaluate-{args.backend}.json"
    if args.misses:
        if not results_path.exists():
            print(f"error_split: {results_path} is missing; run `python benchmarks/evaluate.py "
                  f"--backend {args.backend}` first", file=sys.stderr)
            return 2
        items = missed_items(plan, results_path)
    else:
        items = [i for i in plan.items() if i.index < args.variants]
    items = [i for i in items if wanted is None or i.family in wanted]
    entries = dataset.prepare(items, progress=False, cache_dir=CACHE)
    if args.misses:  # the evaluation's own ground truth, whatever this machine's store holds
        dataset.load_results(entries, results_path)
    else:
        dataset.load_cached(entries, get_backend(args.backend), Store(None))
    entries = [e for e in entries if e.complete]
    if not entries:
        print(f"error_split: none of these models is measured yet; run "
              f"`python benchmarks/evaluate.py --backend {args.backend}` first", file=sys.stderr)
        return 2
    predictor = load_predictor(args.backend)
    builder = Builder(BuildConfig.for_backend(args.backend))
    builder.predictor = predictor
    samples = samples_by_family(predictor) if args.misses else None
    rows = []
    for n, e in enumerate(entries):
        rows.append(split_one(e, builder, predictor, worst=3 if args.misses else 0,
                              samples=samples))
        print(f"  {n + 1}/{len(entries)} {e.item.name}", file=sys.stderr, flush=True)
    families = sorted({r["family"] for r in rows})
    result = {"backend": args.backend,
              "stem": "error-split-misses" if args.misses else "error-split",
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": describe_machine(), "predictor": predictor.info,
              "profiling": {"repeats": builder.config.repeats,
                            "min_runs": builder.config.min_runs,
                            "min_time_s": builder.config.min_time_s},
              "seconds": round(time.monotonic() - start, 1),
              "families": {f: family_summary([r for r in rows if r["family"] == f])
                           for f in families},
              "overall": family_summary(rows), "rows": rows}
    write_results(Path(args.out) / f"{result['stem']}-{args.backend}", result, render(result))
    o = result["overall"]
    print(f"{args.backend}: cost models / profiler {o['cost_over_profiled']:.3f}, profiler / "
          f"whole run {o['profiled_over_measured']:.3f} (median over {len(rows)} models)")
    return 0


def render(r: dict) -> str:
    m, oh = r["machine"], r["predictor"]
    lines = [f"# Error split: {r['backend']}", "",
             f"Generated by `benchmarks/error_split.py` on {r['date']} in {r['seconds']} s; "
             f"{m.get('cpu_model')}, {m.get('cores')} cores.  Every figure is read from "
             f"`{r['stem']}-{r['backend']}.json`.  Ground truth: `benchmarks/evaluate.py`'s "
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
    if any("worst_kernels" in row for row in r["rows"]):
        lines += render_misses(r["rows"])
    return "\n".join(lines) + "\n"


def render_misses(rows: list[dict]) -> list[str]:
    """Each missed model, then its kernels furthest from their profiled time."""
    lines = ["", "## The models outside ±10 % and their worst-priced kernels", "",
             "Error: predicted against the evaluation's ground truth.  A kernel's gap: the cost "
             "model's time against the profiler's for that kernel in this model.  Samples near: "
             "the bundle's kernel samples of its family with the same kernel size, stride, "
             f"layout and op, and every other field within {NEAR_FACTOR:g}x of the kernel's "
             "(the epilogue aside).", "",
             "| model | measured (ms) | predicted | error | cost models / profiler | kernel | "
             "profiled (ms) | cost model (ms) | samples near | configuration |",
             "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |"]
    for row in sorted(rows, key=lambda x: (x["family"], x["model"])):
        head = (f"| {row['model']} | {row['measured_ms']:.3f} | {row['predicted_ms']:.3f} | "
                f"{100 * (row['predicted_ms'] / row['measured_ms'] - 1):+.1f} % | "
                f"{row['cost_models_ms'] / row['profiled_ms']:.3f}")
        for n, k in enumerate(row["worst_kernels"]):
            config = ", ".join(f"{f} {v:g}" for f, v in k["config"].items())
            lead = head if n == 0 else "| | | | |"
            lines.append(f"{lead} | `{k['type']}` | {k['profiled_ms']:.3f} | "
                         f"{k['cost_ms']:.3f} | {k['near_samples']} | {config} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
