"""The transformer encoders of benchmarks/beyond_zoo.py (no zoo family, so no rule and no
zoo-drawn sample covers them): valid ONNX, priced end to end by the default bundle with the ops
it has no cost model for flagged and none at zero, and by ``ort-cpu-wide`` with trained ones."""
import pytest

from helpers import benchmark_script
from nnmeter_tvm.onnx_import import graph_from_proto
from nnmeter_tvm.predictors import load_predictor


@pytest.mark.parametrize("shape", [(16, 64, 2, 1), (49, 128, 4, 2)])
def test_an_encoder_is_priced_with_its_uncovered_ops_flagged(shape):
    graph = graph_from_proto(benchmark_script("beyond_zoo").encoder(*shape))
    report = load_predictor("ort-cpu").predict(graph)
    by_type = {}
    for k in report.kernels:
        by_type.setdefault(k.type, set()).add(k.fallback)
        assert k.ms > 0, k.name
    assert by_type["layernorm"] == {True} and by_type["softmax"] == {True}
    assert by_type["gemm"] == {False}  # trained, if only on fc layers (see the benchmark)
    assert len(report.kernels) == 26 * shape[3] and report.total_ms > 0


def test_the_wide_bundle_prices_an_encoders_layers_with_trained_models():
    graph = graph_from_proto(benchmark_script("beyond_zoo").encoder(49, 128, 4, 1))
    wide = load_predictor("ort-cpu-wide").predict(graph)
    default = load_predictor("ort-cpu").predict(graph)
    assert wide.predictor["name"] == "ort-cpu-wide" and not any(k.fallback for k in wide.kernels)
    # the default gemm model has seen fc layers only and prices a 49-row projection several
    # times what the wide one (trained on rows) does
    price = lambda r: sum(k.ms for k in r.kernels if k.type == "gemm")  # noqa: E731
    assert price(default) > 3 * price(wide)
