"""MetaSchedule task pruning: tune only the tasks whose predicted latency can matter.

A model's MetaSchedule tasks (``tvm.s_tir.meta_schedule.relax_integration.extract_tasks``) are
its fused PrimFuncs after ``FuseTIR``; each is named after the fused function (or lone PrimFunc)
``FuseOps`` made, and weighted by how often ``main`` calls it.  The tvm-llvm predictor prices
exactly those functions (see :mod:`.estimate`), so each task gets a predicted ms per call and a
score ``ms x weight``.  Then:

- :func:`prune_tasks` keeps the heaviest tasks whose scores cover ``keep`` of the total;
- :func:`allocate_trials` splits a trial budget over tasks in proportion to their scores;
- :func:`tune_pruned` does both and tunes, one task at a time, into one database.

Where the predictions come from: :func:`extract_tasks` returns MetaSchedule's own tasks with the
prediction attached to each task's high-level module (``nnmeter.latency_ms`` on its PrimFunc;
``dispatched``, which MetaSchedule tunes and its database matches, is left as it was).  Tasks
from MetaSchedule's extractor directly need ``mod=``, the Relax module they came from.  What it
ignores: tasks that are already scheduled (MetaSchedule skips them too).
"""
from __future__ import annotations

import math
import sys

from ..errors import NNMeterError

ATTR = "nnmeter.latency_ms"


def function_latencies(mod, predictor="tvm-llvm") -> dict[str, float]:
    """Predicted ms per call of each function ``FuseOps`` leaves in ``mod`` (by name)."""
    from .estimate import NNMeterEstimate, report
    from .relax_graph import relax_to_graph

    fused = mod if relax_to_graph(mod).fused else _fuse(mod)
    rep = report(NNMeterEstimate(predictor)(fused))
    conv = relax_to_graph(fused)
    host = {n: tk.name for tk in conv.tvm_kernels for n in tk.nodes}
    calls = {}
    for tk in conv.tvm_kernels:
        calls[tk.name] = calls.get(tk.name, 0) + 1
    total = {}
    for k in rep.kernels:
        if k.nodes and k.nodes[0] in host:
            name = host[k.nodes[0]]
            total[name] = total.get(name, 0.0) + k.ms
    return {name: ms / calls[name] for name, ms in total.items()}


def extract_tasks(mod, target, predictor="tvm-llvm", params=None) -> list:
    """MetaSchedule's tasks for ``mod``, each carrying its predicted ms per call."""
    from tvm.s_tir import meta_schedule as ms

    if params:
        from tvm.relax.transform import BindParams

        mod = BindParams("main", params)(mod)
    fused = prepare(mod, target, fuse_tir=False)
    predicted = function_latencies(fused, predictor)
    import tvm

    with target:
        lowered = tvm.relax.transform.FuseTIR()(fused)
    out = []
    for t in ms.relax_integration.extract_tasks(lowered, target):
        task_mod = t.mod
        if t.task_name in predicted:
            gv = task_mod.get_global_vars()[0]
            task_mod = task_mod.clone() if hasattr(task_mod, "clone") else task_mod
            task_mod[gv] = task_mod[gv].with_attr(ATTR, float(predicted[t.task_name]))
        out.append(ms.ExtractedTask(t.task_name, task_mod, t.target, list(t.dispatched), t.weight))
    return out


def task_latencies(tasks, predictor="tvm-llvm", mod=None) -> list[float]:
    """Predicted ms per call of each task (see the module docstring for where they come from)."""
    predicted = None
    out = []
    for t in tasks:
        func = t.mod[t.mod.get_global_vars()[0]]
        if func.attrs is not None and ATTR in func.attrs:
            out.append(float(func.attrs[ATTR]))
            continue
        if mod is None:
            raise NNMeterError(f"task {t.task_name!r} carries no prediction: extract the tasks with "
                               "nnmeter_tvm.passes.prune.extract_tasks(mod, target), or pass "
                               "mod=<the Relax module the tasks came from>")
        if predicted is None:
            predicted = function_latencies(mod, predictor)
        if t.task_name not in predicted:
            raise NNMeterError(f"task {t.task_name!r} matches no function of the module "
                               f"(functions: {', '.join(sorted(predicted)[:8])}...); pass the "
                               "module the tasks were extracted from")
        out.append(predicted[t.task_name])
    return out


