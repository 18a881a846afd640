"""``nnmeter-tvm kernels`` (and its comparison with the backend's kernels) and ``detect-rules``."""
import json

import numpy as np
import pytest
from onnx import helper

from nnmeter_tvm.cli import main

from helpers import make_model, weights


def _conv_bn_relu(tmp_path):
    c = 32
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], name="bn"),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    inits = {"w": weights(c, c, 3, 3), "s": np.ones(c), "b": np.zeros(c), "m": np.zeros(c),
             "v": np.ones(c)}
    path = tmp_path / "m.onnx"
    path.write_bytes(make_model(nodes, [("x", (1, c, 16, 16))], [("y", (1, c, 8, 8))],
                                inits).SerializeToString())
    return str(path)


def test_kernels_json(tmp_path, capsys):
    model = _conv_bn_relu(tmp_path)
    assert main(["kernels", model, "--rules", "ort-cpu", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    fused = [k for k in out["kernels"] if not k["inserted"]]
    assert [k["type"] for k in fused] == ["conv-bn-relu", "maxpool"]
    assert fused[0]["nodes"] == ["conv", "bn", "relu"] and fused[0]["anchor"] == "conv"


def test_kernels_compare_truth_on_onnxruntime(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    model = _conv_bn_relu(tmp_path)
    assert main(["kernels", model, "--rules", "ort-cpu", "--compare-truth",
                 "--backend", "ort-cpu"]) == 0
    out = capsys.readouterr().out
    assert "reproduced exactly" in out and "100.0 %" in out, out


def test_kernels_errors_are_one_line(tmp_path, capsys):
    model = _conv_bn_relu(tmp_path)
    assert main(["kernels", model, "--rules", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert "no such rules file" in err and len(err.strip().splitlines()) == 1
    assert main(["kernels", model, "--rules", "ort-cpu", "--compare-truth"]) == 2
    assert "--backend" in capsys.readouterr().err


def test_detect_rules_bad_input_is_one_line(tmp_path, capsys):
    out = str(tmp_path / "r.json")
    assert main(["detect-rules", "--backend", "ort-cpu", "-o", out, "--repeats", "0"]) == 2
    err = capsys.readouterr().err
    assert "--repeats" in err and len(err.strip().splitlines()) == 1


def test_detect_rules_shapes_are_parsed_and_bad_ones_named(tmp_path, capsys):
    from nnmeter_tvm.builder.testcases import CaseShape
    from nnmeter_tvm.cli.detect_rules import parse_shapes

    assert parse_shapes("16x56, 24x40") == (CaseShape(16, 56), CaseShape(24, 40))
    out = str(tmp_path / "r.json")
    assert main(["detect-rules", "--backend", "ort-cpu", "-o", out, "--shapes", "16x"]) == 2
    err = capsys.readouterr().err
    assert "--shapes" in err and "'16x'" in err and len(err.strip().splitlines()) == 1
    assert main(["detect-rules", "--backend", "tvm-llvm", "-o", out,
                 "--launch-shape", "4x2,8x8"]) == 2
    err = capsys.readouterr().err
    assert "--launch-shape" in err and len(err.strip().splitlines()) == 1


def test_detect_rules_without_the_kernel_list_says_what_it_lacks(tmp_path, capsys):
    """Timing alone cannot see a layout pass: a --no-observe run says so and names the check
    (a real run, stopped by its budget at once: it writes what it has and asks to resume)."""
    out = str(tmp_path / "r.json")
    code = main(["detect-rules", "--backend", "ort-cpu", "-o", out, "--families", "none",
                 "--models", _conv_bn_relu(tmp_path), "--no-observe", "--budget", "0.001",
                 "--store", str(tmp_path / "s.sqlite"), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 3 and "run the same command again to resume" in text
    assert "layout: none" in text
    note = [line for line in text.splitlines() if line.startswith("note: --no-observe")]
    assert len(note) == 1 and f"--rules {out} --compare-truth --backend ort-cpu" in note[0]
    assert json.loads((tmp_path / "r.json").read_text())["layout"] is None


def test_kernels_lists_the_edges_no_rule_covers(tmp_path, capsys):
    """A pair no rule was detected for is kept apart by default, and said so: what
    ``detect-rules --add-to`` would time."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="proj"),
             helper.make_node("Tanh", ["m"], ["y"], name="tanh")]
    path = tmp_path / "t.onnx"
    path.write_bytes(make_model(nodes, [("x", (1, 8, 16))], [("y", (1, 8, 16))],
                                {"w": weights(16, 16)}).SerializeToString())
    assert main(["kernels", str(path), "--rules", "ort-cpu", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["untested"] == ["gemm_tanh"]
    assert main(["kernels", str(path), "--rules", "ort-cpu"]) == 0
    assert "edges no rule covers (kept apart): gemm_tanh" in capsys.readouterr().out
