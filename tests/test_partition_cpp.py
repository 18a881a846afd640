"""The C++ partition (``partition``) against its Python specification
(``partition_with_decisions``).

Every comparison is of the full kernel records, in order: every field, the attrs with their key
order, and the repr (which shows the value types).  Graphs: the zoo (every family, several
variants) under the shipped rules files and two crossings of them; every hand-built graph of
``test_partition.py`` (its tests rerun with both partitions checked against each other); random
DAGs, with the generator and random rules of ``test_partition.py`` and with a richer one that
varies channels (the layout conditions), repeats nodes (CSE) and returns inner tensors.
"""
import functools
import inspect
import sys
import types
from dataclasses import fields

import numpy as np
import pytest

import nnmeter_tvm
import test_partition as golden
from nnmeter_tvm import zoo
from nnmeter_tvm.kernels import Kernel, native
from nnmeter_tvm.kernels.partition import partition, partition_with_decisions
from nnmeter_tvm.onnx_import import load_graph
from nnmeter_tvm.rules import from_dict, load
from test_partition import APART, FUSED, G, make_rules, random_graph, random_rules, rule

VARIANTS = 4
EXTRA_CSE_VARIANTS = (4, 5)  # more NAS-Bench-201 cells: they hold the zoo's repeated nodes


def record(k: Kernel) -> tuple:
    return (type(k), repr(k), tuple(getattr(k, f.name) for f in fields(k)), list(k.attrs.items()))


def assert_same_kernels(graph, rules):
    """The C++ kernels equal the Python ones; returns them."""
    fast = partition(graph, rules)
    spec = partition_with_decisions(graph, rules)[0]
    assert [record(k) for k in fast] == [record(k) for k in spec], graph.name
    return fast


# ---- rules: the shipped files and two crossings of them ---------------------------------------

def _with(rules, **changes):
    return from_dict({**rules.to_dict(), **changes})


@functools.lru_cache(maxsize=None)
def rules_named(name: str):
    ort, tvm = load("ort-cpu"), load("tvm-llvm")
    if name == "ort-cpu":
        return ort
    if name == "tvm-llvm":
        return tvm
    if name == "ort-cpu, cse keeps the last":
        return _with(ort, rewrites=[{**ort.rewrites_named("cse"), "keep": "last"}])
    assert name == "tvm-llvm with ort-cpu's layout and cse"
    data = ort.to_dict()
    return _with(tvm, layout=data["layout"], rewrites=data["rewrites"])


RULES = ("ort-cpu", "tvm-llvm", "ort-cpu, cse keeps the last",
         "tvm-llvm with ort-cpu's layout and cse")


# ---- the zoo ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def zoo_graphs(family: str) -> tuple:
    extra = EXTRA_CSE_VARIANTS if family == "nasbench201" else ()
    return tuple(load_graph(zoo.generate(family, 0, i)) for i in (*range(VARIANTS), *extra))


@pytest.mark.parametrize("rules_name", RULES)
@pytest.mark.parametrize("family", zoo.FAMILIES)
def test_zoo_kernels_match_the_python_partition(family, rules_name):
    for graph in zoo_graphs(family):
        assert_same_kernels(graph, rules_named(rules_name))


def test_the_zoo_exercises_the_layout_model_views_and_cse():
    ort = load("ort-cpu")
    kernels = [k for f in zoo.FAMILIES for g in zoo_graphs(f) for k in partition(g, ort)]
    assert sum(k.inserted for k in kernels) > 100
    assert {k.attrs.get("direction") for k in kernels if k.inserted} == {"to_blocked",
                                                                         "from_blocked"}
    assert sum("duplicate_of" in k.attrs for k in kernels) > 20
    assert sum(k.attrs.get("layout") == "nchwc" for k in kernels) > 100
    tvm = load("tvm-llvm")
    assert any(k.attrs.get("view") and "duplicate_of" not in k.attrs
               for g in zoo_graphs("resnet") for k in partition(g, tvm))


# ---- the hand-built graphs of test_partition.py ----------------------------------------------

GOLDEN_TESTS = [f for name, f in sorted(vars(golden).items())
                if name.startswith("test_") and inspect.isfunction(f)
                and not inspect.signature(f).parameters]


