"""The CLI's contract: subcommands, JSON output, one-line errors with exit code 2."""
import json
import subprocess
import sys

import onnx
from onnx import helper

from nnmeter_tvm.cli import main

from helpers import make_model, weights


def small_model(path):
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    onnx.save(make_model(nodes, [("x", [1, 3, 8, 8])], [("y", [1, 4, 8, 8])],
                         {"W": weights(4, 3, 3, 3)}), path)
    return path


def test_graph_table_and_json(tmp_path, capsys):
    path = small_model(tmp_path / "m.onnx")
    assert main(["graph", str(path)]) == 0
    out = capsys.readouterr().out
    assert "conv" in out and "relu" in out and "3x3" in out
    assert main(["graph", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [n["op"] for n in data["nodes"]] == ["conv", "relu"]
    assert data["nodes"][0]["attrs"]["kernel_shape"] == [3, 3]


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01garbage")
    assert main(["graph", str(junk)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "junk.onnx" in err and "Traceback" not in err


def test_module_entry_point_runs(tmp_path):
    path = small_model(tmp_path / "m.onnx")
    done = subprocess.run([sys.executable, "-m", "nnmeter_tvm", "graph", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    missing = subprocess.run([sys.executable, "-m", "nnmeter_tvm", "graph", str(tmp_path / "no.onnx")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert "Traceback" not in missing.stderr
