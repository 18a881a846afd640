"""The sampler: draws from the prior, stays inside its bounds, never repeats a spec; the kernel
models it measures contain exactly the spec they were written for."""
import json
from collections import Counter

import numpy as np
import pytest

from nnmeter_tvm.builder.kernel_models import (build_model, pack_specs, rescale, spec_bytes,
                                               spec_flops, spec_from_kernel, spec_key)
from nnmeter_tvm.builder import sampler as sampler_module
from nnmeter_tvm.builder.sampler import Sampler, in_bounds
from nnmeter_tvm.kernels import partition
from nnmeter_tvm.onnx_import import load_graph
from nnmeter_tvm.rules import load as load_rules

from _predictor_helpers import chain_kernels

CONV = {"kind": "conv", "cin": 32, "cout": 64, "h": 28, "w": 28, "k": 3, "s": 2, "groups": 1,
        "pad": 1, "bias": False, "epi": ["bn", "relu"]}
DW = {"kind": "conv", "cin": 48, "cout": 48, "h": 14, "w": 14, "k": 5, "s": 1, "groups": 48,
      "pad": 2, "bias": False, "epi": ["bn", "relu6"]}
GCONV = {"kind": "conv", "cin": 64, "cout": 128, "h": 14, "w": 14, "k": 3, "s": 1, "groups": 8,
         "pad": 1, "bias": False, "epi": ["bn", "add", "relu"]}
OTHERS = [
    {"kind": "gemm", "cin": 128, "cout": 10, "epi": []},
    {"kind": "pool", "op": "maxpool", "c": 16, "h": 32, "w": 32, "k": 3, "s": 2, "pad": 1, "ceil": 0},
    {"kind": "gpool", "c": 40, "h": 7, "w": 7},
    {"kind": "unary", "c": 24, "h": 16, "w": 16, "epi": ["hardswish"]},
    {"kind": "binary", "op": "mul", "c": 24, "h": 16, "w": 16, "bc": True, "epi": []},
    {"kind": "concat", "cs": [16, 24, 8], "h": 8, "w": 8},
    {"kind": "split", "sizes": [12, 12], "h": 8, "w": 8},
    {"kind": "gemm", "cin": 64, "cout": 96, "m": 49, "epi": []},  # a projection over tokens
    {"kind": "matmul", "b": 4, "m": 49, "k": 16, "n": 49},
    {"kind": "softmax", "op": "softmax", "rows": 196, "len": 49},
    {"kind": "softmax", "op": "layernorm", "rows": 49, "len": 64},
    {"kind": "pad", "c": 24, "h": 15, "w": 15, "pads": [1, 2, 1, 2]},
]
ALL = [CONV, DW, GCONV] + OTHERS


def test_near_stays_in_bounds_and_keeps_hw_kernel_stride():
    s = Sampler([CONV, DW, GCONV], seed=1)
    for source in (CONV, DW, GCONV):
        out = s.near(source, 20)
        assert out, source
        for spec in out:
            assert in_bounds(source, spec)
            assert (spec["h"], spec["w"], spec["k"], spec["s"], spec["pad"], spec["epi"]) == \
                (source["h"], source["w"], source["k"], source["s"], source["pad"], source["epi"])
            assert 0.5 * source["cin"] - source["groups"] <= spec["cin"] <= 1.2 * source["cin"] + source["groups"]
            if source is DW:
                assert spec["groups"] == spec["cin"] == spec["cout"]  # depthwise stays depthwise
            if source is GCONV:
                assert spec["groups"] == 8 and spec["cin"] % 8 == 0 and spec["cout"] % 8 == 0


def test_in_bounds_rejects_changed_shape():
    assert not in_bounds(CONV, dict(CONV, h=56))
    assert not in_bounds(CONV, dict(CONV, cin=100))
    assert not in_bounds(CONV, dict(CONV, k=5))


def test_no_duplicates_across_draws():
    s = Sampler(Counter({spec_key(CONV): 5, spec_key(DW): 2, spec_key(OTHERS[0]): 1}), seed=0)
    drawn = s.initial(30)
    drawn += s.near(CONV, 40) + s.near(CONV, 40) + s.near(DW, 40)
    keys = [spec_key(d) for d in drawn]
    assert len(keys) == len(set(keys))
    assert spec_key(CONV) in keys  # the prior's own specs come first


def test_marked_specs_are_not_drawn_again():
    s = Sampler([CONV], seed=0)
    s.mark([CONV])
    assert spec_key(CONV) not in {spec_key(d) for d in s.initial(5)}


def test_seeded():
    a = Sampler([CONV, DW], seed=3).initial(10)
    b = Sampler([CONV, DW], seed=3).initial(10)
    assert a == b


