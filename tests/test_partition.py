"""Partition golden tests on hand-built graphs, plus a property test on random DAGs.

Rules here are hand-written (``origin.method = "observed"``), so each test states the backend
behaviour it assumes; the shipped rules files are checked in ``test_rules.py``.
"""
import importlib

import numpy as np
import pytest

from nnmeter_tvm.graph import Graph, Node, TensorInfo
from nnmeter_tvm.kernels import Kernel, partition
from nnmeter_tvm.kernels.partition import (adjacency, anchor_of, eliminate_common_subexpressions,
                                           partition_with_decisions)
from nnmeter_tvm.rules import from_dict

try:
    from hypothesis import given, settings, strategies as st
except ImportError:  # pragma: no cover
    given = None


# ---- a tiny graph builder ---------------------------------------------------------------------

class G:
    def __init__(self, shape=(1, 32, 16, 16)):
        self.nodes, self.shapes = [], {"x": tuple(shape)}
        self.inputs = [TensorInfo("x", tuple(shape))]

    def add(self, name, op, *inputs, shape=None, n_out=1, **attrs):
        in_shapes = tuple(self.shapes[t] for t in inputs)
        out_shape = tuple(shape or in_shapes[0])
        outs = tuple(name if i == 0 else f"{name}:{i}" for i in range(n_out))
        for o in outs:
            self.shapes[o] = out_shape
        attrs.setdefault("const_inputs", {})
        if op in ("conv", "dwconv", "gconv"):
            attrs.setdefault("cin", in_shapes[0][1])
            attrs.setdefault("cout", out_shape[1])
            attrs.setdefault("group", {"conv": 1, "dwconv": in_shapes[0][1]}.get(op, 2))
        self.nodes.append(Node(name, op, op, tuple(inputs), outs, in_shapes, (out_shape,) * n_out,
                               attrs=attrs))
        return outs[0] if n_out == 1 else outs

    def graph(self, *outputs):
        outs = outputs or (self.nodes[-1].outputs[0],)
        return Graph("g", tuple(self.nodes), tuple(self.inputs),
                     tuple(TensorInfo(o, self.shapes[o]) for o in outs))


def rule(kind, ops, groups, requires=(), topology=None, name=None):
    d = {"name": name or "_".join(ops) + ("_" + topology if topology else ""), "kind": kind,
         "ops": list(ops), "groups": [list(g) for g in groups], "requires": list(requires),
         "origin": {"method": "observed", "backend": "test"}}
    if topology:
        d["topology"] = topology
    return d


FUSED, APART = [[0, 1]], [[0], [1]]


def make_rules(*rules, layout=None):
    return from_dict({"schema": "nnmeter-tvm/rules", "schema_version": 1,
                      "backend": {"name": "test", "version": "0"}, "machine": {}, "alpha": 0.5,
                      "date": "2026-01-01", "rules": list(rules), "layout": layout})


def groups(kernels):
    return [k.nodes for k in kernels if not k.inserted]


# onnxruntime-like: conv absorbs bn, activations and (blocked) residual adds
ORT_LIKE = make_rules(
    rule("pair", ("conv", "bn"), FUSED), rule("pair", ("bn", "relu"), APART),
    rule("pair", ("conv", "relu"), FUSED), rule("pair", ("relu", "conv"), APART),
    rule("pair", ("relu", "add"), APART), rule("pair", ("bn", "add"), APART),
    rule("pair", ("add", "relu"), APART), rule("pair", ("conv", "hardsigmoid"), FUSED),
    rule("pair", ("hardsigmoid", "mul"), APART), rule("pair", ("globalavgpool", "conv"), APART),
    rule("chain", ("conv", "bn", "relu"), [[0, 1, 2]]),
    rule("chain", ("conv", "bn", "add"), [[0, 1, 2]]),
    rule("chain", ("conv", "add", "relu"), [[0, 1, 2]]),
    rule("multi_output", ("conv", "sigmoid", "mul"), [[0], [1, 2]], topology="diamond"),
    rule("multi_input", ("conv", "conv", "add"), [[0, 2], [1]]),
)
# TVM-like: bn starts a kernel that takes the elementwise ops after it, both producers of an add
TVM_LIKE = make_rules(
    rule("pair", ("conv", "bn"), APART), rule("pair", ("bn", "relu"), FUSED),
    rule("pair", ("bn", "add"), FUSED), rule("pair", ("add", "relu"), FUSED),
    rule("pair", ("relu", "conv"), APART), rule("pair", ("relu", "concat"), FUSED),
    rule("pair", ("concat", "reshape"), FUSED), rule("pair", ("reshape", "transpose"), FUSED),
    rule("pair", ("transpose", "reshape"), FUSED), rule("pair", ("reshape", "split"), FUSED),
    rule("pair", ("split", "conv"), APART), rule("pair", ("split", "concat"), FUSED),
    rule("pair", ("hardsigmoid", "mul"), FUSED), rule("pair", ("conv", "hardsigmoid"), FUSED),
    rule("pair", ("conv", "relu"), FUSED),
    rule("chain", ("conv", "bn", "relu"), [[0], [1, 2]]),
    rule("multi_output", ("conv", "sigmoid", "mul"), [[0, 1, 2]], topology="diamond"),
    rule("multi_input", ("bn", "bn", "add"), [[0, 1, 2]]),
    rule("multi_input", ("relu", "relu", "concat"), [[0, 1, 2]]),
)