@pytest.mark.parametrize("test", GOLDEN_TESTS, ids=lambda f: f.__name__)
def test_hand_built_graphs_match_the_python_partition(test, monkeypatch):
    """Rerun a golden test with every partition it asks for computed both ways and compared."""
    graphs = []

    def checked(graph, rules):
        graphs.append(graph)
        return assert_same_kernels(graph, rules)

    def checked_with_decisions(graph, rules):
        graphs.append(graph)
        assert_same_kernels(graph, rules)
        return partition_with_decisions(graph, rules)

    monkeypatch.setattr(golden, "partition", checked)
    monkeypatch.setattr(golden, "partition_with_decisions", checked_with_decisions)
    test()
    if "partition" in inspect.getsource(test):
        assert graphs, "the test partitions no graph"


# ---- random DAGs ------------------------------------------------------------------------------

def _cse(rules, keep):
    return _with(rules, rewrites=[{"name": "cse", "keep": keep, "origin": {"method": "observed"}}])


@pytest.mark.parametrize("seed", range(300))
def test_random_dags_match_the_python_partition(seed):
    rng = np.random.default_rng(seed)
    graph, rules = random_graph(rng), random_rules(rng)
    if seed % 3:
        rules = _cse(rules, "first" if seed % 3 == 1 else "last")
    assert_same_kernels(graph, rules)


LAYOUT_OPS = ("conv", "dwconv", "gconv", "bn", "relu", "sigmoid", "hardswish", "add", "mul",
              "concat", "maxpool", "avgpool", "globalavgpool", "reshape", "split", "repeat")


