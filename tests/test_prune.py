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
