"""``nnmeter_tvm.passes.onnxruntime.estimate``: a live session's own kernels, priced."""
from __future__ import annotations

import pytest

ort = pytest.importorskip("onnxruntime")

from nnmeter_tvm.backends import get_backend  # noqa: E402
from nnmeter_tvm.onnx_import import load_graph  # noqa: E402
from nnmeter_tvm.passes.onnxruntime import estimate, session_kernels  # noqa: E402
from test_passes_support import predictor, zoo_model  # noqa: E402


def _session(model):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("family", ["resnet", "mobilenetv3"])
def test_live_session_kernels_are_onnxruntimes(family):
    model = zoo_model(family)
    rep = estimate(_session(model), predictor("ort-cpu"))
    truth = get_backend("ort-cpu").truth(model, timed=False)
    # (reorder names carry session-specific token numbers: compare members, not names)
    assert len(rep.kernels) == len(truth.kernels)
    for mine, theirs in zip(rep.kernels, truth.kernels):
        assert set(mine.nodes) == set(theirs.nodes)
        assert (not mine.nodes) == theirs.inserted
    assert rep.total_ms > 0 and all(k.ms > 0 for k in rep.kernels)
    graph_tensors = {t for n in load_graph(model) for t in n.inputs + n.outputs} | {"input"}
    ours = {k.anchor: (k.attrs.get("layout"), k.attrs.get("block")) for k in
            predictor("ort-cpu").partition(load_graph(model))}
    same = total = 0
    for rk in session_kernels(load_graph(model), truth, model, block=16):
        if rk.type == "reorder":  # each reorder knows a plain tensor it converts and its shape
            assert rk.attrs["tensor"] in graph_tensors and len(rk.attrs["shape"]) == 4
        elif rk.anchor in ours:  # its layout and block in onnxruntime, as our partition says
            total += 1
            same += (rk.attrs["layout"], rk.attrs.get("block")) == ours[rk.anchor]
    assert total > 0 and same >= 0.95 * total


def test_model_path_and_other_predictor_use_the_partition(tmp_path):
    import onnx

    model = zoo_model("resnet")
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    p = predictor("ort-cpu")
    assert estimate(str(path), p).total_ms == pytest.approx(p.predict(model).total_ms)
    tvm_p = predictor("tvm-llvm")
    rep = estimate(_session(model), tvm_p)
    assert rep.total_ms == pytest.approx(tvm_p.predict(model).total_ms)


def test_session_options_that_differ_are_reported():
    model = zoo_model("resnet")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    rep = estimate(session, predictor("ort-cpu"))
    assert any("graph_optimization_level" in w for w in rep.warnings)
