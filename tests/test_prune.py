"""MetaSchedule task pruning: the heaviest tasks are kept, trials follow predicted latency."""
from __future__ import annotations

import pytest

tvm = pytest.importorskip("tvm")
from tvm.s_tir import meta_schedule as ms  # noqa: E402

from nnmeter_tvm.errors import NNMeterError  # noqa: E402
from nnmeter_tvm.passes import prune  # noqa: E402
from test_passes_support import predictor, relax_module  # noqa: E402

TARGET = tvm.target.Target({"kind": "llvm", "num-cores": 1})


@pytest.fixture(scope="module")
def tasks():
    return prune.extract_tasks(relax_module("resnet", "pre"), TARGET, predictor("tvm-llvm"))


def test_every_task_carries_a_prediction(tasks):
    assert tasks and all(ms_ > 0 for ms_ in prune.task_latencies(tasks))
    # MetaSchedule's own view of the task (what it tunes and matches) is untouched
    raw = ms.relax_integration.extract_tasks(prune.prepare(relax_module("resnet", "pre"), TARGET), TARGET)
    assert [t.task_name for t in raw] == [t.task_name for t in tasks]
    for a, b in zip(raw, tasks):
        tvm.ir.assert_structural_equal(a.dispatched[0], b.dispatched[0])


@pytest.mark.parametrize("keep", [0.5, 0.8, 0.95, 1.0])
def test_prune_keeps_the_heaviest_tasks(tasks, keep):
    rows = prune.rank_tasks(tasks)
    kept = prune.prune_tasks(tasks, keep=keep)
    scores = {id(t): s for t, _, s in rows}
    total = sum(scores.values())
    kept_scores = [scores[id(t)] for t in kept]
    dropped = [s for t, _, s in rows if all(t is not k for k in kept)]
    assert sum(kept_scores) >= keep * total - 1e-9  # covers keep of the total
    assert sum(kept_scores[:-1]) < keep * total  # and is the smallest such set
    assert not dropped or min(kept_scores) >= max(dropped)  # no lighter task kept over a heavier
    if keep < 1:
        assert len(kept) < len(tasks)


def test_raw_metaschedule_tasks_need_their_module():
    mod = relax_module("resnet", "pre")
    raw = ms.relax_integration.extract_tasks(prune.prepare(mod, TARGET), TARGET)
    with pytest.raises(NNMeterError, match="carries no prediction"):
        prune.prune_tasks(raw, predictor("tvm-llvm"))
    kept = prune.prune_tasks(raw, predictor("tvm-llvm"), keep=0.9, mod=mod)
    ours = prune.prune_tasks(prune.extract_tasks(mod, TARGET, predictor("tvm-llvm")), keep=0.9)
    assert [t.task_name for t in kept] == [t.task_name for t in ours]


def test_allocate_trials_follows_predicted_latency(tasks):
    kept = prune.prune_tasks(tasks, keep=0.95)
    trials = prune.allocate_trials(kept, 200, min_trials=2)
    assert sum(trials) == 200 and min(trials) >= 2
    scores = [ms_ * t.weight for ms_, t in zip(prune.task_latencies(kept), kept)]
    order = sorted(range(len(kept)), key=lambda i: -scores[i])
    assert trials[order[0]] >= trials[order[-1]]
    with pytest.raises(ValueError, match="cannot give"):
        prune.allocate_trials(kept, 1, min_trials=1)
    with pytest.raises(ValueError, match="keep"):
        prune.prune_tasks(tasks, keep=0)


def test_space_generator_keeps_metaschedule_default_mutators():
    # the mutators the 0.1.15 ToJSONGraph crash once made us drop are back
    space = prune.space_generator()
    assert isinstance(space, ms.space_generator.PostOrderApply)
    names = {str(m).split("(")[0] for m in ms.mutator.Mutator.create("llvm")}
    assert {"s_tir.meta_schedule.MutateComputeLocation",
            "s_tir.meta_schedule.MutateParallel"} <= names