def rank_tasks(tasks, predictor="tvm-llvm", mod=None) -> list[tuple]:
    """``[(task, ms per call, score = ms x weight)]``, heaviest score first."""
    lat = task_latencies(tasks, predictor, mod)
    rows = [(t, ms, ms * int(t.weight)) for t, ms in zip(tasks, lat)]
    return sorted(rows, key=lambda r: -r[2])


KEEP = 0.995  # share of the predicted untuned total the kept tasks cover (see prune_tasks)


def prune_tasks(tasks, predictor="tvm-llvm", keep: float = KEEP, mod=None) -> list:
    """The smallest set of heaviest tasks whose predicted ``ms x weight`` covers ``keep`` of the
    total, heaviest first.

    Why keep is close to 1: the predictions are of untuned kernels, and a dropped task stays
    untuned while tuning speeds the kept ones up by ``s`` (about 5x here), so dropping a share
    ``d`` of the untuned total costs about ``d * s`` of the tuned latency.  With keep=0.95 the
    tuned models came out 25-35 % slower (benchmarks/results/tuning_pruning-keep0.95.md);
    0.995 cost under 2 % (benchmarks/results/tuning_pruning.md)."""
    if not 0 < keep <= 1:
        raise ValueError(f"prune_tasks: keep must be in (0, 1], got {keep!r}")
    rows = rank_tasks(tasks, predictor, mod)
    total = sum(r[2] for r in rows)
    kept, covered = [], 0.0
    for task, _, score in rows:
        if kept and covered >= keep * total - 1e-12:
            break
        kept.append(task)
        covered += score
    return kept


def allocate_trials(tasks, total_trials: int, predictor="tvm-llvm", mod=None,
                    min_trials: int = 1) -> list[int]:
    """Trials per task (in ``tasks``' order) in proportion to predicted ``ms x weight``,
    at least ``min_trials`` each, summing to ``total_trials`` (largest remainders)."""
    scores = [r for r in task_latencies(tasks, predictor, mod)]
    scores = [ms * int(t.weight) for ms, t in zip(scores, tasks)]
    n = len(tasks)
    if total_trials < min_trials * n:
        raise ValueError(f"allocate_trials: {total_trials} trials cannot give {n} tasks "
                         f"{min_trials} each")
    spare = total_trials - min_trials * n
    total = sum(scores) or 1.0
    exact = [spare * s / total for s in scores]
    alloc = [min_trials + math.floor(e) for e in exact]
    order = sorted(range(n), key=lambda i: -(exact[i] - math.floor(exact[i])))
    for i in order[: total_trials - sum(alloc)]:
        alloc[i] += 1
    return alloc


