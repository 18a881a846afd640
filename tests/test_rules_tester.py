"""The rule tester against a fake backend whose fusions are known, and one real onnxruntime pair."""
from dataclasses import dataclass

import numpy as np
import pytest
from onnx import helper

from nnmeter_tvm.builder.rules_cases import Part
from nnmeter_tvm.builder.rules_pair import pair_rule
from nnmeter_tvm.builder.rules_tester import RuleTester
from nnmeter_tvm.builder.testcases import (CaseShape, Step, Template, build_case, collect_patterns,
                                           default_template, empty_case, trivial_case)
from nnmeter_tvm.kernels import partition
from nnmeter_tvm.onnx_import import load_graph
from nnmeter_tvm.rules import from_dict

from helpers import make_model, weights


def _rule(kind, ops, groups, topology=None):
    d = {"name": "_".join(ops) + (f"_{topology}" if topology else ""), "kind": kind,
         "ops": list(ops), "groups": groups, "origin": {"method": "observed"}}
    if topology:
        d["topology"] = topology
    return d


# The fake backend's secret: TVM-like fusion (bn starts a kernel, elementwise ops join it)
SECRET = from_dict({
    "schema": "nnmeter-tvm/rules", "schema_version": 1, "backend": {"name": "fake", "version": "1"},
    "machine": {}, "alpha": 0.5, "date": "2026-01-01", "rules": [
        _rule("pair", ("conv", "relu"), [[0, 1]]),
        _rule("pair", ("bn", "relu"), [[0, 1]]),
        _rule("pair", ("bn", "add"), [[0, 1]]),
        _rule("pair", ("add", "relu"), [[0, 1]]),
        _rule("chain", ("bn", "add", "relu"), [[0, 1, 2]]),
        _rule("multi_input", ("bn", "bn", "add"), [[0, 1, 2]]),
    ]})
COST = {"conv": 4.0, "bn": 1.0, "relu": 0.6, "add": 1.0, "maxpool": 0.8, "slice": 0.0}


@dataclass
class FakeMeasurement:
    median_ms: float
    p10_ms: float
    p90_ms: float
    ok: bool = True
    error: str | None = None


class FakeBackend:
    """Latency = overhead + per kernel: its anchor's cost + 5 % of the fused members' costs."""

    name = "fake"
    threads = 1
    secret, cost, scale = None, None, 1e-4   # the fusion rules, op costs (SECRET, COST by default)

    def __init__(self):
        self.calls = 0

    def version(self):
        return "1"

    def measure(self, model, *, key=None, store=None, config=None, timeout_s=60.0):
        self.calls += 1
        graph = load_graph(getattr(model, "proto", model))
        total = 0.05
        for k in partition(graph, self.secret or SECRET):
            costs = [(self.cost or COST)[op] * np.prod(graph.node(n).output_shape) * self.scale
                     for n, op in zip(k.nodes, k.ops)]
            total += costs[0] + 0.05 * sum(costs[1:])
        return FakeMeasurement(total, total * 0.99, total * 1.01)


