"""MetaSchedule with and without nn-Meter task pruning, at the same trials per tuned task.

For each zoo model (input 32x32, seed 0): extract the tuning tasks, then

- baseline: MetaSchedule's own flow, every task, ``tune_tasks`` with its gradient task scheduler
  and ``max_trials_global = TRIALS_PER_TASK x tasks`` (its round-robin start gives each task
  one round of ``PER_ITER`` trials when ``TRIALS_PER_TASK == PER_ITER``);
- pruned: :func:`nnmeter_tvm.passes.prune.tune_pruned`: only the tasks covering ``KEEP`` of the
  predicted latency, ``TRIALS_PER_TASK x kept tasks`` trials in proportion to predicted
  ms x weight (``--budget same-total``: the baseline's total instead);

both with the same search space, search strategy, cost model, builder and runner; and record
tuning wall time, tuning CPU time (this process and its builder / runner processes) and the
compiled model's measured latency (VM, 1 thread; 10th percentile of samples taken in
alternating rounds, so that load from other jobs falls on all executables alike).  Task extraction (and, for the pruned
run, the prediction) is inside the timed region.  Target: >= 40 % less tuning time for <= 3 %
worse latency.  Writes ``benchmarks/results/tuning_pruning.{json,md}``.

MetaSchedule needs ``psutil`` and ``cloudpickle``, and apache-tvm-ffi < 0.1.15 under the
apache-tvm 0.27.0.post1 wheel (0.1.15.x segfaults in ``ToJSONGraph``).

    python benchmarks/tuning_pruning.py                 # the recorded run (< 30 min, 2 cores)
    python benchmarks/tuning_pruning.py --models alexnet --population 32   # a smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from eval_lib.report import write_results  # benchmarks/ is on sys.path when run as a script

os.environ.setdefault("TVM_NUM_THREADS", "1")  # tvm-llvm is measured single-threaded

RESULTS = Path(__file__).resolve().parent / "results"


def relax_model(family: str, size: int):
    from tvm.relax.frontend.onnx import from_onnx

    from nnmeter_tvm import zoo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return from_onnx(zoo.generate(family, 0, 0, input_size=size), keep_params_in_input=False)


def _vm_timer(executable, size: int, repeat: int):
    import numpy as np
    import tvm
    from tvm import relax

    dev = tvm.cpu()
    vm = relax.VirtualMachine(executable, dev)
    x = tvm.runtime.tensor(np.random.default_rng(0).standard_normal((1, 3, size, size),
                                                                    dtype=np.float32), dev)
    vm["main"](x)  # warm-up
    timer = vm.time_evaluator("main", dev, number=5, repeat=repeat, min_repeat_ms=50)
    return lambda: [r * 1e3 for r in timer(x).results]


def measure_ms(executable, size: int, repeat: int) -> float:
    import numpy as np

    return float(np.median(_vm_timer(executable, size, repeat)()))


def measure_alternating(executables: dict, size: int, repeat: int, rounds: int) -> dict:
    """Median ms of each executable, measured in ``rounds`` alternating rounds of ``repeat``
    samples (so a burst of load from other jobs falls on all of them alike); also the spread."""
    import numpy as np

    timers = {k: _vm_timer(ex, size, repeat) for k, ex in executables.items()}
    samples = {k: [] for k in timers}
    for r in range(rounds):
        for k in (list(timers) if r % 2 == 0 else list(timers)[::-1]):
            samples[k] += timers[k]()
    return {k: {"median_ms": float(np.median(v)), "p10_ms": float(np.percentile(v, 10)),
                "p90_ms": float(np.percentile(v, 90)), "samples": len(v)}
            for k, v in samples.items()}


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (MetaSchedule's builder and
    runner workers): less sensitive than wall time to other jobs on the machine."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def search_setup(args):
    """The search space, strategy, cost model kind, builder and runner both runs use."""
    from tvm.s_tir import meta_schedule as ms

    from nnmeter_tvm.passes.prune import local_builder, space_generator

    if args.strategy == "evolutionary":
        strategy = ms.search_strategy.EvolutionarySearch(
            population_size=args.population, init_min_unmeasured=min(50, args.population),
            genetic_num_iters=args.genetic_iters)
    else:
        strategy = ms.search_strategy.ReplayTrace()
    # 3 repeats per candidate (MetaSchedule's default: 1): other jobs' load makes single
    # measurements noisy enough to change which candidate wins
    evaluator = ms.runner.EvaluatorConfig(number=3, repeat=3, min_repeat_ms=30)
    return {"space": space_generator(), "strategy": strategy, "cost_model": args.cost_model,
            "builder": local_builder(), "runner": ms.runner.LocalRunner(evaluator_config=evaluator)}


def kept_only_database(db, kept, target):
    """A database with ``db``'s best record for each of the ``kept`` tasks only: the baseline's
    schedules less those of the tasks pruning drops (what pruning alone costs, apart from the
    pruned run's own tuning noise)."""
    from tvm.s_tir import meta_schedule as ms

    out = ms.database.MemoryDatabase()
    for task in kept:
        mod = task.dispatched[0]
        if not db.has_workload(mod):
            continue
        for rec in db.get_top_k(db.commit_workload(mod), 1):
            out.commit_tuning_record(ms.database.TuningRecord(
                rec.trace, out.commit_workload(mod), rec.run_secs, rec.target, rec.args_info))
    return out


def tune_baseline(mod, target, work_dir, args, setup):
    from tvm.s_tir import meta_schedule as ms

    from nnmeter_tvm.passes.prune import prepare, tune_contexts

    tasks = ms.relax_integration.extract_tasks(prepare(mod, target), target)
    # per-task random states as tune_pruned draws them: a kept task is searched alike in both runs
    contexts, weights = tune_contexts(tasks, work_dir, setup["space"], setup["strategy"], args.seed)
    db = ms.tune_tasks(tasks=contexts, task_weights=weights, work_dir=work_dir,
                       max_trials_global=args.trials_per_task * len(contexts),
                       num_trials_per_iter=args.per_iter, builder=setup["builder"],
                       runner=setup["runner"], cost_model=setup["cost_model"])
    return db, len(tasks), len(contexts), args.trials_per_task * len(contexts)


def tune_with_pruning(mod, target, work_dir, args, setup, predictor):
    from nnmeter_tvm.passes import prune

    tasks = prune.extract_tasks(mod, target, predictor)
    kept = prune.prune_tasks(tasks, predictor, args.keep)
    n_budget = len(tasks) if args.budget == "same-total" else len(kept)
    trials = args.trials_per_task * n_budget
    db = prune.tune_pruned(mod, target, work_dir, trials, predictor, args.keep,
                           num_trials_per_iter=args.per_iter, seed=args.seed, tasks=tasks,
                           space=setup["space"], strategy=setup["strategy"],
                           cost_model=setup["cost_model"], builder=setup["builder"],
                           runner=setup["runner"])
    return db, len(tasks), len(kept), trials


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
    budget = args.trials_per_task * (len(tasks) if args.budget == "same-total" else len(kept))
    trials = prune.allocate_trials(kept, budget, predictor,
                                   min_trials=min(args.per_iter, budget // len(kept)) or 1)
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
    row = {"model": family, "input_size": args.size, "trials_per_task": args.trials_per_task,
           "keep": args.keep, "budget": args.budget}
    executables = {"untuned": tvm.compile(mod, target="llvm")}
    for label in ("baseline", "pruned"):
        work = tempfile.mkdtemp(prefix=f"nnmeter-ms-{family}-{label}-")
        setup = search_setup(args)  # fresh, identical setup for each run
        load0, cpu0, start = os.getloadavg()[0], _cpu_s(), time.perf_counter()
        if label == "baseline":
            db, n_tasks, n_tuned, trials = tune_baseline(mod, target, work, args, setup)
        else:
            db, n_tasks, n_tuned, trials = tune_with_pruning(mod, target, work, args, setup,
                                                             predictor)
        pool = getattr(setup["runner"], "pool", None)
        if pool is not None:  # reap the runner's workers, so that their CPU time counts here
            pool.shutdown()
        seconds, cpu = time.perf_counter() - start, _cpu_s() - cpu0
        records = db.get_all_tuning_records()
        valid = sum(1 for r in records if r.run_secs and all(float(x) < 1e9 for x in r.run_secs))
        executables[label] = ms.relax_integration.compile_relax(db, mod, target, params=None)
        if label == "baseline":
            from nnmeter_tvm.passes import prune

            kept = prune.prune_tasks(prune.extract_tasks(mod, target, predictor), predictor, args.keep)
            executables["baseline_kept_only"] = ms.relax_integration.compile_relax(
                kept_only_database(db, kept, target), mod, target, params=None)
        row[label] = {"tuning_s": round(seconds, 1), "tuning_cpu_s": round(cpu, 1),
                      "tasks": n_tasks, "tuned_tasks": n_tuned, "trial_budget": trials,
                      "records": len(records), "valid_records": valid,
                      "load_1min": [round(load0, 2), round(os.getloadavg()[0], 2)]}
        shutil.rmtree(work, ignore_errors=True)
        print(f"{family:12s} {label:8s} {seconds:7.1f} s wall {cpu:7.1f} s cpu  "
              f"{n_tuned}/{n_tasks} tasks  {valid}/{len(records)} valid trials", flush=True)
    lat = measure_alternating(executables, args.size, args.repeat, args.rounds)
    # latency = the 10th percentile of the samples: other jobs' load on this shared machine
    # only ever adds time, and spreads the samples by up to 3x (see latency_samples_ms)
    row["untuned_ms"] = lat["untuned"]["p10_ms"]
    row["baseline_kept_only_ms"] = lat["baseline_kept_only"]["p10_ms"]
    row["latency_samples_ms"] = lat
    for label in ("baseline", "pruned"):
        row[label]["latency_ms"] = lat[label]["p10_ms"]
    b, p = row["baseline"], row["pruned"]
    row["time_saved"] = 1 - p["tuning_s"] / b["tuning_s"]
    row["cpu_time_saved"] = 1 - p["tuning_cpu_s"] / b["tuning_cpu_s"]
    row["latency_change"] = p["latency_ms"] / b["latency_ms"] - 1
    # the baseline's own schedules for the kept tasks, the dropped ones untuned: pruning's share
    row["latency_change_pruning_only"] = row["baseline_kept_only_ms"] / b["latency_ms"] - 1
    print(f"{family:12s} latency untuned {row['untuned_ms']:.3f} baseline {b['latency_ms']:.3f} "
          f"pruned {p['latency_ms']:.3f} ms; time saved {100 * row['time_saved']:.0f} % wall, "
          f"{100 * row['cpu_time_saved']:.0f} % cpu", flush=True)
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet", "squeezenet", "alexnet"])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--trials-per-task", type=int, default=8,
                    help="trials per tuned task (the baseline tunes every task, the pruned run "
                         "the kept ones)")
    ap.add_argument("--budget", choices=["per-task", "same-total"], default="per-task",
                    help="pruned run's total: trials-per-task x kept tasks (per-task), or the "
                         "baseline's total, trials-per-task x all tasks (same-total)")
    ap.add_argument("--per-iter", type=int, default=8, help="MetaSchedule num_trials_per_iter")
    ap.add_argument("--strategy", choices=["replay-trace", "evolutionary"], default="replay-trace",
                    help="MetaSchedule search strategy: replay-trace (random schedules of the "
                         "design space, no cost model) or evolutionary")
    ap.add_argument("--population", type=int, default=64,
                    help="evolutionary search population (MetaSchedule's default: 512)")
    ap.add_argument("--genetic-iters", type=int, default=1,
                    help="evolutionary search generations (MetaSchedule's default: 4)")
    ap.add_argument("--cost-model", default=None, choices=["xgb", "random"],
                    help="default: xgb with --strategy evolutionary, random (unused) with "
                         "replay-trace")
    ap.add_argument("--rounds", type=int, default=10,
                    help="alternating latency-measurement rounds (of --repeat samples each)")
    ap.add_argument("--keep", type=float, default=0.995)
    ap.add_argument("--predictor", default="tvm-llvm")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "tuning_pruning"))
    ap.add_argument("--plan-only", action="store_true",
                    help="extract, predict and prune, but do not tune (writes <out>_plan.json)")
    args = ap.parse_args(argv)
    if args.cost_model is None:
        args.cost_model = "xgb" if args.strategy == "evolutionary" else "random"

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
    import tvm
    import tvm_ffi

    # MetaSchedule imports every tensor intrinsic when it makes its first TuneContext (~25 s of
    # CPU): done here, outside the timed runs, so that it does not fall on the baseline alone
    import tvm.s_tir.tensor_intrin  # noqa: F401

    load0 = os.getloadavg()
    rows = [run_one(f, args, predictor) for f in args.models]
    info = predictor.info
    result = {
        "benchmark": "tuning_pruning", "machine": {
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "apache_tvm": tvm.__version__, "apache_tvm_ffi": tvm_ffi.__version__,
            "load_avg_1_5_15_start": [round(x, 2) for x in load0],
            "load_avg_1_5_15_end": [round(x, 2) for x in os.getloadavg()]},
        "predictor": {"name": info.get("name"), "backend": info.get("backend"),
                      "trained_families": info.get("trained_families"),
                      "fallback_only": not info.get("trained_families")},
        "settings": vars(args), "wall_s": round(time.perf_counter() - start, 1), "models": rows,
        "target": {"time_saved_at_least": 0.40, "latency_change_at_most": 0.03},
    }
    write_results(Path(args.out), result, render(result))
    print(render(result))