def test_grid_is_seeded_distinct_and_inside_its_ranges():
    a = Sampler([], seed=5).grid(200)
    assert a == Sampler([], seed=5).grid(200)
    assert len({spec_key(s) for s in a}) == len(a) == 200
    m = sampler_module
    assert {s["kind"] for s in a} == {"conv", "gemm", "pool", "gpool", "unary", "binary",
                                      "concat", "split"}
    assert all(s.get("m", 1) == 1 for s in a if s["kind"] == "gemm")  # fc layers only
    assert {"depthwise", "grouped", "dense"} == {
        "depthwise" if s["groups"] == s["cin"] == s["cout"] else
        "grouped" if s["groups"] > 1 else "dense" for s in a if s["kind"] == "conv"}
    for s in a:
        assert spec_flops(s) <= m.GRID_MAX_FLOPS
        if "h" in s:
            assert m.GRID_HW[0] <= s["h"] == s["w"] <= m.GRID_HW[1] or s["kind"] == "pool"
        if s["kind"] == "gemm":
            assert all(m.GRID_GEMM[0] <= c <= m.GRID_GEMM[1] for c in (s["cin"], s["cout"]))
        elif s["kind"] == "conv":
            assert m.GRID_CHANNELS[0] <= min(s["cin"], s["cout"])
            assert max(s["cin"], s["cout"]) <= m.GRID_CHANNELS[1]
            assert s["cin"] % s["groups"] == s["cout"] % s["groups"] == 0


def test_wide_draws_its_kinds_in_their_shares_inside_their_ranges():
    m = sampler_module
    counts = m.wide_counts(150)
    assert counts == {"gemm": 30, "projection": 22, "matmul": 22, "softmax": 30, "skipnorm": 15,
                      "residual": 15, "pad": 15}
    a = Sampler([], seed=5).wide(counts)
    assert a == Sampler([], seed=5).wide(counts)
    assert len({spec_key(s) for s in a}) == len(a) == sum(counts.values())
    assert Counter(m.wide_kind(s) for s in a) == counts
    assert {s["op"] for s in a if s["kind"] == "softmax"} == {"softmax", "layernorm"}
    for s in a:
        assert spec_flops(s) <= m.GRID_MAX_FLOPS
        if s["kind"] == "gemm":  # over rows, not fc layers; a projection has a bias
            assert m.GRID_ROWS[0] <= s["m"] <= m.GRID_ROWS[1] and s["epi"] == []
            assert s["cout"] % max(1, s.get("heads", 0)) == 0
        elif s["kind"] == "matmul":
            assert all(m.GRID_MATMUL[0] <= s[f] <= m.GRID_MATMUL[1] for f in "mkn")
        elif s["kind"] == "binary":  # a residual: (1, rows, len) read as c, h and w = 1
            assert (s["op"], s["w"], s["bc"], s["epi"]) == ("add", 1, False, [])
            assert m.GRID_SOFTMAX_ROWS[0] <= s["c"] <= m.GRID_SOFTMAX_ROWS[1]
            assert m.GRID_SOFTMAX_LEN[0] <= s["h"] <= m.GRID_SOFTMAX_LEN[1]
        elif s["kind"] == "pad":
            t, l, b, r = s["pads"]
            assert (t, l) == (b, r) and all(m.GRID_PAD[0] <= p <= m.GRID_PAD[1] for p in (t, l))
        else:
            assert m.GRID_SOFTMAX_ROWS[0] <= s["rows"] <= m.GRID_SOFTMAX_ROWS[1]
            assert m.GRID_SOFTMAX_LEN[0] <= s["len"] <= m.GRID_SOFTMAX_LEN[1]
    picked = a[::3]  # every kind writes a loadable model
    graph = load_graph(build_model(picked, seed=0))
    assert all(any(n.name.startswith(f"k{i}.") for n in graph) for i in range(len(picked)))
    # projections and skipnorms read back as themselves from the kernels the shipped rules
    # form of them
    picked = [s for s in a if m.wide_kind(s) in ("projection", "skipnorm")]
    graph = load_graph(build_model(picked, seed=0))
    kernels = partition(graph, load_rules("ort-cpu"))
    assert {k.type for k in kernels} == {"gemm-add", "gemm-add-reshape", "add-layernorm"}
    assert [spec_from_kernel(k, graph) for k in kernels] == picked


def test_an_unknown_grid_is_refused_by_name():
    from nnmeter_tvm.builder.build import BuildConfig
    from nnmeter_tvm.errors import NNMeterError

    with pytest.raises(NNMeterError, match="grid 'tokens'.*cnn, wide"):
        BuildConfig.for_backend("ort-cpu", grid="tokens")


def test_grid_specs_write_a_loadable_model_with_each_in_its_scope():
    specs = Sampler([], seed=2).grid(60)
    graph = load_graph(build_model(specs, seed=0))
    for i, spec in enumerate(specs):
        assert any(n.name.startswith(f"k{i}.") for n in graph), spec


