"""The transformer encoders of benchmarks/beyond_zoo.py (no zoo family, so no zoo-drawn sample
covers them; their fusion rules were detected on them): valid ONNX, partitioned as onnxruntime
runs them, priced end to end by the default bundle with trained
cost models (its samples include the wide grid's transformer layers), and flagged by a bundle
whose gemm model has seen fc layers only."""
import numpy as np
import pytest

from helpers import benchmark_script
from nnmeter_tvm.onnx_import import graph_from_proto
from nnmeter_tvm.predictors import Predictor, load_predictor


@pytest.mark.parametrize("shape", [(16, 64, 2, 1), (49, 128, 4, 2)])
def test_the_default_bundle_prices_an_encoder_with_trained_models(shape):
    graph = graph_from_proto(benchmark_script("beyond_zoo").encoder(*shape))
    report = load_predictor("ort-cpu").predict(graph)
    # 26 nodes a block, 19 kernels: q/k/v's MatMul + bias + Reshape and the scaled scores fuse
    assert len(report.kernels) == 19 * shape[3] and report.total_ms > 0
    assert all(k.ms > 0 for k in report.kernels)
    assert not report.fallback_kernels
    assert {"gemm", "gemm-add-reshape", "matmul-mul", "softmax", "layernorm", "matmul"} <= \
        {k.type for k in report.kernels}
    assert not any(k.extrapolated for k in report.kernels if k.type in ("gemm", "matmul"))


def test_a_post_norm_encoder_runs_its_residual_and_layernorm_as_one_priced_kernel():
    """The BERT-like encoders (held out from the rule detection): every projection has a bias
    (gemm-add, or gemm-add-reshape before the split into heads), and the residual Add and the
    LayerNorm after it are one kernel (onnxruntime's SkipLayerNormalization), priced by a
    model that has seen such kernels (the wide grid's skipnorms), not flagged."""
    bz = benchmark_script("beyond_zoo")
    graph = graph_from_proto(bz.encoder(*bz.POST_NORM[0], post_norm=True))
    report = load_predictor("ort-cpu").predict(graph)
    types = [k.type for k in report.kernels]
    assert types.count("add-layernorm") == 2 and types.count("gemm-add-reshape") == 3
    assert types.count("gemm-add") == 3 and not report.fallback_kernels
    assert not any(k.extrapolated for k in report.kernels if k.type == "add-layernorm")


def test_a_gemm_model_of_fc_layers_flags_the_projections_of_an_encoder():
    """What the default bundle did before it had transformer samples: a 49-row projection
    priced by a model of one-row fc layers, silently.  Now it is flagged, naming ``m``."""
    from nnmeter_tvm import features
    from nnmeter_tvm.builder.training import train_family

    rng = np.random.default_rng(0)
    width = len(features.raw_fields("gemm"))
    rows = [[1, 1, int(k), int(n), 1, 1, 1] for k, n in rng.integers(16, 4096, (60, 2))]
    raw = np.array([r + [0] * (width - len(r) - 1) + [4] for r in rows], dtype=np.float64)
    x = features.encode("gemm", raw)
    flops = x[:, features.feature_names("gemm").index("flops")]
    fc = train_family("gemm", x, 0.005 + flops / 4e7, feature_names=features.feature_names("gemm"),
                      rounds=40)
    graph = graph_from_proto(benchmark_script("beyond_zoo").encoder(49, 128, 4, 1))
    report = Predictor("ort-cpu", models={"gemm": fc.model},
                       rules_file=load_predictor("ort-cpu").rules_file).predict(graph)
    gemms = [k for k in report.kernels if k.cost_model == "gemm"]
    assert gemms and all(k.extrapolated for k in gemms)
    assert any("gemm: " in w and " m" in w for w in report.warnings)
