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


def test_kernels_names_an_unknown_backend_first(tmp_path, capsys):
    """``kernels --backend foo`` says that foo is no backend (not that --rules is missing)."""
    path = small_model(tmp_path / "m.onnx")
    assert main(["kernels", str(path), "--backend", "foo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("nnmeter-tvm kernels: error: unknown backend 'foo'; "
                   "valid: ort-cpu, tvm-llvm")


def test_kernels_truth_lists_the_backends_own_kernels_through_the_cli(tmp_path, capsys):
    """The README's `nnmeter-tvm kernels MODEL --truth --json` (no rules needed)."""
    path = small_model(tmp_path / "m.onnx")
    assert main(["kernels", str(path), "--truth", "--untimed", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == "ort-cpu" and out["timed"] is False
    assert any(set(k["nodes"]) == {"conv", "relu"} for k in out["kernels"])
    assert main(["kernels", str(path)]) == 2  # neither --rules nor --truth: one line
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--rules" in err and "--truth" in err


def test_module_entry_point_runs(tmp_path):
    path = small_model(tmp_path / "m.onnx")
    done = subprocess.run([sys.executable, "-m", "nnmeter_tvm", "graph", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    missing = subprocess.run([sys.executable, "-m", "nnmeter_tvm", "graph", str(tmp_path / "no.onnx")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert "Traceback" not in missing.stderr


def _measured(drift):
    from nnmeter_tvm.backends.base import Measurement

    return Measurement("ort-cpu", "fake", "k", 36.4, 36.0, 37.0, 30, 1.1, drift, 0, 1, {}, "now",
                       attempts=6)


def test_predict_measure_flags_a_time_taken_while_the_machine_drifted(tmp_path, capsys,
                                                                      monkeypatch):
    """`predict --measure` shows the measured time; when its reference drifted past the
    limit in every attempt it says so, so that the error is not read as the predictor's."""
    import nnmeter_tvm.backends as backends

    class Drifting:
        drift = 0.31

        def measure(self, model):
            return _measured(self.drift)

        def kernels(self, model):
            return []

    backend = Drifting()
    monkeypatch.setattr(backends, "get_backend", lambda name: backend)
    path = small_model(tmp_path / "m.onnx")
    assert main(["predict", str(path), "--measure"]) == 0
    out = capsys.readouterr().out
    assert "measured 36.4000 ms" in out
    assert "warning: the measured time is unreliable" in out and "drifted 31 %" in out
    backend.drift = 0.01
    assert main(["predict", str(path), "--measure", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["measured_ms"] == 36.4 and not any("unreliable" in w for w in data["warnings"])