# ---- golden tests -------------------------------------------------------------------------------

def test_chain_conv_bn_relu():
    g = G()
    g.add("relu", "relu", g.add("bn", "bn", g.add("conv", "conv", "x")))
    ks = partition(g.graph(), ORT_LIKE)
    assert groups(ks) == [("conv", "bn", "relu")]
    assert ks[0].type == "conv-bn-relu" and ks[0].anchor == "conv" and ks[0].rule == "conv_bn_relu"
    assert groups(partition(g.graph(), TVM_LIKE)) == [("conv",), ("bn", "relu")]


def _residual():
    g = G()
    r1 = g.add("relu1", "relu", g.add("bn1", "bn", g.add("conv1", "conv", "x")))
    b2 = g.add("bn2", "bn", g.add("conv2", "conv", r1))
    g.add("relu2", "relu", g.add("add", "add", r1, b2))
    return g.graph()


def test_residual_add():
    assert groups(partition(_residual(), ORT_LIKE)) == [
        ("conv1", "bn1", "relu1"), ("conv2", "bn2", "add", "relu2")]
    assert groups(partition(_residual(), TVM_LIKE)) == [
        ("conv1",), ("bn1", "relu1"), ("conv2",), ("bn2", "add", "relu2")]


def test_two_fusable_producers_follow_the_multi_input_rule():
    g = G()
    a = g.add("bna", "bn", g.add("conva", "conv", "x"))
    b = g.add("bnb", "bn", g.add("convb", "conv", "x"))
    g.add("relu", "relu", g.add("add", "add", a, b))
    assert groups(partition(g.graph(), ORT_LIKE)) == [
        ("convb", "bnb"), ("conva", "bna", "add", "relu")]
    assert groups(partition(g.graph(), TVM_LIKE)) == [
        ("conva",), ("convb",), ("bna", "bnb", "add", "relu")]


def test_multi_output_fork_needs_a_rule():
    g = G()
    c = g.add("conv", "conv", "x")
    g.add("relu", "relu", c)
    g.add("sig", "sigmoid", c)
    graph = g.graph("relu", "sig")
    kernels, decisions = partition_with_decisions(graph, ORT_LIKE)
    assert groups(kernels) == [("conv",), ("relu",), ("sig",)]
    assert {d.rule for d in decisions} == {"default:multi_output_conv"}
    fork = make_rules(rule("multi_output", ("conv", "relu", "sigmoid"), [[0, 1], [2]],
                           topology="fork"))
    assert groups(partition(graph, fork)) == [("conv", "relu"), ("sig",)]


def test_diamond_swish():
    g = G()
    c = g.add("conv", "conv", "x")
    g.add("mul", "mul", c, g.add("sig", "sigmoid", c))
    assert groups(partition(g.graph(), ORT_LIKE)) == [("conv",), ("sig", "mul")]
    assert groups(partition(g.graph(), TVM_LIKE)) == [("conv", "sig", "mul")]


def test_concat_of_fused_branches():
    g = G()
    a = g.add("ra", "relu", g.add("bna", "bn", g.add("ca", "conv", "x")))
    b = g.add("rb", "relu", g.add("bnb", "bn", g.add("cb", "conv", "x")))
    g.add("cat", "concat", a, b, shape=(1, 64, 16, 16), axis=1)
    assert groups(partition(g.graph(), TVM_LIKE)) == [
        ("ca",), ("cb",), ("bna", "ra", "bnb", "rb", "cat")]
    assert groups(partition(g.graph(), ORT_LIKE)) == [
        ("ca", "bna", "ra"), ("cb", "bnb", "rb"), ("cat",)]


