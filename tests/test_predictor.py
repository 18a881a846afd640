"""The Predictor: fallback kernels flagged, batched == one by one, every zoo family predicted,
the report's JSON form and the table."""
import json

import numpy as np
import pytest

from nnmeter_tvm import zoo
from nnmeter_tvm.onnx_import import load_graph
from nnmeter_tvm.predictors import Predictor, load_predictor
from nnmeter_tvm.predictors.render import render_json, render_table

from _predictor_helpers import chain_kernels, small_model, synthetic_conv_predictor


@pytest.fixture(scope="module")
def graph():
    return load_graph(small_model())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return synthetic_conv_predictor(tmp_path_factory.mktemp("trained"))[0]


def test_untrained_predictor_prices_every_kernel_on_the_flagged_fallback(graph):
    report = Predictor("ort-cpu").predict_kernels(graph, chain_kernels(graph))
    assert report.kernels and all(k.fallback for k in report.kernels)
    assert all(k.ms > 0 for k in report.kernels)  # never a silent 0 ms
    assert all(k.cost_model.startswith("fallback:generic") for k in report.kernels)
    assert report.total_ms == pytest.approx(sum(k.ms for k in report.kernels))
    assert any("fallback" in w for w in report.warnings)
    d = report.to_dict()
    assert d["fallback_kernels"] == len(report.kernels)
    assert all(k["fallback"] for k in d["kernels"])


def test_trained_family_is_not_fallback_others_are(graph, trained):
    report = trained.predict_kernels(graph, chain_kernels(graph))
    by_anchor = {k.nodes[0]: k for k in report.kernels}
    assert not by_anchor["conv1"].fallback and by_anchor["conv1"].cost_model == "conv"
    assert by_anchor["conv2"].fallback  # a dwconv: no dwconv model in this predictor
    assert by_anchor["fc"].fallback
    flagged = json.loads(render_json(report))["kernels"]
    assert [k["fallback"] for k in flagged] == [k.fallback for k in report.kernels]
    assert "*" in render_table(report)  # fallback rows are marked in the table


def test_predict_many_equals_one_by_one(trained):
    graphs = [load_graph(small_model(seed)) for seed in range(3)]
    kernels = [chain_kernels(g) for g in graphs]
    many = trained._predict_batch(list(zip(graphs, kernels)))
    for g, ks, r in zip(graphs, kernels, many):
        one = trained.predict_kernels(g, ks)
        assert [k.ms for k in one.kernels] == pytest.approx([k.ms for k in r.kernels])
        assert one.total_ms == pytest.approx(r.total_ms)


def test_report_json_shape(graph, trained):
    d = trained.predict_kernels(graph, chain_kernels(graph)).to_dict()
    assert {"model", "predictor", "total_ms", "kernels"} <= set(d)
    assert {"name", "type", "nodes", "ms", "fallback"} <= set(d["kernels"][0])
    assert d["predictor"]["backend"] == "ort-cpu"


def test_a_kernel_outside_the_trained_range_is_flagged_and_named(graph, trained):
    """Trees cannot extrapolate: a conv with a fused bn and relu, priced by a model trained on
    convs without epilogue, is flagged, and the warning says why; below the range is not."""
    from nnmeter_tvm import features

    model = trained.models["conv"]
    low, high = (np.array(model.info["range"][k]) for k in ("low", "high"))
    inside = ((low + high) / 2)[None]
    assert not model.outside(inside).any()
    wide = inside.copy()
    wide[0, features.feature_names("conv").index("cin")] = 1.2 * high[1] + 1
    assert list(np.flatnonzero(model.outside(wide)[0])) == [1]  # cin alone
    assert not model.outside(low[None] / 2).any()  # smaller than every sample: not flagged
    report = trained.predict_kernels(graph, chain_kernels(graph))
    by_anchor = {k.nodes[0]: k for k in report.kernels}
    assert by_anchor["conv1"].extrapolated and not by_anchor["conv2"].extrapolated  # fallback
    warning = next(w for w in report.warnings if "beyond the range" in w)
    assert warning.startswith("1 kernel(s), ") and "% of the predicted time" in warning
    assert "conv: " in warning and "ep_bn" in warning
    d = report.to_dict()
    assert d["extrapolated_kernels"] == 1
    assert [k["extrapolated"] for k in d["kernels"]] == [k.extrapolated for k in report.kernels]
    assert " ~" in render_table(report)
    # batched as one by one
    many = trained._predict_batch([(graph, chain_kernels(graph))] * 2)
    assert all([k.extrapolated for k in r.kernels] == [k.extrapolated for k in report.kernels]
               for r in many)