def _zoo_like():
    """conv -> bn -> relu -> conv -> bn -> add(relu, .) -> relu, plus a second bn branch."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="c1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["b1"], name="b1"),
        helper.make_node("Relu", ["b1"], ["r1"], name="r1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="c2", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c2", "s", "b", "m", "v"], ["b2"], name="b2"),
        helper.make_node("Conv", ["r1", "w2"], ["c3"], name="c3", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c3", "s", "b", "m", "v"], ["b3"], name="b3"),
        helper.make_node("Add", ["b2", "b3"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["y"], name="r2"),
    ]
    inits = {"w1": weights(8, 8, 3, 3), "w2": weights(8, 8, 3, 3, seed=1),
             "s": np.ones(8), "b": np.zeros(8), "m": np.zeros(8), "v": np.ones(8)}
    return load_graph(make_model(nodes, [("x", (1, 8, 16, 16))], [("y", (1, 8, 16, 16))], inits))


def test_fake_backend_rules_are_recovered_exactly():
    graph = _zoo_like()
    patterns = collect_patterns([graph])
    tester = RuleTester(FakeBackend(), shapes=(CaseShape(8, 8), CaseShape(8, 16)))
    rules = tester.detect(patterns, [graph], curated=False)
    pairs = {r.ops: r for r in rules.rules if r.kind == "pair"}
    assert set(pairs) == set(patterns.pairs)
    for (a, b), r in pairs.items():
        truth = SECRET.pair(a, b)
        assert r.fused == (truth is not None and truth.fused), (a, b, r.case)
        assert r.origin["method"] == "timing" and len(r.evidence) == 2
        assert {"t1", "t2", "t12", "saving_ms", "threshold_ms"} <= set(r.evidence[0])
        assert "t0_ms" in r.evidence[0]["t1"] and "net_ms" in r.evidence[0]["t12"]
    chain = rules.chain("bn", "add", "relu")
    assert chain is not None and chain.groups == ((0, 1, 2),)
    assert chain.evidence[0]["winner"] == "bn+add+relu"
    join = rules.multi_input("bn", "bn", "add")
    assert join is not None and join.case == "bn+bn+add"
    # the detected rules partition the graph as the backend does
    ours = [k.nodes for k in partition(graph, rules)]
    assert ours == [k.nodes for k in partition(graph, SECRET)]


class LaunchBoundFake(FakeBackend):
    """An untuned compiler: the same kernels as SECRET, each costing a fixed launch plus every
    member's full work (a fused kernel still writes and reads its intermediates, so fusion
    saves nothing but the launch); Identity nodes are removed and cost nothing."""

    LAUNCH_MS = 0.3

    def measure(self, model, *, key=None, store=None, config=None, timeout_s=60.0):
        self.calls += 1
        graph = load_graph(getattr(model, "proto", model))
        total = 0.8
        for k in partition(graph, SECRET):
            if set(k.ops) == {"identity"}:
                continue
            total += self.LAUNCH_MS + sum(COST[op] * np.prod(graph.node(n).output_shape) * 1e-4
                                          for n, op in zip(k.nodes, k.ops))
        return FakeMeasurement(total, total * 0.999, total * 1.001)


def test_launch_probe_finds_fusions_that_save_no_time():
    graph = _zoo_like()
    patterns = collect_patterns([graph])
    large = (CaseShape(8, 64),)   # every op far above a launch
    blind = RuleTester(LaunchBoundFake(), shapes=large, launch=None).detect(
        patterns, [graph], curated=False)
    # nn-Meter's criterion alone: no fusion saves time, so every pair looks separate
    assert not any(r.fused for r in blind.rules if r.kind == "pair")
    rules = RuleTester(LaunchBoundFake(), shapes=large, launch=CaseShape(4, 2)).detect(
        patterns, [graph], curated=False)
    for r in (r for r in rules.rules if r.kind == "pair"):
        truth = SECRET.pair(*r.ops)
        assert r.fused == (truth is not None and truth.fused), (r.ops, r.case)
        assert r.origin["method"] == "timing" and r.evidence[0]["shape"]["probe"]
    assert "the criterion at the other shapes says separate at c8hw64" in \
        rules.pair("bn", "relu").note
    assert rules.chain("bn", "add", "relu").groups == ((0, 1, 2),)
    assert rules.detection["launch_probe"]["shape"] == "c4hw2-launch"
    assert [k.nodes for k in partition(graph, rules)] == [k.nodes for k in partition(graph, SECRET)]


def test_decide_lets_a_conclusive_launch_probe_decide_and_notes_the_other_shapes():
    from nnmeter_tvm.builder.rules_verdicts import decide

    probe, large = CaseShape(4, 2, launch=True), CaseShape(8, 32)
    value, _, method, note = decide([(probe, True, True, None, True),
                                     (large, False, True, None, True)])
    assert value is True and method == "timing"
    assert "checked" in note and "separate at c8hw32" in note
    # an inconclusive probe leaves the decision to the other shapes, as without one
    assert decide([(probe, True, False, None, None), (large, False, True, None, None)])[0] is False


def test_a_launch_probe_decides_only_for_its_own_layout_context():
    """On a backend with a blocked layout the probe runs in one layout context: a shape in
    another context keeps its own verdict, so a pair fused only when blocked gets that
    condition by timing (onnxruntime's BatchNormalization + Add at 16 channels, blocked, and
    18, plain), while a shape of the probe's context defers to it, as without layouts."""
    from nnmeter_tvm.builder.rules_verdicts import decide

    probe, c32, c18 = CaseShape(16, 2, launch=True), CaseShape(32, 56), CaseShape(18, 56)
    blocked, plain = (True, True), (False, False)
    value, requires, method, note = decide([(probe, True, True, blocked, True),
                                            (c32, False, True, blocked, True),
                                            (c18, False, True, plain, False)])
    assert (value, tuple(requires), method) == (True, ("blocked",), "timing")
    assert "checked" in note and "separate at c32hw56" in note and "c18hw56" not in note


