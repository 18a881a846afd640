"""Whole-model accuracy of a predictor bundle against measurements under the protocol.

    python benchmarks/accuracy.py --backend ort-cpu [--predictor NAME|DIR] [--build] [--variants 10]

For every zoo family, ``--variants`` variants (zoo seed 0: the builder draws its models from
another seed) are predicted and measured twice, in two passes with different orders (forward,
then reversed); the measured latency is the mean of the two, and the fraction of models whose
two measurements agree within ±5 / ±10 % is the noise ceiling (shared/MEASURE.md).  Writes
``benchmarks/results/accuracy-<backend>.json``: ±5 / ±10 % accuracy and RMSPE overall and per
family, the noise ceiling, and every model's numbers.  Measurements go to the measurement store,
so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nnmeter_tvm import zoo
from nnmeter_tvm.backends import get_backend
from nnmeter_tvm.backends.machine import describe_machine
from nnmeter_tvm.backends.store import Store
from nnmeter_tvm.onnx_import import load_graph
from nnmeter_tvm.predictors import load_predictor

RESULTS = Path(__file__).resolve().parent / "results"
INPUT_SIZE = {"tvm-llvm": 64}  # untuned TVM is 10-100x slower than onnxruntime: small inputs


def _stats(pred, meas) -> dict:
    pred, meas = np.asarray(pred, float), np.asarray(meas, float)
    if not len(meas):
        return {"n": 0}
    err = (pred - meas) / meas
    return {"n": int(len(meas)), "acc5": float(np.mean(np.abs(err) <= 0.05)),
            "acc10": float(np.mean(np.abs(err) <= 0.10)),
            "rmspe": float(np.sqrt(np.mean(err ** 2)) * 100),
            "mean_error": float(np.mean(err) * 100)}


def measure_chunk(backend, part, store, timeout_s: float, log,
                  cached_only: bool = False) -> tuple[dict, dict]:
    """Both passes over a chunk: each model prepared (compiled) once, timed in pass ``a`` in
    the chunk's order and in pass ``b`` in reverse order.  Stored results are reused."""
    version = backend.version()
    got = {"a": {}, "b": {}}
    runners = {}
    for key, model in part:
        cached = {t: store.get(backend.name, f"{key}#{t}", backend_version=version) for t in "ab"}
        for t, m in cached.items():
            if m is not None:
                got[t][key] = m
        if cached_only or all(m is not None for m in cached.values()):
            continue
        try:
            runners[key] = backend.prepare(model)
        except Exception as exc:  # a model the backend cannot run: reported, skipped
            log(f"  {key}: cannot prepare: {exc}")
    for tag, order in (("a", part), ("b", part[::-1])):
        for key, _ in order:
            if key in got[tag] or key not in runners:
                continue
            m = backend.measure_runner(runners[key], key=f"{key}#{tag}", store=store,
                                       timeout_s=timeout_s)
            got[tag][key] = m
            log(f"  pass {tag} {key}: {m.median_ms if m.ok else m.status} ms"
                f"{'' if m.attempts == 1 else f' ({m.attempts} attempts)'}")
    ok = lambda d: {k: m for k, m in d.items() if m.ok}  # noqa: E731
    return ok(got["a"]), ok(got["b"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="ort-cpu")
    p.add_argument("--predictor", default=None, help="bundle name or folder (default: backend)")
    p.add_argument("--build", action="store_true", help="build a fresh bundle first")
    p.add_argument("--minutes", type=float, default=15.0, help="build budget with --build")
    p.add_argument("--variants", type=int, default=10, help="variants per family (>= 10)")
    p.add_argument("--families", default=",".join(zoo.FAMILIES))
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--store", default=None, help="measurement store (SQLite)")
    p.add_argument("--run", default="", help="tag of this measuring run in the store keys "
                   "(a new tag measures again, e.g. after a disturbed run)")
    p.add_argument("--cached-only", action="store_true",
                   help="score only the models already in the measurement store")
    p.add_argument("--oracle-kernels", action="store_true",
                   help="also price the backend's own kernels of each model (from its profile) "
                        "with the same cost models: separates cost-model error from "
                        "partition error")
    p.add_argument("--measure-only", action="store_true",
                   help="only fill the measurement store (no predictor needed)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    if args.build:
        from nnmeter_tvm.builder.build import build

        out_dir = Path(args.predictor or tempfile.mkdtemp(prefix=f"bundle-{args.backend}-"))
        build(args.backend, out_dir, minutes=args.minutes)
        args.predictor = str(out_dir)
    pred = None if args.measure_only else load_predictor(args.predictor or args.backend)
    backend = get_backend(args.backend)
    size = args.input_size or INPUT_SIZE.get(args.backend)
    families = args.families.split(",")
    store = Store(args.store)

    items, graphs = [], {}
    for family in families:
        for i in range(args.variants):
            key = f"acc{args.run}:{family}:0:{i}:{size or 'default'}"
            model = zoo.generate(family, 0, i, size)
            items.append((key, model))
            graphs[key] = (family, load_graph(model))
    if pred is not None:
        t = time.perf_counter()
        reports = dict(zip(graphs, pred.predict_many([g for _, g in graphs.values()])))
        predict_s = time.perf_counter() - t

    # two passes in different orders, a family-sized chunk at a time
    chunk = len(families)
    order = [items[j] for j in np.random.default_rng(0).permutation(len(items))]
    first, second = {}, {}
    for c in range(0, len(order), chunk):
        a, b = measure_chunk(backend, order[c:c + chunk], store, args.timeout, log,
                             args.cached_only)
        first.update(a)
        second.update(b)
        log(f"measured {len(first)}/{len(order)} models")
    store.close()
    if pred is None:
        log(f"measured {len(first)} + {len(second)} models; run without --measure-only to score")
        return 0

    oracle = {}
    if args.oracle_kernels:
        from nnmeter_tvm.builder.build import truth_kernels

        block = int(getattr(getattr(pred.rules, "layout", None), "block", 0) or 0)
        models = dict(items)
        for n, (key, (family, graph)) in enumerate(graphs.items()):
            if key not in first:
                continue
            truth = backend.truth(models[key])
            kernels = [k for k, _ in truth_kernels(graph, truth.kernels, block, pred)]
            k_ms, _ = pred.kernel_ms(graph, kernels)
            o = pred.overhead
            oracle[key] = (o["fixed_ms"] + o.get("scale", 1.0) * float(k_ms.sum())
                           + o["per_kernel_ms"] * len(kernels))
            log(f"  oracle {n + 1}/{len(graphs)} {key}")

    rows = []
    for key, (family, graph) in graphs.items():
        if key not in first or key not in second:
            continue
        a, b = first[key].median_ms, second[key].median_ms
        r = reports[key]
        rows.append({"key": key, "family": family, "nodes": len(graph),
                     "kernels": len(r.kernels), "fallback_kernels": len(r.fallback_kernels),
                     "predicted_ms": r.total_ms, "measured_ms": (a + b) / 2,
                     "measured_pass_ms": [a, b],
                     "drift": [first[key].drift, second[key].drift],
                     "error": (r.total_ms - (a + b) / 2) / ((a + b) / 2)})
        if key in oracle:
            rows[-1]["predicted_on_backend_kernels_ms"] = oracle[key]

    def block(sel):
        out = {**_stats([r["predicted_ms"] for r in sel], [r["measured_ms"] for r in sel]),
               "noise_ceiling": _stats([r["measured_pass_ms"][0] for r in sel],
                                       [r["measured_pass_ms"][1] for r in sel])}
        with_oracle = [r for r in sel if "predicted_on_backend_kernels_ms" in r]
        if with_oracle:
            out["on_backend_kernels"] = _stats(
                [r["predicted_on_backend_kernels_ms"] for r in with_oracle],
                [r["measured_ms"] for r in with_oracle])
        return out

    result = {
        "backend": args.backend,
        "backend_version": backend.version(),
        "predictor": pred.info,
        "bundle_build": pred.meta.get("build", {}),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "protocol": {"passes": 2, "orders": "models shuffled into chunks; in each chunk pass a "
                     "in order, pass b reversed; each model built/compiled once",
                     "statistic": "median per pass, mean of the passes",
                     "config": backend.config.__dict__ if hasattr(backend.config, "__dict__")
                     else str(backend.config)},
        "complete": len(rows) == len(items),
        "zoo": {"seed": 0, "variants_per_family": args.variants,
                "input_size": size or "family default"},
        "predict_seconds": predict_s,
        "overall": block(rows),
        "per_family": {f: block([r for r in rows if r["family"] == f]) for f in families},
        "models": rows,
    }
    out = Path(args.out) if args.out else RESULTS / f"accuracy-{args.backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    o = result["overall"]
    print(f"{args.backend}: {o['n']} models, ±10% {100 * o.get('acc10', 0):.1f}%, ±5% "
          f"{100 * o.get('acc5', 0):.1f}%, RMSPE {o.get('rmspe', 0):.1f}% (noise ceiling ±10% "
          f"{100 * o['noise_ceiling'].get('acc10', 0):.1f}%) -> {out}")
    if "on_backend_kernels" in o:
        ob = o["on_backend_kernels"]
        print(f"  priced on the backend's own kernels (no partition error): ±10% "
              f"{100 * ob['acc10']:.1f}%, ±5% {100 * ob['acc5']:.1f}%, RMSPE {ob['rmspe']:.1f}%")
    for f, s in result["per_family"].items():
        if s["n"]:
            print(f"  {f:<13} n={s['n']:>3} ±10% {100 * s['acc10']:5.1f}%  ±5% "
                  f"{100 * s['acc5']:5.1f}%  RMSPE {s['rmspe']:5.1f}%  mean err "
                  f"{s['mean_error']:+5.1f}%  ceiling {100 * s['noise_ceiling']['acc10']:5.1f}%"
                  + (f"  own-kernels ±10% {100 * s['on_backend_kernels']['acc10']:5.1f}%"
                     if "on_backend_kernels" in s else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
