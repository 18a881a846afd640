"""Unit tests of the evaluation's metrics and baselines (benchmarks/eval_lib) on synthetic numbers."""
import numpy as np
import pytest
from onnx import helper

from helpers import benchmark_script, eval_lib as _eval_lib, make_model, weights

metrics = _eval_lib("metrics")
baselines = _eval_lib("baselines")
graph_stats = _eval_lib("graph_stats")
dataset = _eval_lib("dataset")


# ---- metrics ----------------------------------------------------------------------------------
def test_accuracy_thresholds_count_the_right_models():
    measured = np.full(10, 2.0)
    errors = np.array([0.0, 0.04, -0.05, 0.06, -0.09, 0.10, 0.12, -0.15, 0.2, -0.5])
    s = metrics.summarize(measured * (1 + errors), measured)
    assert s["n"] == 10
    assert s["acc5"] == pytest.approx(30.0)   # 0, .04, -.05 (the bound is inclusive)
    assert s["acc10"] == pytest.approx(60.0)  # + .06, -.09, .10
    assert s["acc15"] == pytest.approx(80.0)  # + .12, -.15
    assert s["rmspe"] == pytest.approx(100 * np.sqrt(np.mean(errors ** 2)))
    assert s["rmse_ms"] == pytest.approx(np.sqrt(np.mean((2 * errors) ** 2)))
    assert s["mean_err"] == pytest.approx(100 * errors.mean())


def test_rmse_is_in_milliseconds_and_rmspe_in_percent():
    s = metrics.summarize([1.1, 9.0], [1.0, 10.0])
    assert s["rmse_ms"] == pytest.approx(np.sqrt((0.01 + 1.0) / 2))
    assert s["rmspe"] == pytest.approx(10.0)


def test_noise_ceiling_of_identical_passes_is_perfect():
    a = np.array([0.5, 1.0, 3.0])
    c = metrics.noise_ceiling(a, a.copy())
    assert c["acc5"] == c["acc10"] == 100.0 and c["rmspe"] == 0.0


def test_noise_ceiling_scores_pass_b_against_pass_a():
    c = metrics.noise_ceiling([1.0, 1.0], [1.08, 1.2])
    assert c["acc10"] == 50.0 and c["acc15"] == 50.0 and c["acc5"] == 0.0


def test_by_group_gives_every_group_and_overall():
    out = metrics.by_group(["b", "a", "b"], metrics.summarize, [1.0, 2.0, 3.3], [1.0, 2.0, 3.0])
    assert list(out) == ["a", "b", "overall"]
    assert out["a"]["n"] == 1 and out["b"]["n"] == 2 and out["overall"]["n"] == 3
    assert out["b"]["acc10"] == 100.0 and out["overall"]["acc5"] == pytest.approx(200 / 3)


def test_empty_set_has_no_figures():
    s = metrics.summarize([], [])
    assert s["n"] == 0 and s["acc10"] is None and metrics.meets(s, "acc10", 99) is None


