"""Prediction speed: models per second over the zoo (batched) and one ~200-node model.

    python benchmarks/predict_speed.py --backend ort-cpu [--variants 8]

Batched: ``Predictor.predict_many`` over every zoo variant, from Graphs already loaded
(partition, features and one cost-model call per kernel family across all models), and from
the ``.onnx`` files (reading, checking and importing each model included).  Single:
``Predictor.predict_graph`` on the zoo model whose node count is closest to 200, median of many
calls, with where its time goes, and ``Predictor.predict`` on its file.  Targets (issue 5):
>= 1,000 models/s batched, <= 2 ms for one 200-node model.  Times are wall-clock medians; the
CPU time (this process only) is given too, as other jobs may share the machine.  Writes
``benchmarks/results/predict_speed-<backend>.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from nnmeter_tvm import features, zoo
from nnmeter_tvm.backends.machine import describe_machine
from nnmeter_tvm.onnx_import import load_graph
from nnmeter_tvm.predictors import load_predictor
from nnmeter_tvm.predictors.trees import TreeTable
from eval_lib.report import write_results

RESULTS = Path(__file__).resolve().parent / "results"
INPUT_SIZE = {"tvm-llvm": 64}


def times_ms(fn, repeat: int, clock=time.perf_counter) -> np.ndarray:
    """Time of each of ``repeat`` calls of ``fn()`` on ``clock``, in ms."""
    times = []
    for _ in range(repeat):
        t = clock()
        fn()
        times.append(clock() - t)
    return 1000 * np.array(times)


def median_ms(fn, repeat: int) -> float:
    """Median wall time of ``fn()``, in ms."""
    return float(np.median(times_ms(fn, repeat)))


def cpu_ms(fn, repeat: int) -> float:
    """Median CPU time of ``fn()`` (this process only; less inflated by other jobs), in ms."""
    return float(np.median(times_ms(fn, repeat, time.process_time)))


def write_models(protos, folder: Path) -> list[Path]:
    import onnx

    paths = []
    for m in protos:
        path = folder / f"{m.graph.name}.onnx"
        onnx.save(m, str(path))
        paths.append(path)
    return paths


def batch_figures(pred, graphs, paths, repeat: int) -> dict:
    """Models per second: from Graphs (median of ``repeat``), from files (once), one by one."""
    n = len(graphs)
    batch_ms = median_ms(lambda: pred.predict_many(graphs), repeat)
    batch_cpu_ms = cpu_ms(lambda: pred.predict_many(graphs), repeat)
    partition_ms = median_ms(lambda: [pred.partition(g) for g in graphs], repeat)
    files_ms = median_ms(lambda: pred.predict_many(paths), 1)
    seq_ms = median_ms(lambda: [pred.predict_graph(g) for g in graphs], max(1, repeat // 2))
    return {"batch_models_per_s": 1000 * n / batch_ms,
            "batch_models_per_cpu_s": 1000 * n / batch_cpu_ms,
            "batch_models_per_s_from_onnx_files": 1000 * n / files_ms,
            "sequential_models_per_s": 1000 * n / seq_ms,
            "batch_ms_per_model": {"total": batch_ms / n, "partition": partition_ms / n,
                                   "price": (batch_ms - partition_ms) / n}}


def single_figures(pred, graph, path, repeat: int) -> dict:
    """One model: median ms of the whole call and of its parts."""
    pred.predict_graph(graph)  # warm
    kernels = pred.partition(graph)
    pairs = [(k, graph) for k in kernels if not k.attrs.get("view")]
    configs = features.configs_by_family(pairs)
    encoded = features.encode_all(configs)
    trained = {f: x for f, x in encoded.items() if f in pred.models}
    table = TreeTable({f: m.booster for f, m in pred.models.items()})
    whole = times_ms(lambda: pred.predict_graph(graph), repeat)
    return {
        "model": graph.name, "nodes": len(graph), "kernels": len(kernels),
        "median_ms": float(np.median(whole)),
        "p90_ms": float(np.percentile(whole, 90)),
        "cpu_ms": cpu_ms(lambda: pred.predict_graph(graph), repeat),
        "parts_ms": {
            "partition": median_ms(lambda: pred.partition(graph), repeat),
            "price_kernels": median_ms(lambda: pred.predict_kernels(graph, kernels), repeat),
            "of_which_configs": median_ms(lambda: features.configs_by_family(pairs), repeat),
            "of_which_encode": median_ms(lambda: features.encode_all(configs), repeat),
            "of_which_trees": median_ms(lambda: table.predict(trained), repeat),
        },
        "from_onnx_file_ms": median_ms(lambda: pred.predict(path), max(3, repeat // 20)),
        "load_graph_ms": median_ms(lambda: load_graph(path), max(3, repeat // 20)),
    }


def markdown(r: dict) -> str:
    m, s, b = r["machine"], r["single"], r["batch_ms_per_model"]
    parts = s["parts_ms"]
    status = lambda ok: "met" if ok else "**missed**"  # noqa: E731
    return "\n".join([
        f"# Prediction speed: {r['backend']}",
        "",
        f"Date {r['date']}; {m['cpu_model']}, {m['cores']} cores; Python {m['python']}. "
        f"Load average (1/5/15 min) {r['load_average_start']} at start, "
        f"{r['load_average_end']} at end (other jobs share the machine: wall times are "
        "inflated by them; CPU times of this process are given too).",
        f"Zoo: {r['zoo']['models']} models ({r['zoo']['variants_per_family']} variants of "
        f"{r['zoo']['families']} families, seed 0), mean {r['zoo']['mean_nodes']:.0f} nodes.",
        "",
        "| what | target | measured | |",
        "| --- | --- | --- | --- |",
        f"| batch, from Graphs | ≥ 1,000 models/s | {r['batch_models_per_s']:.0f} models/s "
        f"({r['batch_models_per_cpu_s']:.0f} per CPU second) | {status(r['meets']['batch'])} |",
        f"| one {s['nodes']}-node model ({s['model']}, {s['kernels']} kernels) | ≤ 2 ms | "
        f"{s['median_ms']:.2f} ms (CPU {s['cpu_ms']:.2f} ms) | {status(r['meets']['single'])} |",
        f"| batch, from .onnx files | — | {r['batch_models_per_s_from_onnx_files']:.0f} "
        "models/s | |",
        f"| one by one (`predict_graph`) | — | {r['sequential_models_per_s']:.0f} models/s | |",
        f"| one model from its .onnx file | — | {s['from_onnx_file_ms']:.2f} ms | |",
        "",
        f"Batch, per model: {b['total']:.2f} ms = partition {b['partition']:.2f} ms + features, "
        f"trees and reports {b['price']:.2f} ms.",
        f"Single model: partition {parts['partition']:.2f} ms; pricing its kernels "
        f"{parts['price_kernels']:.2f} ms, of which configuration rows "
        f"{parts['of_which_configs']:.2f} ms, encoding {parts['of_which_encode']:.3f} ms, trees "
        f"{parts['of_which_trees']:.3f} ms (the rest: distinct rows, targets and baselines, reports). "
        f"Importing its .onnx file: {s['load_graph_ms']:.2f} ms.",
        "",
    ])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="ort-cpu")
    p.add_argument("--predictor", default=None, help="bundle name or folder (default: backend)")
    p.add_argument("--variants", type=int, default=8, help="variants per zoo family")
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions of the batch")
    p.add_argument("--single-repeat", type=int, default=200, help="timed calls of one model")
    p.add_argument("--out", default=None, help="results file stem (default "
                   "benchmarks/results/predict_speed-<backend>)")
    args = p.parse_args(argv)

    pred = load_predictor(args.predictor or args.backend)
    size = INPUT_SIZE.get(args.backend)
    load_start = [round(x, 2) for x in os.getloadavg()]
    protos = [zoo.generate(f, 0, i, size) for f in zoo.FAMILIES for i in range(args.variants)]
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_models(protos, Path(tmp))
        graphs = [load_graph(path) for path in paths]
        pred.predict_many(graphs[:4])  # warm: imports, rules, extension
        batch = batch_figures(pred, graphs, paths, args.repeat)
        target = min(range(len(graphs)), key=lambda i: abs(len(graphs[i]) - 200))
        single = single_figures(pred, graphs[target], paths[target], args.single_repeat)

    result = {
        "backend": args.backend,
        "predictor": pred.info,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "zoo": {"families": len(zoo.FAMILIES), "variants_per_family": args.variants,
                "models": len(graphs), "input_size": size or "family default",
                "mean_nodes": float(np.mean([len(g) for g in graphs]))},
        **batch,
        "single": single,
        "targets": {"batch_models_per_s": 1000, "single_200_node_ms": 2.0},
    }
    result["meets"] = {"batch": result["batch_models_per_s"] >= 1000,
                       "single": single["median_ms"] <= 2.0}
    stem = Path(args.out) if args.out else RESULTS / f"predict_speed-{args.backend}"
    write_results(stem, result, markdown(result))
    print(f"{args.backend}: batch {result['batch_models_per_s']:.0f} models/s "
          f"({result['batch_models_per_s_from_onnx_files']:.0f} from .onnx files), one by one "
          f"{result['sequential_models_per_s']:.0f}/s; one {single['nodes']}-node model "
          f"{single['median_ms']:.2f} ms -> {stem}.json, .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