def tune_pruned(mod, target, work_dir: str, total_trials: int, predictor="tvm-llvm",
                keep: float = KEEP, params=None, num_trials_per_iter: int = 16, seed: int = 0,
                tasks=None, space="post-order-apply", strategy="evolutionary", cost_model="xgb",
                builder=None, runner=None, database=None):
    """Tune the pruned tasks with trials in proportion to predicted latency; returns the
    MetaSchedule database (compile with ``meta_schedule.relax_integration.compile_relax``).

    ``tasks``: tasks already extracted with :func:`extract_tasks` (else they are extracted here).
    ``space``, ``strategy``, ``cost_model``, ``builder``, ``runner``: as for MetaSchedule's
    ``tune_tasks`` (one cost model, builder and runner serve every task; the default builder is
    :func:`local_builder`)."""
    from tvm.s_tir import meta_schedule as ms

    if tasks is None:
        tasks = extract_tasks(mod, target, predictor, params)
    tasks = prune_tasks(tasks, predictor, keep)
    trials = allocate_trials(tasks, total_trials, predictor,
                             min_trials=min(num_trials_per_iter, total_trials // max(len(tasks), 1)) or 1)
    database = database or ms.database.JSONDatabase(work_dir=work_dir)
    builder = builder or local_builder()
    runner = runner or ms.runner.LocalRunner()
    for task, n in zip(tasks, trials):
        contexts, weights = tune_contexts([task], work_dir, space, strategy, seed)
        if not contexts:
            continue
        if isinstance(cost_model, str):  # one model for every task, as tune_tasks has for its tasks
            cost_model = ms.cost_model.CostModel.create(
                cost_model, num_tuning_cores=contexts[0].num_threads, tree_method="auto")
        ms.tune_tasks(tasks=contexts, task_weights=weights, work_dir=work_dir,
                      max_trials_global=n, num_trials_per_iter=min(num_trials_per_iter, n),
                      builder=builder, runner=runner, database=database, cost_model=cost_model)
    return database


def tune_contexts(tasks, work_dir: str, space="post-order-apply", strategy="evolutionary",
                  seed: int = 0):
    """``meta_schedule.relax_integration.extracted_tasks_to_tune_contexts``, but each task's
    random state is drawn from ``seed`` and the task's name, not from its position in ``tasks``:
    a task is searched alike whichever other tasks are tuned with it (so that tuning all tasks
    and tuning the pruned ones differ only in which tasks are tuned)."""
    import zlib

    from tvm.s_tir import meta_schedule as ms

    contexts, weights = [], []
    for task in tasks:
        task_seed = (seed * 1_000_003 + zlib.crc32(task.task_name.encode())) % (2**31 - 1)
        c, w = ms.relax_integration.extracted_tasks_to_tune_contexts(
            [task], work_dir, space=space, strategy=strategy, seed=task_seed)
        contexts += c
        weights += w
    return contexts, weights


def build_llvm(mod, target, _params=None):
    """MetaSchedule's ``LocalBuilder`` build function less its ``import tvm.s_tir.tensor_intrin``.

    The default one imports every tensor intrinsic (CUDA, ROCm, Hexagon, ARM, x86) in each fresh
    builder process, and the builder starts fresh processes for every batch: ~25 s of CPU per
    batch, past the builder's 30 s timeout on a busy 2-core machine, so every candidate failed
    with ``LocalBuilder: Timeout``.  Float32 llvm schedules use no tensor intrinsic (one that did
    would fail to build here, visibly, not silently)."""
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


def local_builder(**kwargs):
    """``meta_schedule.builder.LocalBuilder`` with :func:`build_llvm` as its build function.

    The builder's worker processes start with ``python -m`` in the caller's directory, where
    ``nnmeter_tvm`` may resolve to a source checkout without ``passes`` (it is installed from
    the top-level ``passes/``); so this module's functions travel by value, not by import."""
    import cloudpickle
    from tvm.s_tir import meta_schedule as ms

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return ms.builder.LocalBuilder(f_build=build_llvm, **kwargs)


def space_generator():
    """MetaSchedule's default post-order-apply space for llvm (schedule rules, postprocessors
    and mutators as TVM has them).

    An earlier version dropped the MutateComputeLocation and MutateParallel mutators: with
    apache-tvm-ffi 0.1.15.x under the apache-tvm 0.27.0.post1 wheel, ``tvm::ffi::ToJSONGraph``
    segfaults on IR nodes, which crashed MetaSchedule.  That is a package-version mismatch
    (it works with apache-tvm-ffi 0.1.13.post3 to 0.1.14.post1; pin ``apache-tvm-ffi<0.1.15``), not
    something to work around here."""
    from tvm.s_tir import meta_schedule as ms

    return ms.space_generator.PostOrderApply(sch_rules="llvm", postprocs="llvm", mutator_probs="llvm")


def prepare(mod, target=None, fuse_tir: bool = True):
    """``mod`` through the default CPU pipeline's legalization, up to FuseOps (or FuseTIR): the
    preparation ``compile_relax`` applies, so task names and database keys match."""
    import tvm
    from tvm import relax
    from tvm.relax.pipeline import library_dispatch_passes

    target = target or tvm.target.Target.current(allow_none=True) or tvm.target.Target("llvm")
    passes = [relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
              relax.transform.FoldConstant(), relax.transform.FuseOps()]
    with target:
        return tvm.transform.Sequential(library_dispatch_passes(target) + passes
                                        + ([relax.transform.FuseTIR()] if fuse_tir else []))(mod)


def _fuse(mod):
    return prepare(mod, fuse_tir=False)