def random_layout_graph(rng):
    """Channels drawn from plain and blocked counts, weights on some binary ops, concats on
    several axes, nodes repeated on one tensor (for CSE), inner tensors returned."""
    pick = lambda items: items[int(rng.integers(len(items)))]  # noqa: E731
    g = G((1, pick((3, 8, 16, 18, 32)), 8, 8))
    tensors = ["x"]
    for i in range(int(rng.integers(2, 26))):
        op, name = pick(LAYOUT_OPS), f"n{i}"
        src = tensors[-1] if rng.random() < 0.5 else pick(tensors)  # chains, and branches
        shape = g.shapes[src]
        if (len(shape) != 4 and op not in ("relu", "sigmoid", "add", "mul", "repeat")) or (
                op == "repeat" and not g.nodes):
            op = "relu"
        if op == "repeat":  # the same op again on the same tensor: a common subexpression
            node = pick(g.nodes)
            g.nodes.append(type(node)(name, node.op, node.source_op, node.inputs, (name,),
                                      node.input_shapes, node.output_shapes, attrs=node.attrs))
            g.shapes[name] = node.output_shapes[0]
            tensors.append(name)
            continue
        if op in ("conv", "gconv"):
            out = g.add(name, op, src, shape=(1, pick((4, 8, 16, 18, 32, 48)), 8, 8),
                        group=pick((1, 2, 4, 3)))
        elif op in ("add", "mul"):
            ci = {1: (shape[1] if len(shape) > 1 else 1,)} if rng.random() < 0.3 else {}
            other = () if ci else (pick(tensors),)
            out = g.add(name, op, src, *other, shape=shape, const_inputs=ci)
        elif op == "concat":
            a, b = src, pick(tensors)
            axis = pick((1, -3, 2))
            width = shape[1] + g.shapes[b][1] if len(g.shapes[b]) == 4 else shape[1]
            out = g.add(name, op, a, b, shape=(1, width, 8, 8), axis=axis)
        elif op == "globalavgpool":
            out = g.add(name, op, src, shape=(1, shape[1], 1, 1))
        elif op == "reshape":
            out = g.add(name, op, src, shape=(1, int(np.prod(shape[1:]))))
        elif op == "split":
            out = g.add(name, op, src, shape=(1, max(shape[1] // 2, 1), 8, 8), n_out=2, axis=1)[0]
        else:
            out = g.add(name, op, src)
        tensors.append(out)
    used = {t for n in g.nodes for t in n.inputs}
    outs = [t for t in tensors[1:] if t not in used] or [tensors[-1]]
    outs += [t for t in tensors[1:] if t in used and rng.random() < 0.1]
    return g.graph(*outs)


GROUPINGS = ([[0, 1, 2]], [[0], [1, 2]], [[0, 1], [2]], [[0, 2], [1]], [[0], [1], [2]])


def random_layout_rules(rng, graph):
    """Rules for the patterns ``graph`` holds (pairs, chains, forks, diamonds, joins), each
    drawn with a random case and conditions, a random layout model and CSE."""
    pick = lambda items: items[int(rng.integers(len(items)))]  # noqa: E731
    op = {n.name: n.op for n in graph.nodes}
    preds = {n.name: graph.predecessors(n.name) for n in graph.nodes}
    succs = {n.name: graph.successors(n.name) for n in graph.nodes}
    patterns = {
        "pair": {(op[u], op[v]) for v in op for u in preds[v]},
        "chain": {(op[a], op[u], op[v]) for v in op for u in preds[v] for a in preds[u] + [u]},
        "multi_output": {(op[u], op[b], op[c]) for u in op for b in succs[u] for c in succs[u]
                         if b != c},
        "multi_input": {(op[a], op[b], op[v]) for v in op for a in preds[v] for b in preds[v]
                        if a != b},
    }
    rs = []
    for kind, found in patterns.items():
        for ops in sorted(found):
            if rng.random() < 0.3:
                continue
            if kind == "pair":
                rs.append(rule(kind, ops, FUSED if rng.random() < 0.75 else APART,
                               requires=pick(((),) * 4 + (("blocked",), ("plain",),
                                                          ("compatible",)))))
                continue
            for topology in (("fork", "diamond") if kind == "multi_output" else (None,)):
                rs.append(rule(kind, ops, pick(GROUPINGS), topology=topology,
                               name="_".join((kind, *ops) + ((topology,) if topology else ()))))
    for a in sorted(set(op.values())):
        if rng.random() < 0.15:
            rs.append({"name": f"{a}_view", "kind": "view", "ops": [a], "groups": [[0]],
                       "origin": {"method": "observed"}})
    conds = {"conv": {"plain_below": 16, "multiple": 4}, "dwconv": {"multiple": 4},
             "gconv": {"group_multiple": pick((2, 4, 8))}, "maxpool": {"multiple": 16},
             "avgpool": {"multiple": 8}}
    follows = {"add": pick(({}, {"same_shape": True})),
               "mul": {"same_shape": True, "const_operand": bool(rng.random() < 0.5)},
               "bn": {}, "relu": {}, "sigmoid": {}, "hardswish": {}, "concat": {"multiple": 16},
               "globalavgpool": {"multiple": 16}}
    layout = {"name": "nchwc", "block": 16, "absorbs": {}, "origin": {"method": "observed"},
              "starts": {k: v for k, v in conds.items() if rng.random() < 0.8},
              "follows": {k: v for k, v in follows.items() if rng.random() < 0.8}}
    rules = make_rules(*rs, layout=layout if rng.random() < 0.8 else None)
    return _cse(rules, pick(("first", "last"))) if rng.random() < 0.6 else rules


@pytest.mark.parametrize("seed", range(400))
def test_random_layout_dags_match_the_python_partition(seed):
    rng = np.random.default_rng(1000 + seed)
    graph = random_layout_graph(rng)
    assert_same_kernels(graph, random_layout_rules(rng, graph))


# ---- the extension ----------------------------------------------------------------------------

def test_rules_are_compiled_once_per_rules_object():
    ort = load("ort-cpu")
    assert native.compiled(ort) is native.compiled(ort)
    assert native.compiled(load("tvm-llvm")) is not native.compiled(ort)


def test_a_stale_extension_raises_instead_of_falling_back(monkeypatch):
    stale = types.ModuleType("nnmeter_tvm._features")
    monkeypatch.setattr(native, "_ext", None)
    monkeypatch.setattr(nnmeter_tvm, "_features", stale, raising=False)
    monkeypatch.setitem(sys.modules, "nnmeter_tvm._features", stale)
    g = G()
    g.add("r", "relu", "x")
    with pytest.raises(ImportError, match="no kernel partition"):
        partition(g.graph(), make_rules())


# ---- predictions ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["ort-cpu", "tvm-llvm"])
def test_predictions_are_bit_identical_with_the_python_partition(backend):
    """The shipped predictors give exactly the same totals and kernel times on the zoo whether
    the kernels come from the C++ partition (predict_many, predict_graph) or the Python one."""
    from nnmeter_tvm.predictors import load_predictor

    pred = load_predictor(backend)
    graphs = [g for f in zoo.FAMILIES for g in zoo_graphs(f)]
    spec = [pred.predict_kernels(g, partition_with_decisions(g, pred.rules)[0]) for g in graphs]
    for reports in (pred.predict_many(graphs), [pred.predict_graph(g) for g in graphs]):
        for fast, ref in zip(reports, spec, strict=True):
            assert fast.total_ms == ref.total_ms
            assert [(k.name, k.nodes, k.ms, k.cost_model) for k in fast.kernels] == \
                [(k.name, k.nodes, k.ms, k.cost_model) for k in ref.kernels]
            assert fast == ref