def _ir_serialization_works() -> bool:
    """Whether ``ToJSONGraph`` works on an IR node (in a child process: where it does not, it
    segfaults, which would end the whole test run)."""
    import subprocess
    import sys

    code = ("import tvm; from tvm_ffi import serialization; "
            "print(serialization.to_json_graph_str(tvm.tirx.IntImm('int32', 3)))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    return run.returncode == 0 and "ir.IntImm" in run.stdout


IR_SERIALIZATION_OK = _ir_serialization_works()


def test_ir_serialization_works():
    # MetaSchedule serializes IR (workloads, tuning records, tuning contexts)
    import tvm_ffi

    assert IR_SERIALIZATION_OK, (
        f"tvm_ffi.serialization.to_json_graph_str crashes on IR nodes with apache-tvm "
        f"{tvm.__version__} and apache-tvm-ffi {tvm_ffi.__version__}: MetaSchedule cannot run "
        "(apache-tvm 0.27.0.post1 needs apache-tvm-ffi < 0.1.15, e.g. 0.1.14.post1)")


@pytest.fixture
def ms_logging(monkeypatch):
    """MetaSchedule's logging setup names each handler of its logger in a ``dictConfig`` and
    fails (``'NoneType' object has no attribute 'format'``) on the nameless capture handlers
    pytest's logging plugin leaves there: drop those before each of its setups."""
    import logging

    import tvm.s_tir.meta_schedule.logging as ms_log

    original = ms_log.create_loggers

    def create_loggers(*args, **kwargs):
        logger = logging.getLogger("tvm.s_tir.meta_schedule")
        for handler in [h for h in logger.handlers if not h.get_name()]:
            logger.removeHandler(handler)
        return original(*args, **kwargs)

    monkeypatch.setattr(ms_log, "create_loggers", create_loggers)


def test_tune_contexts_seed_each_task_by_its_name(tasks, tmp_path, ms_logging):
    def states(ts, seed=7):
        contexts, _ = prune.tune_contexts(ts, str(tmp_path), seed=seed)
        return {c.task_name: int(c.rand_state) for c in contexts}

    name = tasks[3].task_name
    among = states(tasks[:6])
    assert states([tasks[3]])[name] == among[name]  # the same alone as among others
    assert len(set(among.values())) == len(among)  # distinct tasks, distinct states
    assert states([tasks[3]], seed=8)[name] != among[name]


@pytest.mark.skipif(not IR_SERIALIZATION_OK, reason="MetaSchedule would segfault: see "
                    "test_ir_serialization_works")
def test_tune_pruned_tunes_the_kept_tasks(tmp_path, ms_logging):
    """A real (tiny) MetaSchedule run: the kept tasks get records, the compiled module runs."""
    pytest.importorskip("psutil")  # MetaSchedule's own needs
    pytest.importorskip("cloudpickle")
    import numpy as np
    from tvm import relax

    from test_passes_support import relax_module as rm

    mod = rm("alexnet")
    tasks = prune.extract_tasks(mod, TARGET, predictor("tvm-llvm"))
    kept = prune.prune_tasks(tasks, predictor("tvm-llvm"), keep=0.5)
    db = prune.tune_pruned(mod, TARGET, str(tmp_path), 2 * len(kept), predictor("tvm-llvm"),
                           keep=0.5, num_trials_per_iter=2, tasks=tasks,
                           strategy="replay-trace", cost_model="random")
    records = db.get_all_tuning_records()
    assert len(records) == 2 * len(kept)
    assert all(r.run_secs and float(r.run_secs[0]) < 1e9 for r in records)  # built and ran
    ex = ms.relax_integration.compile_relax(db, mod, TARGET, params=None)
    vm = relax.VirtualMachine(ex, tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(np.zeros((1, 3, 32, 32), "float32")))
    assert np.isfinite(out.numpy()).all()