def test_se_block():
    g = G()
    x = g.add("r0", "relu", g.add("c0", "conv", "x"))
    s = g.add("gap", "globalavgpool", x, shape=(1, 32, 1, 1))
    s = g.add("sr", "relu", g.add("sc1", "conv", s, shape=(1, 8, 1, 1)))
    s = g.add("hs", "hardsigmoid", g.add("sc2", "conv", s, shape=(1, 32, 1, 1)))
    g.add("mul", "mul", x, s, shape=(1, 32, 16, 16))
    assert groups(partition(g.graph(), ORT_LIKE)) == [
        ("c0", "r0"), ("gap",), ("sc1", "sr"), ("sc2", "hs"), ("mul",)]
    assert groups(partition(g.graph(), TVM_LIKE)) == [
        ("c0", "r0"), ("gap",), ("sc1", "sr"), ("sc2", "hs", "mul")]


def test_channel_shuffle():
    g = G()
    left, right = g.add("split0", "split", "x", shape=(1, 16, 16, 16), n_out=2, axis=1)
    r = g.add("r", "relu", g.add("bn", "bn", g.add("c", "conv", right)))
    cat = g.add("cat", "concat", left, r, shape=(1, 32, 16, 16), axis=1)
    t = g.add("resh1", "reshape", cat, shape=(1, 2, 16, 16, 16))
    t = g.add("tr", "transpose", t, shape=(1, 16, 2, 16, 16))
    t = g.add("resh2", "reshape", t, shape=(1, 32, 16, 16))
    a, b = g.add("split1", "split", t, shape=(1, 16, 16, 16), n_out=2, axis=1)
    g.add("c2", "conv", b)
    graph = g.graph("split1", "c2")
    tvm = groups(partition(graph, TVM_LIKE))
    assert ("bn", "r", "cat", "resh1", "tr", "resh2", "split1") in tvm
    assert ("split0",) in tvm and ("c",) in tvm and ("c2",) in tvm
    assert all(len(k) == 1 for k in groups(partition(graph, make_rules())))


def test_merge_that_would_make_a_cycle_is_refused():
    # a -> b -> c and a -> c: fusing a with c would leave b both after and before the kernel
    g = G()
    a = g.add("a", "relu", "x")
    b = g.add("b", "conv", a)
    g.add("c", "add", a, b)
    rules = make_rules(rule("multi_output", ("relu", "conv", "add"), [[0, 2], [1]],
                            topology="diamond"))
    kernels, decisions = partition_with_decisions(g.graph(), rules)
    assert groups(kernels) == [("a",), ("b",), ("c",)]
    refused = [d for d in decisions if d.producer == "a" and d.consumer == "c"]
    assert refused and not refused[0].fused and "cyclic" in refused[0].reason


NCHWC = {"name": "nchwc", "block": 16,
         "starts": {"conv": {"plain_below": 16, "multiple": 4}, "maxpool": {"multiple": 16}},
         "follows": {"relu": {}, "globalavgpool": {"multiple": 16}, "add": {"same_shape": True},
                     "bn": {}},
         "absorbs": {}, "origin": {"method": "observed"}}


def test_layout_reorders_are_inserted_where_the_layout_changes():
    g = G((1, 3, 32, 32))
    c1 = g.add("c1", "conv", "x", shape=(1, 32, 32, 32))          # cin 3: reads plain directly
    p = g.add("pool", "maxpool", g.add("r1", "relu", c1), shape=(1, 32, 16, 16))
    c2 = g.add("c2", "conv", p, shape=(1, 24, 16, 16))
    gap = g.add("gap", "globalavgpool", c2, shape=(1, 24, 1, 1))  # 24 channels: plain
    g.add("flat", "reshape", gap, shape=(1, 24))
    rules = make_rules(rule("pair", ("conv", "relu"), FUSED), layout=NCHWC)
    ks = partition(g.graph(), rules)
    assert [(k.type, k.attrs.get("tensor")) for k in ks] == [
        ("conv-relu", None), ("maxpool", None), ("conv", None), ("reorder", "c2"),
        ("globalavgpool", None), ("reshape", None)]
    x = G((1, 32, 16, 16))
    x.add("c", "conv", "x")
    ks = partition(x.graph(), rules)
    assert [k.attrs.get("direction") for k in ks if k.inserted] == ["to_blocked", "from_blocked"]
    assert all(isinstance(k, Kernel) for k in ks)


