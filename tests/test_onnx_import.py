"""ONNX -> Graph normalization on hand-built models."""
import onnx
import pytest
from onnx import helper

from nnmeter_tvm.errors import ModelLoadError, ShapeError
from nnmeter_tvm.onnx_import import load_graph, parse_input_shapes

from helpers import make_model, weights


def conv_model(cin, cout, group, k=3):
    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], name="c", group=group, pads=[1, 1, 1, 1],
                            kernel_shape=[k, k], strides=[2, 2])
    return make_model([node], [("x", [1, cin, 16, 16])], [("y", [1, cout, 8, 8])],
                      {"W": weights(cout, cin // group, k, k), "B": weights(cout)})


def test_dense_grouped_and_depthwise_conv_are_distinct():
    dense = load_graph(conv_model(32, 64, 1)).node("c")
    grouped = load_graph(conv_model(32, 64, 8)).node("c")
    depthwise = load_graph(conv_model(32, 32, 32)).node("c")
    assert (dense.op, grouped.op, depthwise.op) == ("conv", "gconv", "dwconv")
    assert grouped.attrs["group"] == 8 and grouped.attrs["cin"] == 32 and grouped.attrs["cout"] == 64
    assert dense.attrs["kernel_shape"] == (3, 3) and dense.attrs["strides"] == (2, 2)
    assert dense.attrs["pads"] == (1, 1, 1, 1) and dense.attrs["has_bias"]
    assert dense.inputs == ("x",), "weights must be attributes, not edges"
    assert dense.attrs["const_inputs"] == {1: (64, 32, 3, 3), 2: (64,)}


def test_constants_fold_into_attributes_and_clip_becomes_relu6():
    nodes = [
        helper.make_node("Constant", [], ["lo"], value=helper.make_tensor("lo", 1, [], [0.0])),
        helper.make_node("Constant", [], ["hi"], value=helper.make_tensor("hi", 1, [], [6.0])),
        helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip"),
    ]
    g = load_graph(make_model(nodes, [("x", [1, 4, 8, 8])], [("y", [1, 4, 8, 8])]))
    assert [n.name for n in g] == ["clip"], "Constant nodes are not graph nodes"
    assert g.node("clip").op == "relu6" and g.node("clip").attrs["max"] == 6.0


def test_broadcasting_add_and_fc_matmul():
    nodes = [helper.make_node("Add", ["x", "s"], ["a"], name="add"),
             helper.make_node("Add", ["a", "a"], ["b"], name="add2"),
             helper.make_node("Flatten", ["b"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "W"], ["y"], name="fc")]
    g = load_graph(make_model(nodes, [("x", [1, 4, 2, 2])], [("y", [1, 10])],
                              {"s": weights(1, 4, 1, 1), "W": weights(16, 10)}))
    assert g.node("add").attrs["broadcast"] and not g.node("add2").attrs["broadcast"]
    assert g.node("flat").op == "reshape"
    fc = g.node("fc")
    assert (fc.op, fc.attrs["m"], fc.attrs["k"], fc.attrs["n"]) == ("gemm", 1, 16, 10)
    assert g.successors("add") == ["add2"] and g.predecessors("fc") == ["flat"]


def test_reduce_mean_over_hw_is_global_pool_and_unknown_ops_are_kept():
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], name="gap", axes=[2, 3], keepdims=1),
             helper.make_node("Celu", ["m"], ["y"], name="odd")]
    g = load_graph(make_model(nodes, [("x", [1, 8, 4, 4])], [("y", [1, 8, 1, 1])], opset=17))
    assert g.node("gap").op == "globalavgpool"
    odd = g.node("odd")
    assert odd.op == "unknown" and odd.source_op == "Celu" and odd.output_shape == (1, 8, 1, 1)


def test_symbolic_dims_are_refused_unless_given(tmp_path):
    node = helper.make_node("Relu", ["x"], ["y"], name="r")
    model = make_model([node], [("x", ["N", 3, 8, 8])], [("y", ["N", 3, 8, 8])])
    with pytest.raises(ShapeError, match=r"--input-shape x="):
        load_graph(model)
    g = load_graph(model, parse_input_shapes(["x=2,3,8,8"]))
    assert g.node("r").output_shape == (2, 3, 8, 8)
    with pytest.raises(ShapeError, match="NAME=D1"):
        parse_input_shapes(["x:1,2"])
    with pytest.raises(ShapeError, match="model's inputs are x"):
        load_graph(model, {"input": (1, 3, 8, 8)})


def test_bad_files_give_one_line_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        load_graph(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_text("this is not a model")
    with pytest.raises(ModelLoadError, match="junk.onnx"):
        load_graph(junk)
    good = conv_model(4, 4, 1).SerializeToString()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelLoadError, match="cut.onnx"):
        load_graph(cut)
    broken = conv_model(4, 4, 1)
    broken.graph.node[0].input[0] = "nowhere"
    bad = tmp_path / "bad.onnx"
    onnx.save(broken, bad)
    with pytest.raises(ModelLoadError, match="checker"):
        load_graph(bad)