def test_extrapolated_kernels_of_a_small_share_are_flagged_without_a_warning(
        graph, trained, monkeypatch):
    monkeypatch.setattr("nnmeter_tvm.predictors.predictor.EXTRAPOLATED_WARN_SHARE", 1.01)
    report = trained.predict_kernels(graph, chain_kernels(graph))
    assert report.to_dict()["extrapolated_kernels"] == 1
    assert not any("beyond the range" in w for w in report.warnings)


def _partition_available():
    try:
        load_predictor("ort-cpu").rules  # the shipped bundle's rules, or rules/ort-cpu.json
        return True
    except Exception:
        return False


needs_partition = pytest.mark.skipif(not _partition_available(),
                                     reason="no ort-cpu bundle and no rules/ort-cpu.json")


@needs_partition
@pytest.mark.parametrize("family", zoo.FAMILIES)
def test_predict_every_zoo_family(family):
    pred = load_predictor("ort-cpu")
    model = zoo.generate(family, 0, 0, 32 if family != "nasbench201" else None)
    report = pred.predict(model)
    graph = load_graph(model)
    covered = [n for k in report.kernels for n in k.nodes]
    assert len(covered) == len(set(covered))
    assert report.total_ms > 0 and np.isfinite(report.total_ms)
    assert all(k.ms > 0 for k in report.kernels if k.cost_model != "view")
    assert all(k.ms == 0 for k in report.kernels if k.cost_model == "view")
    assert set(covered) <= {n.name for n in graph}
    assert report.model


@needs_partition
def test_predict_accepts_path_graph_and_proto(tmp_path):
    pred = load_predictor("ort-cpu")
    model = zoo.generate("resnet", 0, 0, 32)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    a = pred.predict(str(path)).total_ms
    b = pred.predict(model).total_ms
    c = pred.predict_graph(load_graph(model)).total_ms
    assert a == pytest.approx(b) == pytest.approx(c)
    many = pred.predict_many([model, load_graph(model)])
    assert [r.total_ms for r in many] == pytest.approx([a, a])


@needs_partition
def test_cli_predict_json(tmp_path, capsys):
    from nnmeter_tvm.cli import main

    path = tmp_path / "m.onnx"
    path.write_bytes(zoo.generate("mobilenetv2", 0, 0, 32).SerializeToString())
    assert main(["predict", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["total_ms"] > 0 and d["kernels"]
    assert main(["predict", str(path)]) == 0
    assert "predicted" in capsys.readouterr().out


def test_views_cost_nothing_not_even_dispatch(trained):
    """A duplicate the backend merges (cse) runs as no kernel: 0 ms, no per-kernel overhead,
    not flagged as a fallback; the other kernels are priced as without it."""
    from dataclasses import replace

    graph = load_graph(small_model())
    kernels = chain_kernels(graph)
    plain = trained.predict_kernels(graph, kernels)
    as_view = [replace(k, attrs={"view": True}) if k.nodes[0] == "flat" else k for k in kernels]
    report = trained.predict_kernels(graph, as_view)
    view = next(k for k in report.kernels if k.nodes[0] == "flat")
    assert view.ms == 0.0 and view.cost_model == "view" and not view.fallback
    others = [k.ms for k in report.kernels if k.nodes[0] != "flat"]
    assert others == pytest.approx([k.ms for k in plain.kernels if k.nodes[0] != "flat"])
    assert report.total_ms == pytest.approx(plain.total_ms - next(
        k.ms for k in plain.kernels if k.nodes[0] == "flat"))


def test_prediction_leaves_the_cycle_collector_as_it_found_it(graph):
    import gc

    pred = Predictor("ort-cpu")
    assert gc.isenabled()
    pred.predict_many([graph])
    pred.predict_graph(graph)
    assert gc.isenabled()
    gc.disable()
    try:
        pred.predict_many([graph])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_rules_of_another_backend_are_refused_by_name():
    """A predictor for ort-cpu partitioning with tvm-llvm's rules would form tvm's kernels and
    price them with onnxruntime's models, silently; it is refused, naming both backends."""
    from nnmeter_tvm.errors import RulesError
    from nnmeter_tvm.rules import path_for

    predictor = Predictor("ort-cpu", rules_file=path_for("tvm-llvm"))
    with pytest.raises(RulesError, match="detected on backend 'tvm-llvm', not 'ort-cpu'"):
        predictor.rules