def test_bad_inputs_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="shape"):
        metrics.summarize([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        metrics.summarize([1.0], [0.0])
    with pytest.raises(ValueError, match="group labels"):
        metrics.by_group(["a"], metrics.summarize, [1.0, 2.0], [1.0, 2.0])


def test_meets_compares_percent_with_target():
    assert metrics.meets({"acc10": 99.0}, "acc10", 99) is True
    assert metrics.meets({"acc10": 98.9}, "acc10", 99) is False


# ---- baselines --------------------------------------------------------------------------------
def _rows(rng, n):
    return [{"flops": f, "mac": m} for f, m in zip(rng.uniform(1e7, 1e9, n), rng.uniform(1e6, 1e8, n))]


@pytest.mark.parametrize("relative", [True, False])
def test_linear_baselines_recover_exact_linear_laws(relative):
    rng = np.random.default_rng(0)
    rows = _rows(rng, 50)
    ms = np.array([0.3 + 2e-8 * r["flops"] for r in rows])
    flops = baselines.LinearBaseline(("flops",), relative=relative).fit(rows, ms)
    assert flops.coef_ == pytest.approx([0.3, 2e-8], rel=1e-6)
    ms2 = np.array([0.1 + 1e-8 * r["flops"] + 5e-8 * r["mac"] for r in rows])
    both = baselines.LinearBaseline(("flops", "mac"), relative=relative).fit(rows, ms2)
    assert both.predict(rows) == pytest.approx(ms2, rel=1e-6)


def test_relative_fit_favours_small_models():
    # one large outlier: the relative fit keeps the small models' errors small
    rows = [{"flops": f} for f in (1e6, 2e6, 3e6, 1e9)]
    ms = np.array([0.11, 0.21, 0.31, 50.0])
    rel = baselines.LinearBaseline(("flops",), relative=True).fit(rows, ms).predict(rows)
    ols = baselines.LinearBaseline(("flops",), relative=False).fit(rows, ms).predict(rows)
    small_rel = np.abs(rel[:3] - ms[:3]) / ms[:3]
    small_ols = np.abs(ols[:3] - ms[:3]) / ms[:3]
    assert small_rel.max() < small_ols.max()


def test_linear_baseline_needs_enough_models():
    with pytest.raises(ValueError, match="at least 3"):
        baselines.LinearBaseline(("flops", "mac")).fit([{"flops": 1, "mac": 1}] * 2, [1.0, 2.0])


def test_model_xgboost_learns_a_smooth_law_and_is_seeded():
    rng = np.random.default_rng(1)
    rows = [dict.fromkeys(graph_stats.FEATURES, 0.0) | {"flops": f, "mac": m}
            for f, m in zip(rng.uniform(1e7, 1e9, 300), rng.uniform(1e6, 1e8, 300))]
    ms = np.array([0.2 + 1e-8 * r["flops"] + 1e-8 * r["mac"] for r in rows])
    a = baselines.ModelXGBoost(rounds=200).fit(rows[:250], ms[:250]).predict(rows[250:])
    b = baselines.ModelXGBoost(rounds=200).fit(rows[:250], ms[:250]).predict(rows[250:])
    assert np.array_equal(a, b)
    assert metrics.summarize(a, ms[250:])["acc15"] >= 90.0


def test_fit_predict_runs_every_model_level_baseline():
    rng = np.random.default_rng(2)
    rows = [dict.fromkeys(graph_stats.FEATURES, 1.0) | {"flops": f, "mac": f / 10}
            for f in rng.uniform(1e7, 1e9, 40)]
    ms = np.array([1e-8 * r["flops"] + 0.05 for r in rows])
    out = baselines.fit_predict(rows[:30], ms[:30], rows[30:])
    assert set(out) == {"flops", "flops+mac", "xgboost-model"}
    assert all(v.shape == (10,) for v in out.values())
    assert out["flops"] == pytest.approx(ms[30:], rel=1e-6)


# ---- graph features and the operator-level sum -------------------------------------------------
def _conv_relu_model():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    return make_model(nodes, [("x", [1, 4, 8, 8])], [("y", [1, 6, 8, 8])],
                      {"w": weights(6, 4, 3, 3)})


def test_graph_features_count_flops_and_memory_access():
    from nnmeter_tvm.onnx_import import load_graph

    f = graph_stats.graph_features(load_graph(_conv_relu_model()))
    out = 6 * 8 * 8
    assert f["flops"] == 2 * out * 4 * 9 + out
    assert f["conv_flops"] == 2 * out * 4 * 9
    assert f["params"] == 6 * 4 * 9
    assert f["mac"] == 4 * ((4 * 64 + out + 6 * 4 * 9) + (out + out))
    assert f["n_conv"] == 1 and f["n_unary"] == 1 and f["n_nodes"] == 2
    assert f["input_hw"] == 64 and f["max_channels"] == 6
    assert set(f) == set(graph_stats.FEATURES)


def test_operator_sum_prices_one_kernel_per_node():
    from nnmeter_tvm.onnx_import import load_graph

    graph = load_graph(_conv_relu_model())
    kernels = baselines.singleton_kernels(graph)
    assert [k.nodes for k in kernels] == [(n.name,) for n in graph]
    assert [k.type for k in kernels] == ["conv", "relu"]

    class Stub:  # prices every kernel at 1 ms per member op
        def predict_kernels(self, g, ks):
            return type("R", (), {"total_ms": float(sum(len(k.nodes) for k in ks))})()

    assert baselines.operator_sum(Stub(), [graph, graph]).tolist() == [2.0, 2.0]


# ---- leave-one-family-out attribution -----------------------------------------------------------
def test_samples_are_attributed_to_every_family_whose_layer_they_neighbour():
    import json

    lofo = _eval_lib("lofo")
    conv = {"kind": "conv", "cin": 32, "cout": 64, "h": 28, "w": 28, "k": 3, "s": 1, "groups": 1,
            "pad": 1, "bias": False, "epi": ["bn", "relu"]}
    dw = dict(conv, cin=64, cout=64, groups=64)
    attrib = lofo.SampleAttribution({"resnet": [conv], "mobilenetv2": [dw]}, steps=1)
    near = dict(conv, cin=20, cout=70)           # channels x [0.5, 1.2]: a neighbour
    far = dict(conv, cin=8)                       # 0.25 x: out of one step's reach
    other_hw = dict(conv, h=14, w=14)             # another structure
    dw_near = dict(dw, cin=40, cout=40, groups=40)
    assert attrib.families({"spec": conv}) == {"resnet"}
    assert attrib.families({"target": json.dumps(near)}) == {"resnet"}
    assert attrib.families({"spec": far}) == set()
    assert attrib.families({"spec": other_hw}) == set()
    assert attrib.families({"spec": dw_near}) == {"mobilenetv2"}
    # in-situ samples belong to the family of the model they were profiled in
    assert attrib.families({"unit": "zoo:vgg:1000:0:None", "spec": None}) == {"vgg"}
    # more sampling steps reach further
    assert lofo.SampleAttribution({"resnet": [conv]}, steps=3).families({"spec": far}) == {"resnet"}
    # a grid sample was drawn from no family's layers, even when it equals one of them
    assert attrib.families({"spec": conv, "origin": "grid"}) == set()


# ---- dataset: the tie-break pass ----------------------------------------------------------------
def _entry(**ms):
    return dataset.Entry(item=dataset.Item("resnet", 0, 1), graph=None, digest="0" * 12, ms=ms)


def test_agreeing_passes_are_averaged_and_need_no_third():
    e = _entry(A=10.0, B=10.4)  # 3.9 % apart
    assert not e.needs_tiebreak and e.complete
    assert e.measured_ms == pytest.approx(10.2)


def test_disagreeing_passes_wait_for_the_third_and_take_the_median():
    e = _entry(A=10.0, B=16.0)  # one slow session
    assert e.needs_tiebreak and not e.complete
    e.ms["C"] = 10.2
    assert e.complete
    assert e.measured_ms == pytest.approx(10.2)  # the slow session is outvoted, not averaged in


def test_earlier_results_fill_only_what_the_store_lacks_and_only_for_the_same_model(tmp_path):
    import json

    same = _entry(A=10.0)                      # pass A from the store: kept
    other = dataset.Entry(item=dataset.Item("resnet", 0, 3), graph=None, digest="1" * 12)
    records = [{"model": same.item.name, "digest": same.digest, "pass_a_ms": 99.0,
                "pass_b_ms": 10.2, "pass_c_ms": None},
               {"model": other.item.name, "digest": "2" * 12, "pass_a_ms": 5.0,
                "pass_b_ms": 5.0}]  # another generator's model of that name: not taken
    path = tmp_path / "evaluate-ort-cpu.json"
    path.write_text(json.dumps({"backend": "ort-cpu", "backend_version": "1.0",
                                "date": "2026-11-27", "models": records}))
    info = dataset.load_results([same, other], path)
    assert same.ms == {"A": 10.0, "B": 10.2} and other.ms == {}
    assert (info["models"], info["passes"], info["backend_version"]) == (1, 1, "1.0")
    assert info["date"] == "2026-11-27"
    # a file that took its truth from an earlier one reports when that truth was measured
    path.write_text(json.dumps({"backend": "ort-cpu", "date": "2026-11-28", "models": records,
                                "dataset": {"truth_from": {"date": "2026-11-27"}}}))
    assert dataset.load_results([], path)["date"] == "2026-11-27"


def test_a_ground_truth_from_another_cpu_is_never_mixed_with_this_machines_times():
    from argparse import Namespace

    ev = benchmark_script("evaluate")
    assert dataset.truth_cpu({"machine": {"cpu_model": "AMD EPYC"}}) == "AMD EPYC"
    rescored = {"machine": {"cpu_model": "Intel Xeon"},   # scored elsewhere, truth from AMD
                "dataset": {"truth_from": {"cpu_model": "AMD EPYC"}}}
    assert dataset.truth_cpu(rescored) == "AMD EPYC"
    offline = Namespace(truth_from="t.json", no_measure=True)
    measuring = Namespace(truth_from="t.json", no_measure=False)
    assert ev.mixed_truth(offline, "AMD EPYC", "Intel Xeon", cached=0) is None
    assert ev.mixed_truth(measuring, "AMD EPYC", "AMD EPYC", cached=5) is None
    assert ev.mixed_truth(measuring, None, "Intel Xeon", cached=0) is None  # an old file
    for args, cached in ((measuring, 0), (offline, 3)):
        err = ev.mixed_truth(args, "AMD EPYC", "Intel Xeon", cached)
        assert "t.json" in err and "AMD EPYC" in err and "--no-measure" in err
        assert "\n" not in err


def test_records_without_a_content_hash_are_matched_by_name_only_when_asked(tmp_path):
    import json

    path = tmp_path / "old.json"
    path.write_text(json.dumps({"backend": "ort-cpu", "models": [
        {"model": "resnet_s0_i1", "pass_a_ms": 4.0, "pass_b_ms": 4.1}]}))
    e = _entry()
    assert dataset.load_results([e], path)["models"] == 0 and e.ms == {}
    info = dataset.load_results([e], path, trust_names=True)
    assert e.ms == {"A": 4.0, "B": 4.1} and info["matched_by_name"] == 1


# ---- the measuring budget (--quick ends within 5 minutes) ---------------------------------------
def test_quick_measures_only_what_its_five_minutes_leave():
    from argparse import Namespace

    ev = benchmark_script("evaluate")
    quick = Namespace(quick=True, max_measure_minutes=None)
    assert ev.measure_budget(quick, 10.0) == pytest.approx(ev.QUICK_S - ev.AFTER_MEASURE_S - 10)
    assert ev.measure_budget(quick, 1e4) == 0.0
    assert ev.measure_budget(Namespace(quick=True, max_measure_minutes=2.0), 10.0) == 120.0
    assert ev.measure_budget(Namespace(quick=False, max_measure_minutes=None), 10.0) is None


def test_measuring_past_its_budget_stops_and_says_so():
    from types import SimpleNamespace

    e = _entry()
    out = dataset.measure([e], backend=SimpleNamespace(name="ort-cpu"),
                          store=SimpleNamespace(path="(none)"), budget_s=0.0, progress=False)
    assert out["stopped_by_budget"] and out["measured_now"] == 0 and e.ms == {}


# ---- error_split --misses ------------------------------------------------------------------------
def test_error_split_takes_the_models_the_evaluation_misses(tmp_path):
    import json

    es = benchmark_script("error_split")
    plan = dataset.plan_for("ort-cpu", quick=True)
    inside, under, over = plan.items()[:3]
    path = tmp_path / "evaluate-ort-cpu.json"
    path.write_text(json.dumps({"models": [
        {"model": inside.name, "predicted_ms": 1.09, "measured_ms": 1.0},
        {"model": under.name, "predicted_ms": 0.85, "measured_ms": 1.0},
        {"model": over.name, "predicted_ms": 1.2, "measured_ms": 1.0}]}))
    assert [i.name for i in es.missed_items(plan, path)] == [under.name, over.name]


def test_a_kernel_gap_names_its_configuration_and_the_samples_near_it():
    from nnmeter_tvm import features as F, load_predictor, zoo
    from nnmeter_tvm.features import schema as S
    from nnmeter_tvm.onnx_import import load_graph

    es = benchmark_script("error_split")
    graph = load_graph(zoo.generate("alexnet", 0, 0, None))
    kernel = next(k for k in load_predictor("ort-cpu").partition(graph) if not k.inserted)
    family, raw = F.kernel_config(kernel, graph)
    names = S.raw_fields(family)
    wider, strided = raw.copy(), raw.copy()
    wider[names.index("cout")] *= 1.5                  # within 2x: near
    strided[names.index("sh")] += 1                    # another stride: not near
    samples = {family: np.array([raw, wider, strided]), "gemm": np.array([[1.0] * 3])}
    gap = es.kernel_gap(kernel, graph, profiled_ms=1.0, cost_ms=1.25, samples=samples)
    assert gap["family"] == "conv" and gap["type"] == kernel.type
    assert gap["config"]["cin"] == 3 and 0 not in gap["config"].values()
    assert (gap["profiled_ms"], gap["cost_ms"], gap["near_samples"]) == (1.0, 1.25, 2)
    assert es.near_samples({}, family, raw) == 0
