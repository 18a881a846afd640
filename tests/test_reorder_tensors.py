"""The tensor an inserted reorder converts: named by the backend, and used for the sample's
shape instead of a guess from the kernel list's order."""
from helpers import make_model, weights
from nnmeter_tvm.backends import get_backend
from nnmeter_tvm.builder.build import truth_kernels
from nnmeter_tvm.onnx_import import load_graph
from onnx import helper


def two_branch_model():
    """x (16ch, 8x8) -> conv a -> relu -> y1;  x -> global avg pool -> y2 (16x1x1)."""
    nodes = [helper.make_node("Conv", ["x", "a.w"], ["a"], name="a", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["y1"], name="y1"),
             helper.make_node("GlobalAveragePool", ["x"], ["y2"], name="y2")]
    return make_model(nodes, [("x", (1, 16, 8, 8))],
                      [("y1", (1, 16, 8, 8)), ("y2", (1, 16, 1, 1))],
                      {"a.w": weights(16, 16, 3, 3, seed=1)})


def test_onnxruntime_names_the_tensor_of_each_reorder_it_inserts():
    truth = get_backend("ort-cpu").truth(two_branch_model(), timed=False)
    inserted = [(k.op_type, k.tensor) for k in truth.kernels if k.inserted]
    assert ("ReorderInput", "x") in inserted and ("ReorderOutput", "y1") in inserted
    assert all(k.tensor == "" for k in truth.kernels if not k.inserted)


def test_a_named_reorder_takes_its_own_tensors_shape_not_its_neighbours():
    """The reorder out of conv a listed after the pool (onnxruntime's list order changes from
    one session to the next): the guess takes the pool's 16x1x1 output, the name y1's 16x8x8."""
    graph = load_graph(two_branch_model())
    listed = [{"nodes": [], "inserted": True, "op": "ReorderInput", "ms": 0.002},
              {"nodes": ["a", "y1"], "inserted": False, "op": "Conv", "ms": 0.02},
              {"nodes": ["y2"], "inserted": False, "op": "GlobalAveragePool", "ms": 0.003},
              {"nodes": [], "inserted": True, "op": "ReorderOutput", "ms": 0.004}]

    def reorders(rows):
        return [(k.attrs["tensor"], k.attrs["shape"], k.attrs["direction"])
                for k, _ in truth_kernels(graph, rows, 16) if k.inserted]
    assert reorders(listed)[1] == ("y2", (1, 16, 1, 1), "from_blocked")       # the guess
    listed[3]["tensor"] = "y1"
    assert reorders(listed)[1] == ("y1", (1, 16, 8, 8), "from_blocked")
    listed[0]["tensor"] = "x"
    assert reorders(listed)[0] == ("x", (1, 16, 8, 8), "to_blocked")


def test_predict_measure_shows_the_measured_time_of_each_reorder(tmp_path, capsys, monkeypatch):
    """`predict --measure` matches kernels by member nodes; a reorder has none and is matched
    by the tensor it converts."""
    import json

    import nnmeter_tvm.backends as backends
    from nnmeter_tvm.backends import ProtocolConfig
    from nnmeter_tvm.cli import main

    fast = ProtocolConfig(warmup_runs=2, warmup_s=0.0, min_runs=5, min_time_s=0.01,
                          max_attempts=1, lock_path=str(tmp_path / "cli.lock"))
    ort = get_backend("ort-cpu", config=fast)
    monkeypatch.setattr(backends, "get_backend", lambda name: ort)
    path = tmp_path / "m.onnx"
    path.write_bytes(two_branch_model().SerializeToString())
    assert main(["predict", str(path), "--measure", "--json"]) == 0
    kernels = json.loads(capsys.readouterr().out)["kernels"]
    reorders = [k for k in kernels if k["type"] == "reorder"]
    assert {k["name"] for k in reorders} >= {"reorder_input:x", "reorder_output:y1"}
    assert all(k["measured_ms"] is not None and k["measured_ms"] > 0 for k in reorders)