def render(result) -> str:
    st, m = result["settings"], result["machine"]
    budget = ("trials per task x kept tasks" if st["budget"] == "per-task"
              else "the baseline's total (trials per task x all tasks)")
    lines = ["# MetaSchedule tuning with and without nn-Meter task pruning", "",
             f"predictor `{result['predictor']['name']}` (fallback only: "
             f"{result['predictor']['fallback_only']}); {st['trials_per_task']} trials per tuned "
             f"task ({st['per_iter']} per iteration), pruned budget: {budget}; keep {st['keep']}; "
             + (f"evolutionary search (population {st['population']}, {st['genetic_iters']} "
                f"generation(s)), cost model {st['cost_model']}" if st["strategy"] == "evolutionary"
                else "search strategy replay-trace (random schedules from the design space)")
             + f"; input {st['size']}x{st['size']}, "
             f"1 thread; apache-tvm {m['apache_tvm']}, apache-tvm-ffi {m['apache_tvm_ffi']}; "
             f"{m['cpu_count']} cores, load average (1/5/15 min) {m['load_avg_1_5_15_start']} at "
             f"start, {m['load_avg_1_5_15_end']} at end; total wall {result['wall_s']} s", "",
             "| model | tasks tuned (base / pruned) | trials (base / pruned) | tuning wall s "
             "(base / pruned) | wall saved | tuning CPU s (base / pruned) | CPU saved | "
             "latency ms (untuned / base / pruned) | latency change | base schedules, kept "
             "tasks only: ms (change) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["models"]:
        b, p = r["baseline"], r["pruned"]
        lines.append(f"| {r['model']} | {b['tuned_tasks']} / {p['tuned_tasks']} of {b['tasks']} | "
                     f"{b['trial_budget']} / {p['trial_budget']} | "
                     f"{b['tuning_s']} / {p['tuning_s']} | {100 * r['time_saved']:.0f} % | "
                     f"{b['tuning_cpu_s']} / {p['tuning_cpu_s']} | "
                     f"{100 * r['cpu_time_saved']:.0f} % | "
                     f"{r['untuned_ms']:.3f} / {b['latency_ms']:.3f} / {p['latency_ms']:.3f} | "
                     f"{100 * r['latency_change']:+.1f} % | {r['baseline_kept_only_ms']:.3f} "
                     f"({100 * r['latency_change_pruning_only']:+.1f} %) |")
    lines += ["", "Target: at least 40 % less tuning time for at most 3 % worse latency.",
              "Latencies: 10th percentile of the samples of alternating measurement rounds "
              "(the machine is shared: other jobs' load only adds time; the JSON has the median "
              "and 90th percentile too).  Last column: the baseline's database "
              "restricted to the kept tasks' best records (dropped tasks left untuned), i.e. "
              "what dropping the tasks costs apart from the pruned run's own tuning noise."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
