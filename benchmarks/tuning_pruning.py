"""MetaSchedule with and without nn-Meter task pruning, under the same total trial budget.

For each zoo model (input 32x32, seed 0): extract the tuning tasks, then

- baseline: MetaSchedule's own flow, every task, ``tune_tasks`` with its gradient task scheduler
  and ``max_trials_global = TRIALS``;
- pruned: :func:`nnmeter_tvm.passes.prune.tune_pruned`: the tasks covering ``KEEP`` of the
  predicted latency, trials in proportion to predicted ms x weight, same ``TRIALS`` in total;

and record tuning wall time and the compiled model's measured latency (VM, 1 thread, median).
Target: >= 40 % less tuning time for <= 3 % worse latency.  Writes
``benchmarks/results/tuning_pruning.{json,md}``.

    python benchmarks/tuning_pruning.py                       # the recorded run (~25 min, 2 cores)
    python benchmarks/tuning_pruning.py --models resnet --trials 32   # a smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TVM_NUM_THREADS", "1")  # tvm-llvm is measured single-threaded

RESULTS = Path(__file__).resolve().parent / "results"


def relax_model(family: str, size: int):
    from tvm.relax.frontend.onnx import from_onnx

    from nnmeter_tvm import zoo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return from_onnx(zoo.generate(family, 0, 0, input_size=size), keep_params_in_input=False)


def measure_ms(executable, size: int, repeat: int) -> float:
    import numpy as np
    import tvm
    from tvm import relax

    dev = tvm.cpu()
    vm = relax.VirtualMachine(executable, dev)
    x = tvm.runtime.tensor(np.random.default_rng(0).standard_normal((1, 3, size, size),
                                                                    dtype=np.float32), dev)
    vm["main"](x)  # warm-up
    timer = vm.time_evaluator("main", dev, number=5, repeat=repeat, min_repeat_ms=50)
    return float(np.median(timer(x).results) * 1e3)


def tune_baseline(mod, target, work_dir, trials, per_iter, seed):
    from tvm.s_tir import meta_schedule as ms

    from nnmeter_tvm.passes.prune import prepare, space_generator

    tasks = ms.relax_integration.extract_tasks(prepare(mod, target), target)
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
        tasks, work_dir, space=space_generator(), seed=seed)  # the same space as the pruned run
    db = ms.tune_tasks(tasks=contexts, task_weights=weights, work_dir=work_dir,
                       max_trials_global=trials, num_trials_per_iter=per_iter)
    return db, len(tasks), len(tasks)


def tune_with_pruning(mod, target, work_dir, trials, per_iter, seed, predictor, keep):
    from nnmeter_tvm.passes import prune

    tasks = prune.extract_tasks(mod, target, predictor)
    kept = prune.prune_tasks(tasks, predictor, keep)
    db = prune.tune_pruned(mod, target, work_dir, trials, predictor, keep,
                           num_trials_per_iter=per_iter, seed=seed)
    return db, len(tasks), len(kept)


def plan_one(family, args, predictor):
    """What pruning would do, without tuning: tasks, kept tasks, predicted share they cover."""
    import tvm

    from nnmeter_tvm.passes import prune

    target = tvm.target.Target({"kind": "llvm", "num-cores": 1})
    start = time.perf_counter()
    tasks = prune.extract_tasks(relax_model(family, args.size), target, predictor)
    rows = prune.rank_tasks(tasks, predictor)
    kept = prune.prune_tasks(tasks, predictor, args.keep)
    total = sum(r[2] for r in rows)
    covered = sum(r[2] for r in rows[: len(kept)])
    trials = prune.allocate_trials(kept, args.trials, predictor,
                                   min_trials=min(args.per_iter, args.trials // len(kept)) or 1)
    return {"model": family, "input_size": args.size, "tasks": len(tasks),
            "task_calls": sum(int(t.weight) for t in tasks), "kept": len(kept),
            "predicted_share_kept": covered / total if total else 0.0,
            "trials": dict(zip((t.task_name for t in kept), trials)),
            "planning_s": round(time.perf_counter() - start, 2)}


def run_one(family, args, predictor):
    import tvm
    from tvm.s_tir import meta_schedule as ms

    target = tvm.target.Target({"kind": "llvm", "num-cores": 1})
    mod = relax_model(family, args.size)
    row = {"model": family, "input_size": args.size, "trials": args.trials, "keep": args.keep}
    row["untuned_ms"] = measure_ms(tvm.compile(mod, target="llvm"), args.size, args.repeat)
    for label, tune in (("baseline", tune_baseline), ("pruned", tune_with_pruning)):
        work = tempfile.mkdtemp(prefix=f"nnmeter-ms-{family}-{label}-")
        extra = (predictor, args.keep) if label == "pruned" else ()
        start = time.perf_counter()
        db, n_tasks, n_tuned = tune(mod, target, work, args.trials, args.per_iter, args.seed, *extra)
        seconds = time.perf_counter() - start
        ex = ms.relax_integration.compile_relax(db, mod, target, params=None)
        row[label] = {"tuning_s": round(seconds, 1), "tasks": n_tasks, "tuned_tasks": n_tuned,
                      "latency_ms": measure_ms(ex, args.size, args.repeat)}
        shutil.rmtree(work, ignore_errors=True)
        print(f"{family:12s} {label:8s} {seconds:7.1f} s  {n_tuned}/{n_tasks} tasks  "
              f"{row[label]['latency_ms']:.3f} ms", flush=True)
    b, p = row["baseline"], row["pruned"]
    row["time_saved"] = 1 - p["tuning_s"] / b["tuning_s"]
    row["latency_change"] = p["latency_ms"] / b["latency_ms"] - 1
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet", "squeezenet", "mobilenetv2"])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--trials", type=int, default=64, help="total trials per model, both runs")
    ap.add_argument("--per-iter", type=int, default=8, help="MetaSchedule num_trials_per_iter")
    ap.add_argument("--keep", type=float, default=0.95)
    ap.add_argument("--predictor", default="tvm-llvm")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "tuning_pruning"))
    ap.add_argument("--plan-only", action="store_true",
                    help="extract, predict and prune, but do not tune (writes <out>_plan.json)")
    args = ap.parse_args(argv)

    from nnmeter_tvm.predictors import load_predictor

    predictor = load_predictor(args.predictor)
    start = time.perf_counter()
    if args.plan_only:
        plans = [plan_one(f, args, predictor) for f in args.models]
        out = Path(args.out + "_plan").with_suffix(".json")
        out.parent.mkdir(parents=True, exist_ok=True)
        info = predictor.info
        out.write_text(json.dumps({"benchmark": "tuning_pruning (plan only: no tuning)",
                                   "predictor": {"name": info.get("name"),
                                                 "trained_families": info.get("trained_families")},
                                   "settings": vars(args), "models": plans}, indent=1) + "\n")
        for p in plans:
            print(f"{p['model']:12s} {p['kept']}/{p['tasks']} tasks keep "
                  f"{100 * p['predicted_share_kept']:.1f} % of the predicted latency")
        return
    rows = [run_one(f, args, predictor) for f in args.models]
    info = predictor.info
    result = {
        "benchmark": "tuning_pruning", "machine": {"cpu_count": os.cpu_count(),
                                                   "python": platform.python_version()},
        "predictor": {"name": info.get("name"), "backend": info.get("backend"),
                      "trained_families": info.get("trained_families"),
                      "fallback_only": not info.get("trained_families")},
        "settings": vars(args), "wall_s": round(time.perf_counter() - start, 1), "models": rows,
        "target": {"time_saved_at_least": 0.40, "latency_change_at_most": 0.03},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(render(result))
    print(render(result))


def render(result) -> str:
    lines = ["# MetaSchedule tuning with and without nn-Meter task pruning", "",
             f"predictor `{result['predictor']['name']}` (fallback only: "
             f"{result['predictor']['fallback_only']}), {result['settings']['trials']} trials per "
             f"model in both runs, keep {result['settings']['keep']}, input "
             f"{result['settings']['size']}x{result['settings']['size']}, 1 thread, "
             f"{result['machine']['cpu_count']} cores; total wall {result['wall_s']} s", "",
             "| model | tasks tuned (base / pruned) | tuning s (base / pruned) | time saved | "
             "latency ms (untuned / base / pruned) | latency change |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in result["models"]:
        b, p = r["baseline"], r["pruned"]
        lines.append(f"| {r['model']} | {b['tuned_tasks']} / {p['tuned_tasks']} of {b['tasks']} | "
                     f"{b['tuning_s']} / {p['tuning_s']} | {100 * r['time_saved']:.0f} % | "
                     f"{r['untuned_ms']:.3f} / {b['latency_ms']:.3f} / {p['latency_ms']:.3f} | "
                     f"{100 * r['latency_change']:+.1f} % |")
    lines += ["", "Target: at least 40 % less tuning time for at most 3 % worse latency."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