def test_blocked_condition_gates_a_rule():
    g = G((1, 32, 16, 16))
    b = g.add("bn", "bn", g.add("pool", "maxpool", "x", shape=(1, 32, 8, 8)))
    g.add("relu", "relu", b)
    rules = make_rules(rule("pair", ("bn", "relu"), FUSED, requires=["blocked"]), layout=NCHWC)
    assert ("bn", "relu") in groups(partition(g.graph(), rules))
    h = G((1, 24, 16, 16))                                         # 24 channels: pool stays plain
    b = h.add("bn", "bn", h.add("pool", "maxpool", "x", shape=(1, 24, 8, 8)))
    h.add("relu", "relu", b)
    _, decisions = partition_with_decisions(h.graph(), rules)
    d = next(d for d in decisions if d.consumer == "relu")
    assert not d.fused and "blocked" in d.reason


# ---- property: random DAGs ----------------------------------------------------------------------

OPS = ("conv", "bn", "relu", "add", "concat", "maxpool", "sigmoid", "mul")


def random_graph(rng) -> Graph:
    g = G((1, 16, 8, 8))
    tensors = ["x"]
    for i in range(int(rng.integers(1, 14))):
        op = OPS[int(rng.integers(len(OPS)))]
        if op in ("add", "concat", "mul") and len(tensors) >= 2:
            a, b = rng.choice(len(tensors), size=2, replace=False)
            tensors.append(g.add(f"n{i}", op, tensors[a], tensors[b], axis=1))
        else:
            src = tensors[int(rng.integers(len(tensors)))]
            tensors.append(g.add(f"n{i}", "relu" if op in ("add", "concat", "mul") else op, src))
    used = {t for n in g.nodes for t in n.inputs}
    outs = [t for t in tensors[1:] if t not in used] or [tensors[-1]]
    return g.graph(*outs)


def random_rules(rng):
    rs = []
    for a in OPS:
        for b in OPS:
            if rng.random() < 0.6:
                rs.append(rule("pair", (a, b), FUSED if rng.random() < 0.7 else APART))
            if rng.random() < 0.2:
                c = OPS[int(rng.integers(len(OPS)))]
                grouping = [[[0, 1, 2]], [[0], [1, 2]], [[0, 1], [2]], [[0, 2], [1]]]
                pick = grouping[int(rng.integers(4))]
                rs.append(rule("multi_output", (a, b, c), pick, topology="fork"))
                rs.append(rule("multi_output", (a, b, c), pick, topology="diamond"))
                rs.append(rule("multi_input", (a, b, c), pick))
                rs.append(rule("chain", (a, b, c), pick))
    seen, out = set(), []
    for r in rs:
        if r["name"] not in seen:
            seen.add(r["name"])
            out.append(r)
    return make_rules(*out, layout=NCHWC if rng.random() < 0.5 else None)


def check_partition(graph: Graph, kernels):
    members = [n for k in kernels for n in k.nodes]
    assert sorted(members) == sorted(n.name for n in graph.nodes)  # every node exactly once
    for k in kernels:  # the partitioner keeps each group's anchor as groups merge
        if k.nodes:
            assert k.anchor == anchor_of([graph.node(n) for n in k.nodes]).name
    owner = {n: i for i, k in enumerate(kernels) for n in k.nodes}
    edges = {(owner[p], owner[n.name]) for n in graph.nodes
             for p in graph.predecessors(n.name) if owner[p] != owner[n.name]}
    # the kernel graph is acyclic: a topological sort consumes every kernel
    indeg = {k: 0 for k in set(owner.values())}
    for _, b in edges:
        indeg[b] += 1
    ready = [k for k, d in indeg.items() if d == 0]
    seen = 0
    while ready:
        k = ready.pop()
        seen += 1
        for a, b in edges:
            if a == k:
                indeg[b] -= 1
                if indeg[b] == 0:
                    ready.append(b)
    assert seen == len(indeg), "kernel graph has a cycle"


if given is not None:
    @settings(max_examples=300, deadline=None)
    @given(st.integers(0, 2**32 - 1))
    def test_random_dags_cover_every_node_once_and_stay_acyclic(seed):
        rng = np.random.default_rng(seed)
        graph, rules = random_graph(rng), random_rules(rng)
        check_partition(graph, partition(graph, rules))
else:  # pragma: no cover
    @pytest.mark.parametrize("seed", range(300))
    def test_random_dags_cover_every_node_once_and_stay_acyclic(seed):
        rng = np.random.default_rng(seed)
        graph, rules = random_graph(rng), random_rules(rng)
        check_partition(graph, partition(graph, rules))


