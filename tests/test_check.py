"""``nnmeter-tvm check``: exit codes 0 / 1 / 2, the printed failure, the JUnit report."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import onnx
import pytest

from nnmeter_tvm.cli import main
from nnmeter_tvm.predictors import load_predictor
from test_passes_support import predictor_arg, zoo_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    path = root / "resnet.onnx"
    onnx.save(zoo_model("resnet"), str(path))
    pred = predictor_arg(str(root))
    total = load_predictor(pred).predict(str(path)).total_ms
    return path, pred, total


def test_within_budget_exits_0(setup, capsys, tmp_path):
    path, pred, total = setup
    junit = tmp_path / "check.xml"
    assert main(["check", str(path), "--budget-ms", str(total * 2), "--predictor", pred,
                 "--junit", str(junit)]) == 0
    assert "within the budget" in capsys.readouterr().out
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "1" and suite.get("failures") == "0"
    assert suite.find("testcase/failure") is None


def test_over_budget_exits_1_with_total_budget_and_top_kernels(setup, capsys, tmp_path):
    path, pred, total = setup
    budget = total / 4
    junit = tmp_path / "check.xml"
    assert main(["check", str(path), "--budget-ms", str(budget), "--predictor", pred,
                 "--junit", str(junit)]) == 1
    out = capsys.readouterr().out
    assert f"{total:.3f} ms" in out and f"{budget:.3f} ms" in out
    heaviest = max(load_predictor(pred).predict(str(path)).kernels, key=lambda k: k.ms)
    assert "heaviest kernels" in out and heaviest.name in out
    failure = ET.parse(junit).getroot().find("testcase/failure")
    assert failure is not None and "exceeds the budget" in failure.get("message")


@pytest.mark.parametrize("argv", [
    ["check", "{missing}", "--budget-ms", "5"],  # no such file
    ["check", "{garbage}", "--budget-ms", "5"],  # not ONNX
    ["check", "{model}", "--budget-ms", "5", "--predictor", "no-such-predictor"],
])
def test_bad_input_exits_2(setup, tmp_path, argv, capsys):
    path, _, _ = setup
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    argv = [a.format(missing=tmp_path / "nope.onnx", garbage=garbage, model=path) for a in argv]
    assert main(argv) == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("budget", ["-1", "0", "fast"])
def test_bad_budget_exits_2(setup, budget):
    path, _, _ = setup
    with pytest.raises(SystemExit) as info:
        main(["check", str(path), "--budget-ms", budget])
    assert info.value.code == 2