def test_the_automatic_launch_probe_sits_at_a_blocked_layouts_block_size():
    """``launch="auto"`` on a backend with a blocked layout: the probe at its block of channels
    (block-aligned, so it runs blocked, as the first test shape does), added once; none
    before the layout is known; ``launch=None`` keeps it off."""
    from types import SimpleNamespace

    layout = SimpleNamespace(block=8)
    bench = RuleTester(FakeBackend(), shapes=(CaseShape(8, 8),)).bench
    assert not any(s.launch for s in bench.shapes)
    bench.set_layout(layout)
    bench.set_layout(layout)
    assert bench.shapes == (CaseShape(8, 2, launch=True), CaseShape(8, 8))
    off = RuleTester(FakeBackend(), shapes=(CaseShape(8, 8),), launch=None).bench
    off.set_layout(layout)
    assert off.shapes == (CaseShape(8, 8),)


def test_launch_case_verdict_counts_the_launches_a_block_saves():
    from nnmeter_tvm.builder.rules_connections import ALL, FIRST_TWO, LAST_TWO, SEPARATE
    from nnmeter_tvm.builder.rules_verdicts import launch_case_verdict

    launch = 0.00035
    singles = [0.00040, 0.00036, 0.00035]    # conv, bn, relu: a launch each, little work
    # measured pairs: conv -> bn runs as two kernels, bn -> relu as one
    cases = {SEPARATE: sum(singles), FIRST_TWO: 0.00076 + 0.00035,
             LAST_TWO: 0.00040 + 0.00036, ALL: 0.00076 + 0.00036 - 0.00036}
    two = launch_case_verdict(0.00077, cases, singles, launch, noise_ms=0.00003)
    assert two["winner"] == LAST_TWO and not two["inconclusive"]
    assert two["launches_saved"] == 0.97
    # one kernel although the pair conv -> bn alone is two (its closest case would tie)
    assert launch_case_verdict(0.00042, cases, singles, launch, 0.00003)["winner"] == ALL
    apart = launch_case_verdict(0.00112, cases, singles, launch, 0.00003)
    assert apart["winner"] == SEPARATE and not apart["inconclusive"]
    half = launch_case_verdict(sum(singles) - launch / 2, cases, singles, launch, 0.00003)
    assert half["inconclusive"]


def test_a_shape_too_small_for_the_pattern_gives_no_timing_there():
    from nnmeter_tvm.builder.rules_cases import _empty_tensor

    pool = Template("maxpool", tuple(sorted(dict(default_template("maxpool").params,
                                                 pads=(0, 0, 0, 0)).items())))
    steps = [Step("a", pool), Step("b", pool, ("a",))]
    assert _empty_tensor(build_case(steps, CaseShape(4, 2)))   # 2x2 -> 0x0 -> ...
    assert not _empty_tensor(build_case(steps, CaseShape(4, 8)))
    # the suffix's one-element Slice reads the empty tensor: the model's output is not empty
    assert _empty_tensor(build_case(steps[:1], CaseShape(4, 1), prefix="maxpool1",
                                    suffix="slice1"))
    assert not _empty_tensor(build_case(steps[:1], CaseShape(4, 3), prefix="maxpool1",
                                        suffix="slice1"))
    tester = RuleTester(FakeBackend(), shapes=(CaseShape(8, 8),), launch=CaseShape(4, 2))
    assert tester.bench.time_parts(CaseShape(4, 2, launch=True),
                                   {"t12": Part("pair", tuple(steps))}) is None


def test_fake_backend_detection_resumes_from_the_store(tmp_path):
    from nnmeter_tvm.backends.store import Store

    graph = _zoo_like()
    patterns = collect_patterns([graph])
    store = Store(tmp_path / "m.sqlite")

    class Recording(FakeBackend):
        def measure(self, model, *, key=None, store=None, config=None, timeout_s=60.0):
            from nnmeter_tvm.backends.base import Measurement

            m = super().measure(model)
            rec = Measurement("fake", "1", key, m.median_ms, m.p10_ms, m.p90_ms, 30, 0.1, 0.0,
                              0, 1, {}, "2026-01-01T00:00:00+00:00")
            if store is not None:
                store.add(rec)
            return rec

    first = Recording()
    RuleTester(first, shapes=(CaseShape(8, 8),), store=store).detect(patterns, [graph], curated=False)
    again = Recording()
    tester = RuleTester(again, shapes=(CaseShape(8, 8),), store=store)
    tester.detect(patterns, [graph], curated=False)
    assert first.calls > 0 and again.calls == 0
    assert tester.measurer.report.reused == first.calls