def test_grid_skips_marked_specs():
    first = Sampler([], seed=4).grid(30)
    s = Sampler([], seed=4)
    s.mark(first)
    assert not {spec_key(x) for x in s.grid(30)} & {spec_key(x) for x in first}


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s["kind"] + "-" + "-".join(s.get("epi", [])))
def test_kernel_model_round_trip(spec):
    """A spec written as a model reads back as the same spec from its kernel."""
    graph = load_graph(build_model([spec], seed=0))
    kernels = [k for k in chain_kernels(graph) if k.anchor.startswith("k0.")]
    specs = [spec_from_kernel(k, graph) for k in kernels]
    if spec["kind"] in ("conv",) and "add" in spec["epi"]:
        # the stand-in partition stops at the add (binary); the real partition fuses it
        assert specs[0]["kind"] == "conv"
        return
    assert spec in specs


def test_a_conv_add_reads_an_operand_a_small_conv_writes():
    """The add fused into a packed conv reads the output of a 1x1 conv over a few channels
    (a graph input would keep onnxruntime from fusing it in the blocked layout)."""
    from nnmeter_tvm.builder.kernel_models import OPERAND_CHANNELS

    graph = load_graph(build_model([GCONV], seed=0))
    add = next(n for n in graph if n.op == "add")
    producers = [graph.node(graph.producer(t)) for t in add.inputs]
    assert [p.name for p in producers] == ["k0.bn0", "k0.operand1"]
    operand = producers[1]
    assert operand.op == "conv" and operand.input_shape == (1, OPERAND_CHANNELS, 14, 14)
    assert operand.output_shape == (1, GCONV["cout"], 14, 14)
    # other kinds keep a graph input as the add's operand
    mul_add = {"kind": "binary", "op": "mul", "c": 8, "h": 4, "w": 4, "bc": False,
               "epi": ["add"]}
    graph = load_graph(build_model([mul_add], seed=0))
    assert not [n for n in graph if n.op == "conv"]


@pytest.mark.parametrize("channels", [16, 53], ids=["blocked", "plain"])
def test_packed_conv_add_runs_fused_on_onnxruntime_as_the_partition_says(channels):
    """Real onnxruntime: a packed conv-bn-add-relu spec runs as one kernel in either layout
    (16 channels: NCHWc; 53: plain), and the shipped rules form the same kernels."""
    from nnmeter_tvm.backends import ProtocolConfig, get_backend

    spec = {"kind": "conv", "cin": channels, "cout": channels, "h": 16, "w": 16, "k": 1,
            "s": 1, "groups": 1, "pad": 0, "bias": False, "epi": ["bn", "add", "relu"]}
    model = build_model([spec], seed=0)
    truth = get_backend("ort-cpu", config=ProtocolConfig(min_runs=1)).truth(model, timed=False)
    real = {frozenset(k.nodes) for k in truth.kernels if k.nodes}
    assert frozenset({"k0.conv", "k0.bn0", "k0.add1", "k0.relu2"}) in real
    graph = load_graph(model)
    ours = {frozenset(k.nodes) for k in partition(graph, load_rules("ort-cpu")) if k.nodes}
    assert real <= ours


def test_packed_model_holds_each_spec_in_its_scope():
    graph = load_graph(build_model(ALL, seed=0))
    for i in range(len(ALL)):
        assert any(n.name.startswith(f"k{i}.") for n in graph)


def test_rescale_is_seeded():
    assert rescale(CONV, np.random.default_rng(0)) == rescale(CONV, np.random.default_rng(0))
    json.dumps(rescale(CONV, np.random.default_rng(0)))


def test_packs_group_kernels_of_a_size_and_respect_the_limits():
    """A small add is never packed after a big conv (it would time cold), every spec is packed
    once, and each pack holds at most ``most`` specs and ``max_flops`` FLOPs."""
    big = dict(CONV, cin=256, cout=256, h=56, w=56, s=1)
    adds = [{"kind": "binary", "op": "add", "c": c, "h": 8, "w": 8, "bc": False, "epi": []}
            for c in (8, 16, 24)]
    specs = [big, adds[0], big, adds[1], GCONV, adds[2]] + OTHERS
    packs = pack_specs(specs, most=4, max_flops=2e9)
    assert sorted(map(spec_key, (s for p in packs for s in p))) == sorted(map(spec_key, specs))
    for pack in packs:
        assert len(pack) <= 4
        assert len(pack) == 1 or sum(map(spec_flops, pack)) <= 2e9
    order = [s for p in packs for s in p]
    assert [spec_bytes(s) for s in order] == sorted(spec_bytes(s) for s in order)
    assert all(spec_key(a) not in map(spec_key, packs[-1]) for a in adds)