def test_compatible_condition_keeps_a_blocked_producer_from_a_mixed_consumer():
    # blocked conv -> add(conv, plain x): onnxruntime cannot feed the sum into the blocked conv
    g = G((1, 32, 16, 16))
    c = g.add("c", "conv", "x")
    g.add("add", "add", c, "x")
    rules = make_rules(rule("pair", ("conv", "add"), FUSED, requires=["compatible"]), layout=NCHWC)
    _, decisions = partition_with_decisions(g.graph(), rules)
    d = next(d for d in decisions if d.consumer == "add")
    assert not d.fused and "blocked producer" in d.reason
    h = G((1, 18, 16, 16))                                         # 18 channels: conv stays plain
    c = h.add("c", "conv", "x")
    h.add("add", "add", c, "x")
    assert ("c", "add") in groups(partition(h.graph(), rules))


def test_common_subexpressions_run_once_when_the_rules_say_so():
    g = G()
    a = g.add("r1", "relu", "x")
    b = g.add("r2", "relu", "x")
    g.add("ca", "conv", a)
    g.add("cb", "conv", b)
    graph = g.graph("ca", "cb")
    plain = make_rules()
    assert len(partition(graph, plain)) == 4
    cse = from_dict({**make_rules().to_dict(), "rewrites": [{"name": "cse",
                                                              "origin": {"method": "observed"}}]})
    ks = partition(graph, cse)
    views = [k for k in ks if k.attrs.get("view")]
    assert [k.nodes for k in views] == [("r2",)] and views[0].attrs["duplicate_of"] == "r1"
    check_partition(graph, ks)


def test_view_rule_marks_a_lone_op_unless_the_graph_returns_it():
    g = G()
    flat = g.add("flat", "reshape", g.add("gap", "globalavgpool", "x", shape=(1, 32, 1, 1)),
                 shape=(1, 32))
    rules = make_rules({"name": "reshape_view", "kind": "view", "ops": ["reshape"],
                        "groups": [[0]], "origin": {"method": "observed"}})
    assert [k.attrs.get("view", False) for k in partition(g.graph(), rules)] == [False, False]
    g.add("fc", "gemm", flat, shape=(1, 10))
    ks = partition(g.graph(), rules)
    assert [k.attrs.get("view", False) for k in ks] == [False, True, False]


def test_adjacency_lists_producers_and_consumers_as_the_graph_does():
    g = G()
    a, b = g.add("split", "split", "x", n_out=2)
    g.add("late", "add", b, b)            # reads the second output first, twice
    g.add("early", "mul", a, b)
    g.add("out", "add", "late", "early")
    graph = g.graph()
    preds, succs = adjacency(graph)
    assert preds == {n.name: graph.predecessors(n.name) for n in graph.nodes}
    assert succs == {n.name: graph.successors(n.name) for n in graph.nodes}
    assert succs["split"] == ["early", "late"]
    for seed in range(50):
        graph = random_graph(np.random.default_rng(seed))
        preds, succs = adjacency(graph)
        assert preds == {n.name: graph.predecessors(n.name) for n in graph.nodes}
        assert succs == {n.name: graph.successors(n.name) for n in graph.nodes}


def test_same_op_on_one_tensor_with_other_attributes_is_no_repeat():
    g = G()
    g.add("s1", "slice", "x", starts=[0])
    g.add("s2", "slice", "x", starts=[8])  # same op, input and shape; other attributes
    graph = g.graph("s1", "s2")
    assert eliminate_common_subexpressions(graph) == (graph, {})


@pytest.mark.parametrize("seed", range(40))
def test_common_subexpression_shortcut_agrees_with_the_full_walk(seed, monkeypatch):
    graph = random_graph(np.random.default_rng(seed))
    for keep in ("first", "last"):
        fast, fast_dups = eliminate_common_subexpressions(graph, keep)
        with monkeypatch.context() as m:
            # the module, not the function that nnmeter_tvm.kernels exports under its name
            module = importlib.import_module("nnmeter_tvm.kernels.partition")
            m.setattr(module, "_may_repeat", lambda *_: True)
            full, full_dups = eliminate_common_subexpressions(graph, keep)
        assert fast_dups == full_dups
        assert [n.name for n in fast.nodes] == [n.name for n in full.nodes]
        assert [n.inputs for n in fast.nodes] == [n.inputs for n in full.nodes]