def test_store_markers_tell_a_measurement_the_process_died_in(tmp_path):
    from nnmeter_tvm.backends.store import Store

    store = Store(tmp_path / "m.sqlite")
    assert not store.died_on("fake", "k")
    store.mark("fake", "1", "k", started=True)
    assert store.died_on("fake", "k") and not store.died_on("fake", "other")
    store.mark("fake", "1", "k", started=False)
    assert not store.died_on("fake", "k")
    assert store.get("fake", "k") is None and store.keys("fake") == set()  # markers are no data


def test_a_measurement_another_running_process_started_is_not_taken_for_a_crash(tmp_path):
    import subprocess
    import sys

    from nnmeter_tvm.backends.store import Store

    path = tmp_path / "m.sqlite"
    mark = "from nnmeter_tvm.backends.store import Store; import sys, time; " \
           "Store(sys.argv[1]).mark('fake', '1', 'k', started=True); print(flush=True); " \
           "time.sleep(float(sys.argv[2]))"
    busy = subprocess.Popen([sys.executable, "-c", mark, str(path), "60"],
                            stdout=subprocess.PIPE, text=True)
    try:
        busy.stdout.readline()   # the marker is written
        assert not Store(path).died_on("fake", "k")   # it is measuring k now
    finally:
        busy.kill()
        busy.wait()
    assert Store(path).died_on("fake", "k")   # and it is gone


# measures a test model on which onnxruntime 1.32 dies with SIGFPE: a 3x3 MaxPool whose output
# is 0x0, returned through the suffix's one-element Slice (the tester no longer writes such a
# model: ``_empty_tensor``); argv[1]: the measurement store
_DIES = """
import sys
from nnmeter_tvm.backends import ProtocolConfig, get_backend
from nnmeter_tvm.backends.store import Store
from nnmeter_tvm.builder.rules_timing import Measurer
from nnmeter_tvm.builder.testcases import CaseShape, Step, Template, build_case, default_template
params = dict(default_template("maxpool").params, pads=(0, 0, 0, 0))
pool = Template("maxpool", tuple(sorted(params.items())))
model = build_case([Step("a", pool)], CaseShape(16, 1), prefix="maxpool1", suffix="slice1")
backend = get_backend("ort-cpu", config=ProtocolConfig(min_time_s=0.01, warmup_s=0.0, min_runs=3))
measurer = Measurer(backend, store=Store(sys.argv[1]), config=backend.config)
print(measurer.session("empty-maxpool", model, 0, whole=True), measurer.report.failed)
"""


def test_a_test_model_that_killed_the_process_is_skipped_when_detection_resumes(tmp_path):
    """A native crash leaves no Python code to run: the store's ``started`` marker, with no
    ``finished`` after it, is what stops a resumed detection from dying on it again."""
    pytest.importorskip("onnxruntime")
    import subprocess
    import sys

    def run():
        return subprocess.run([sys.executable, "-c", _DIES, str(tmp_path / "m.sqlite")],
                              capture_output=True, text=True, timeout=300)

    first = run()
    if first.returncode == 0:
        pytest.skip("this onnxruntime runs a MaxPool with an empty output without crashing")
    again = run()
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("None ") and "died while measuring it" in again.stdout


def test_real_onnxruntime_conv_relu_fuses_and_relu_conv_does_not():
    pytest.importorskip("onnxruntime")
    from nnmeter_tvm.backends import ProtocolConfig, get_backend

    config = ProtocolConfig(min_time_s=0.05, warmup_s=0.02, min_runs=10)
    backend = get_backend("ort-cpu", config=config)
    # a 1x1 conv at 224x224, 16 channels: the relu (what fusion saves) is big enough that the
    # saving clears alpha * T_relu by about 120 us.  Not 112x112: there the 800 KB activation
    # stays in an Intel Xeon's 2 MB L2 between relu and conv, and the unfused pair once read a
    # saving above alpha * T_relu (2026-11-29); at 224 it read -15 us against a 120 us threshold.
    # The shared machine has slow spells (everything ~20 % slower for a minute) that can catch
    # a part's sessions; the median over 5 interleaved sessions outvotes two caught ones
    tester = RuleTester(backend, shapes=(CaseShape(16, 224),), prefix=None, observe=False,
                        config=config, repeats=5)
    conv = Template("conv", tuple(sorted(dict(default_template("conv").params, kernel_shape=(1, 1),
                                             pads=(0, 0, 0, 0)).items())))
    relu = default_template("relu")
    fused = pair_rule(tester.bench, "conv", "relu", conv, relu)
    apart = pair_rule(tester.bench, "relu", "conv", relu, conv)
    assert fused.case == "conv+relu", fused.evidence
    assert apart.case == "relu | conv", apart.evidence
    # nn-Meter's criterion decided it.  Whether the saving also clears twice the sessions'
    # noise (``inconclusive`` false) depends on the host: on one loaded by other processes
    # (2026-11-27) the right verdict came out inconclusive, so that is not asserted
    ev = fused.evidence[0]
    assert fused.origin["method"] == "timing" and ev["saving_ms"] > ev["threshold_ms"]
    assert len(ev["t12"]["repeats_ms"]) == 5


