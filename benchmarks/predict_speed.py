"""Prediction speed: models per second over the zoo (batched) and one ~200-node model.

    python benchmarks/predict_speed.py --backend ort-cpu [--variants 8]

Batched: ``Predictor.predict_many`` over every zoo variant (graphs already loaded: partition,
features and one XGBoost call per kernel family across all models); also reported with ONNX
loading included.  Single: ``Predictor.predict_graph`` on the zoo model whose node count is
closest to 200, median of many calls.  Targets (issue 5): >= 1,000 models/s batched, <= 2 ms for
one 200-node model.  Writes ``benchmarks/results/predict_speed-<backend>.json``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nnmeter_tvm import zoo  # noqa: E402
from nnmeter_tvm.backends.machine import describe_machine  # noqa: E402
from nnmeter_tvm.onnx_import import graph_from_proto, load_graph  # noqa: E402
from nnmeter_tvm.predictors import load_predictor  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
INPUT_SIZE = {"tvm-llvm": 64}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="ort-cpu")
    p.add_argument("--predictor", default=None, help="bundle name or folder (default: backend)")
    p.add_argument("--variants", type=int, default=8, help="variants per zoo family")
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions of the batch")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    pred = load_predictor(args.predictor or args.backend)
    size = INPUT_SIZE.get(args.backend)
    protos = [zoo.generate(f, 0, i, size) for f in zoo.FAMILIES for i in range(args.variants)]
    graphs = [load_graph(m) for m in protos]
    pred.predict_many(graphs[:4])  # warm: imports, rules, extension

    batch = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        pred.predict_many(graphs)
        batch.append(time.perf_counter() - t)
    t = time.perf_counter()
    pred.predict_many([graph_from_proto(m) for m in protos])
    with_load = time.perf_counter() - t
    seq = []
    for _ in range(max(1, args.repeat // 2)):
        t = time.perf_counter()
        for g in graphs:
            pred.predict_graph(g)
        seq.append(time.perf_counter() - t)

    target = min(graphs, key=lambda g: abs(len(g) - 200))
    for _ in range(20):
        pred.predict_graph(target)
    single = []
    for _ in range(200):
        t = time.perf_counter()
        pred.predict_graph(target)
        single.append(time.perf_counter() - t)
    # where the time of one call goes
    parts = {}
    t = time.perf_counter()
    for _ in range(100):
        kernels = pred.partition(target)
    parts["partition_ms"] = (time.perf_counter() - t) * 10
    t = time.perf_counter()
    for _ in range(100):
        pred.predict_kernels(target, kernels)
    parts["price_kernels_ms"] = (time.perf_counter() - t) * 10

    n = len(graphs)
    result = {
        "backend": args.backend,
        "predictor": pred.info,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "zoo": {"families": len(zoo.FAMILIES), "variants_per_family": args.variants,
                "models": n, "input_size": size or "family default",
                "mean_nodes": float(np.mean([len(g) for g in graphs]))},
        "batch_models_per_s": n / float(np.median(batch)),
        "batch_models_per_s_with_onnx_import": n / with_load,
        "sequential_models_per_s": n / float(np.median(seq)),
        "single": {"model": target.name, "nodes": len(target), "kernels": len(kernels),
                   "median_ms": 1000 * float(np.median(single)),
                   "p90_ms": 1000 * float(np.percentile(single, 90)), **parts},
        "targets": {"batch_models_per_s": 1000, "single_200_node_ms": 2.0},
    }
    result["meets"] = {"batch": result["batch_models_per_s"] >= 1000,
                       "single": result["single"]["median_ms"] <= 2.0}
    out = Path(args.out) if args.out else RESULTS / f"predict_speed-{args.backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{args.backend}: batch {result['batch_models_per_s']:.0f} models/s "
          f"({result['batch_models_per_s_with_onnx_import']:.0f} with ONNX import), sequential "
          f"{result['sequential_models_per_s']:.0f}/s; one {len(target)}-node model "
          f"{result['single']['median_ms']:.2f} ms -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
