"""Fusion rules beyond the zoo's CNNs: test cases written from a transformer encoder's ops, the
``const_operand`` condition (MatMul + bias Add fuses, MatMul + residual Add does not), and
``detect-rules --add-to`` testing only the patterns a rules file lacks."""
import onnx
from onnx import helper

from helpers import benchmark_script, make_model, weights
from nnmeter_tvm.builder.rules_cases import consumer_inputs
from nnmeter_tvm.builder.rules_pair import pair_rule
from nnmeter_tvm.builder.rules_tester import RuleTester
from nnmeter_tvm.builder.testcases import CaseShape, Step, build_case, collect_patterns
from nnmeter_tvm.cli import main
from nnmeter_tvm.kernels import partition
from nnmeter_tvm.kernels.partition import partition_with_decisions
from nnmeter_tvm.onnx_import import graph_from_proto, load_graph
from nnmeter_tvm.rules import dump, from_dict
from nnmeter_tvm.rules import load as load_rules

from test_rules_tester import FakeBackend, _rule


def _encoder_patterns():
    return collect_patterns([graph_from_proto(benchmark_script("beyond_zoo").encoder(16, 64, 2, 1))])


def _pair_case(patterns, a, b, shape=CaseShape(8, 4)):
    ta, tb = patterns.pairs[(a, b)]
    case = build_case([Step("a", ta), Step("b", tb, consumer_inputs(tb, "a"))], shape,
                      prefix="maxpool1", suffix="slice1")
    onnx.checker.check_model(case, full_check=True)
    return case, {n.op_type: n for n in case.graph.node}, \
        {i.name: tuple(i.dims) for i in case.graph.initializer}


def test_encoder_test_cases_write_the_encoders_ops_on_token_tensors():
    pats = _encoder_patterns()
    case, ops, inits = _pair_case(pats, "gemm", "add")
    tokens = tuple(d.dim_value for d in case.graph.input[0].type.tensor_type.shape.dim)
    assert tokens == (1, 16, 8)                       # (batch, hw * hw tokens, c wide)
    assert inits[ops["MatMul"].input[1]] == (8, 8)     # a weight, as a projection reads it
    assert inits[ops["Add"].input[1]] == (8,)          # a bias over the last axis
    _, ops, inits = _pair_case(pats, "matmul", "mul")
    assert inits[ops["Mul"].input[1]] == ()            # the attention scale: a scalar
    case, ops, _ = _pair_case(pats, "add", "reshape")
    assert case.graph.node[-1].op_type == "Slice"
    assert len(_out_shape(case, ops["Reshape"])) == 4  # tokens split into heads
    case, _, _ = _pair_case(pats, "gemm", "gelu")
    assert case.opset_import[0].version == 20          # Gelu needs opset 20; others keep 17
    case, _, _ = _pair_case(pats, "layernorm", "gemm")
    assert case.opset_import[0].version == 17


def _out_shape(case, node):
    inferred = onnx.shape_inference.infer_shapes(case)
    info = {v.name: v for v in inferred.graph.value_info}
    return tuple(d.dim_value for d in info[node.output[0]].type.tensor_type.shape.dim)


# the fake backend's secret: a bias Add joins its MatMul, a residual Add does not
SECRET = from_dict({
    "schema": "nnmeter-tvm/rules", "schema_version": 1, "backend": {"name": "fake", "version": "1"},
    "machine": {}, "alpha": 0.5, "date": "2026-01-01", "rules": [
        dict(_rule("pair", ("gemm", "add"), [[0, 1]]), requires=["const_operand"])]})
COST = {"gemm": 4.0, "add": 1.0, "relu": 0.6, "slice": 0.0, "maxpool": 0.8}


class TransformerFake(FakeBackend):
    secret, cost, scale = SECRET, COST, 1e-3