def test_kernel_sums_split_the_profile_into_runs():
    from nnmeter_tvm.builder.rules_timing import _run_sums

    def run(ts, dur):
        return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}

    def kernel(ts, dur):
        return {"cat": "Node", "name": f"n{ts}_kernel_time", "ts": ts, "dur": dur}

    events = [run(0, 100), kernel(10, 30), kernel(50, 20),
              {"cat": "Node", "name": "n_fence_before", "ts": 60, "dur": 5},
              run(200, 100), kernel(210, 40), kernel(260, 1)]
    assert _run_sums(events) == [0.05, 0.041]


def test_pair_verdict_is_inconclusive_near_the_threshold_and_below_the_resolution():
    from nnmeter_tvm.builder.rules_verdicts import pair_verdict

    fused = pair_verdict(0.100, 0.020, 0.101, 0.5, noise_ms=0.001)
    assert fused["fused"] and not fused["inconclusive"]
    apart = pair_verdict(0.100, 0.020, 0.119, 0.5, noise_ms=0.001)
    assert not apart["fused"] and not apart["inconclusive"]
    near = pair_verdict(0.100, 0.020, 0.110, 0.5, noise_ms=0.001)
    assert near["inconclusive"]
    assert pair_verdict(0.100, 0.0005, 0.100, 0.5, noise_ms=0.0)["inconclusive"]


def test_test_cases_are_valid_onnx():
    import onnx

    for op in ("conv", "dwconv", "gconv", "maxpool", "avgpool", "globalavgpool", "bn", "relu",
               "relu6", "sigmoid", "hardswish", "hardsigmoid", "add", "mul", "concat", "pad",
               "split", "slice", "reshape"):
        steps = [Step("a", default_template(op),
                      ("in", "other") if op in ("add", "mul", "concat") else ("in",))]
        for prefix in (None, "maxpool1"):
            case = build_case(steps, CaseShape(16, 8), prefix=prefix)
            onnx.checker.check_model(case, full_check=True)
            trivial = trivial_case(case)
            onnx.checker.check_model(trivial, full_check=True)
            # every input keeps its prefix and is read by a one-element slice
            assert len(trivial.graph.output) == len(case.graph.input)
            empty = empty_case(case)   # the launch probe's T0: the inputs, and no kernel
            onnx.checker.check_model(empty, full_check=True)
            assert {n.op_type for n in empty.graph.node} == {"Identity"}
            assert len(empty.graph.output) == len(case.graph.input)
    for op in ("gemm", "matmul", "softmax", "transpose"):
        onnx.checker.check_model(build_case([Step("a", default_template(op))], CaseShape(8, 4)),
                                 full_check=True)


def test_a_launch_probe_t0_with_a_suffix_launches_what_the_case_does_besides_the_pattern():
    """On onnxruntime a fork's two outputs each pass through a suffix Slice: its T0 at a launch
    probe has the prefix and two Slices, or the fork would look a launch dearer."""
    import onnx

    relu = default_template("relu")
    steps = [Step("a", default_template("conv"), ("in",)), Step("b", relu, ("a",)),
             Step("c", relu, ("a",))]
    case = build_case(steps, CaseShape(4, 2), prefix="maxpool1", suffix="slice1",
                      outputs=("b", "c"))
    t0 = trivial_case(case, per_output=True)
    onnx.checker.check_model(t0, full_check=True)
    kinds = sorted(n.op_type for n in t0.graph.node)
    assert kinds == sorted(n.op_type for n in case.graph.node
                           if n.name.startswith("prefix") or n.op_type == "Slice")
    assert kinds == ["MaxPool", "Slice", "Slice"]
