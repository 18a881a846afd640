"""The model zoo's contract, run over every family: valid ONNX that onnxruntime runs, seeded and
deterministic, distinct variants, unique node names, the family's real block structure."""
import subprocess
import sys

import numpy as np
import onnx
import pytest

from nnmeter_tvm import zoo
from nnmeter_tvm.errors import NNMeterError, UnknownNameError

SMALL = 32  # input size for the per-seed runs, to keep the file fast


def run_ort(model):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def check(model, family, size):
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17 and model.ir_version == 8
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, size, size]
    names = [n.name for n in model.graph.node]
    assert all(names) and len(set(names)) == len(names)
    y = run_ort(model)
    assert y.shape == (1, 10 if family == "nasbench201" else 1000)
    assert np.isfinite(y).all()


def signature(model):
    """The architecture without the weight values: ops, attributes and weight shapes."""
    dims = {t.name: tuple(t.dims) for t in model.graph.initializer}
    return tuple((n.op_type, tuple(dims.get(i) for i in n.input), str(n.attribute))
                 for n in model.graph.node)


def test_family_names_and_order():
    assert zoo.FAMILIES == ("alexnet", "vgg", "densenet", "resnet", "squeezenet", "googlenet",
                            "mobilenetv1", "mobilenetv2", "mobilenetv3", "shufflenetv2",
                            "mnasnet", "proxylessnas", "nasbench201")