def _projections():
    """x -> MatMul -> + bias -> Relu -> MatMul -> + x (residual) -> Relu, on (1, 16, 8)."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"], name="proj1"),
        helper.make_node("Add", ["m1", "b1"], ["a1"], name="bias1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", "w2"], ["m2"], name="proj2"),
        helper.make_node("Add", ["m2", "x"], ["a2"], name="residual"),
        helper.make_node("Relu", ["a2"], ["y"], name="relu2"),
    ]
    inits = {"w1": weights(8, 8), "w2": weights(8, 8, seed=1), "b1": weights(8, seed=2)}
    return load_graph(make_model(nodes, [("x", (1, 16, 8))], [("y", (1, 16, 8))], inits))


def test_a_fusion_that_holds_for_a_bias_only_gets_the_const_operand_condition():
    graph = _projections()
    tester = RuleTester(TransformerFake(), shapes=(CaseShape(8, 4), CaseShape(8, 8)))
    rules = tester.detect(collect_patterns([graph]), [graph], curated=False)
    rule = rules.pair("gemm", "add")
    assert rule.fused and rule.requires == ("const_operand",), rule.note
    assert {e.get("operand") for e in rule.evidence} == {None, "activation"}
    assert all(e["verdict"] == "separate" for e in rule.evidence if e.get("operand"))
    # the partition (C++ and the Python specification) applies it as the backend does
    ours = [k.nodes for k in partition(graph, rules)]
    assert ours == [k.nodes for k in partition(graph, SECRET)]
    assert ("proj1", "bias1") in ours and ("residual",) in ours
    kernels, decisions = partition_with_decisions(graph, rules)
    assert [k.nodes for k in kernels] == ours
    residual = next(d for d in decisions if d.consumer == "residual" and d.producer == "proj2")
    assert not residual.fused and "reads no constant" in residual.reason


def test_add_to_keeps_the_known_rules_and_tests_only_the_new_patterns():
    graph = _projections()
    patterns = collect_patterns([graph])
    known = from_dict({**SECRET.to_dict(), "rules": [
        {**_rule("pair", ("gemm", "add"), [[0]]), "groups": [[0], [1]], "note": "known"}]})
    backend = TransformerFake()
    rules = RuleTester(backend, shapes=(CaseShape(8, 4),)).detect(patterns, [graph],
                                                                 curated=False, known=known)
    assert rules.pair("gemm", "add").note == "known"       # kept, not measured again
    assert {r.ops for r in rules.rules if r.kind == "pair"} == set(patterns.pairs)
    assert rules.detection["added_to"]["rules"] == 1
    assert rules.detection["added_to"]["added"] == len(rules.rules) - 1
    alone = TransformerFake()
    RuleTester(alone, shapes=(CaseShape(8, 4),)).detect(patterns, [graph], curated=False)
    assert 0 < backend.calls < alone.calls


def test_detect_rules_add_to_and_models_bad_input_is_one_line(tmp_path, capsys):
    out = str(tmp_path / "r.json")
    assert main(["detect-rules", "--backend", "ort-cpu", "-o", out, "--families", "none"]) == 2
    assert "--families none needs --models" in capsys.readouterr().err
    assert main(["detect-rules", "--backend", "ort-cpu", "-o", out, "--families", "lenet"]) == 2
    assert "unknown family 'lenet'" in capsys.readouterr().err
    other = dump(SECRET, tmp_path / "fake.json")
    assert main(["detect-rules", "--backend", "ort-cpu", "-o", out, "--add-to", str(other),
                 "--families", "none", "--models", "x.onnx"]) == 2
    assert "rules detected on backend 'fake', not 'ort-cpu'" in capsys.readouterr().err


def test_shipped_ort_rules_fuse_an_encoders_bias_and_scale_as_onnxruntime_does():
    """The shipped rules/ort-cpu.json was extended with the encoders' patterns (detect-rules
    --add-to): MatMul + bias Add (+ Reshape) and MatMul + scale Mul are one kernel each, the
    residual Add after a projection is not."""
    graph = graph_from_proto(benchmark_script("beyond_zoo").encoder(16, 64, 2, 1))
    kernels = {k.nodes: k.type for k in partition(graph, load_rules("ort-cpu"))}
    assert kernels[("block0.q.matmul", "block0.q.bias", "block0.q.reshape")] == "gemm-add-reshape"
    assert kernels[("block0.scores", "block0.scale")] == "matmul-mul"
    assert kernels[("block0.proj",)] == "gemm" and ("block0.residual1",) in kernels
    assert len(kernels) == 19                            # as onnxruntime runs it


def test_real_onnxruntime_fuses_a_projections_bias_and_not_its_residual():
    """On onnxruntime, MatMul + bias Add over a (1, tokens, width) tensor runs as one Gemm and
    MatMul + residual Add as two kernels: the tester finds the fusion with the
    ``const_operand`` condition (by timing where it is conclusive, by the kernels where not)."""
    from nnmeter_tvm.backends import ProtocolConfig, get_backend

    config = ProtocolConfig(min_time_s=0.05, warmup_s=0.02, min_runs=10)
    tester = RuleTester(get_backend("ort-cpu", config=config), shapes=(CaseShape(32, 16),),
                        config=config)
    pats = _encoder_patterns()
    rule = pair_rule(tester.bench, "gemm", "add", *pats.pairs[("gemm", "add")])
    assert rule.fused and rule.requires == ("const_operand",), rule.note
    assert {e.get("operand") for e in rule.evidence} == {None, "activation"}