@pytest.mark.parametrize("family", zoo.FAMILIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_small_variants_are_valid_and_run(family, seed):
    model = zoo.generate(family, seed, index=seed, input_size=SMALL)
    assert model.graph.name == f"{family}_s{seed}_i{seed}"
    check(model, family, SMALL)


@pytest.mark.parametrize("family", zoo.FAMILIES)
def test_default_size_is_valid_runs_and_fits(family):
    model = zoo.generate(family, 3)
    check(model, family, zoo.default_input_size(family))
    assert model.ByteSize() < 40e6


@pytest.mark.parametrize("family", zoo.FAMILIES)
def test_variants_differ_and_generation_is_deterministic(family):
    models = zoo.variants(family, 3, seed=0, input_size=SMALL)
    other_seed = zoo.generate(family, 1, 0, input_size=SMALL)
    sigs = {signature(m) for m in models + [other_seed]}
    assert len(sigs) == 4
    again = zoo.generate(family, 0, 1, input_size=SMALL)
    assert again.SerializeToString() == models[1].SerializeToString()


@pytest.mark.parametrize("family", ["resnet", "mobilenetv3", "nasbench201"])
def test_same_architecture_at_smaller_input(family):
    """The budget is checked at the default size, so the variant only changes resolution."""
    a, b = zoo.generate(family, 0, 2), zoo.generate(family, 0, 2, input_size=48)
    assert [n.name for n in a.graph.node] == [n.name for n in b.graph.node]
    dims = lambda m: [tuple(t.dims) for t in m.graph.initializer]  # noqa: E731
    assert dims(a) == dims(b)


# op types every variant of the family has (its defining structure; for nasbench201 the
# skeleton's, as a cell may have no conv or pool)
STRUCTURE = {
    "alexnet": {"Conv", "Relu", "MaxPool", "Flatten", "Gemm"},
    "vgg": {"Conv", "Relu", "MaxPool", "Flatten", "Gemm"},
    "densenet": {"Conv", "BatchNormalization", "Concat", "AveragePool"},
    "resnet": {"Conv", "BatchNormalization", "Add", "MaxPool", "GlobalAveragePool", "Gemm"},
    "squeezenet": {"Conv", "Relu", "Concat", "MaxPool", "GlobalAveragePool"},
    "googlenet": {"Conv", "BatchNormalization", "Concat", "MaxPool"},
    "mobilenetv1": {"Conv", "BatchNormalization", "Relu"},
    "mobilenetv2": {"Conv", "BatchNormalization", "Clip", "Add"},
    "mobilenetv3": {"HardSwish", "HardSigmoid", "Mul", "GlobalAveragePool", "Add"},
    "shufflenetv2": {"Split", "Concat", "Reshape", "Transpose", "MaxPool"},
    "mnasnet": {"Sigmoid", "Mul", "Add", "GlobalAveragePool"},
    "proxylessnas": {"Clip", "Add", "Conv"},
    "nasbench201": {"Conv", "BatchNormalization", "Add", "AveragePool", "Gemm"},
}


@pytest.mark.parametrize("family", zoo.FAMILIES)
def test_family_structure(family):
    for index in range(2):
        model = zoo.generate(family, 0, index, input_size=SMALL)
        ops = {n.op_type for n in model.graph.node}
        missing = STRUCTURE[family] - ops
        assert not missing, f"{family} i{index} lacks {missing}"


def test_depthwise_convs_and_readable_names():
    model = zoo.generate("mobilenetv2", 0)
    inits = {t.name: t.dims for t in model.graph.initializer}
    names = {n.name for n in model.graph.node}
    assert {"stage2.block1.conv1", "stage2.block1.bn1", "stage2.block1.relu6_1",
            "stage2.block1.conv2", "stage2.block1.conv3"} <= names
    group = lambda n: {a.name: a.i for a in n.attribute}["group"]  # noqa: E731
    dw = [n for n in model.graph.node if n.op_type == "Conv" and group(n) > 1]
    assert dw and all(inits[n.input[1]][1] == 1 for n in dw)
    kernels = {inits[n.input[1]][2] for n in dw}
    assert kernels <= {1, 3, 5, 7, 9} and len(kernels) > 1


def test_channel_shuffle_pattern():
    model = zoo.generate("shufflenetv2", 0, input_size=SMALL)
    ops = [(n.name, n.op_type) for n in model.graph.node if ".shuffle." in n.name][:3]
    assert [op for _, op in ops] == ["Reshape", "Transpose", "Reshape"]
    assert ops[0][0] == "stage2.unit1.shuffle.reshape1"


def test_nasbench201_cell_draws_reach_the_output():
    from nnmeter_tvm.zoo.nasbench201 import draw_cell

    rng = np.random.default_rng(0)
    for _ in range(200):
        edges = draw_cell(rng)
        reached = {0}
        for (i, j) in sorted(edges, key=lambda e: e[1]):
            assert i in reached, edges  # no edge out of a node nothing reaches
            reached.add(j)
        assert 3 in reached and "none" not in edges.values()


def test_unknown_family_and_bad_arguments():
    with pytest.raises(UnknownNameError, match="resnet50.*valid: alexnet"):
        zoo.generate("resnet50", 0)
    with pytest.raises(KeyError):
        zoo.write("resnet50", 1, 0, "/nonexistent")
    for kwargs in ({"seed": -1}, {"seed": 0, "index": -2}, {"seed": 0, "input_size": 8},
                   {"seed": 1.5}):
        with pytest.raises(zoo.ZooArgumentError) as err:
            zoo.generate("resnet", **kwargs)
        assert isinstance(err.value, (NNMeterError, ValueError))


def test_write_and_cli(tmp_path, capsys):
    paths = zoo.write("nasbench201", 2, 7, tmp_path / "a", input_size=SMALL)
    assert [p.name for p in paths] == ["nasbench201_s7_i0.onnx", "nasbench201_s7_i1.onnx"]
    assert paths[1].read_bytes() == zoo.generate("nasbench201", 7, 1, SMALL).SerializeToString()

    import argparse
    from nnmeter_tvm.cli import zoo as zoo_cli

    parser = argparse.ArgumentParser()
    zoo_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["zoo", "--family", "squeezenet", "--count", "2", "--seed", "4",
                              "--input-size", "32", "-o", str(tmp_path / "b")])
    assert args.func(args) == 0
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "squeezenet_s4_i0.onnx", "squeezenet_s4_i1.onnx"]
    assert capsys.readouterr().out.strip() == (
        f"squeezenet: 2 models (32x32, seed 4) -> {tmp_path / 'b'}")


def test_no_runtime_imported_with_the_zoo():
    code = "import sys, nnmeter_tvm.zoo; assert 'onnxruntime' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_builder_ops_and_shapes():
    """The builder's ops not every family uses; the tracked shapes must match onnxruntime's."""
    from nnmeter_tvm.zoo import ModelBuilder

    b = ModelBuilder("ops")
    x = b.input((1, 4, 9, 9))
    with b.scope("s"):
        y = b.pad(x, (1, 0, 2, 1))  # 12 x 10
        y = b.swish(b.hardsigmoid(y))
        y = b.avgpool(y, 3, 2, ceil_mode=True)  # 6 x 5
        y = b.conv_bn_act(y, 6, 3, groups=2, act="relu6", tag="1")
        y = b.transpose(b.reshape(y, (1, 2, 3, 30)), (0, 2, 1, 3))
        y = b.softmax(b.flatten(y))
    b.output(y)
    model = b.model(np.random.default_rng(0))
    onnx.checker.check_model(model, full_check=True)
    assert [n.name for n in model.graph.node][:4] == ["s.pad1", "s.hardsigmoid1",
                                                      "s.swish1.sigmoid", "s.swish1.mul"]
    assert b.shape(y) == (1, 180)
    out = run_ort(model)
    assert out.shape == (1, 180) and np.isclose(out.sum(), 1.0, atol=1e-4)
