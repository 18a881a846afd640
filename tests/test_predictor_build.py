"""The builder end to end on a fake backend (synthetic times, no real measuring): it samples,
trains, writes a bundle that loads and predicts, and a second run resumes from its sample log
without measuring again."""
import json
from dataclasses import replace

import numpy as np
import pytest

from nnmeter_tvm import features
from nnmeter_tvm.backends.base import KernelTruth, Measurement, TruthKernel, load
from nnmeter_tvm.backends.protocol import ProtocolConfig
from nnmeter_tvm.builder.build import BuildConfig, Builder, interleave
from nnmeter_tvm.builder.sampler import wide_counts
from nnmeter_tvm.kernels import partition
from nnmeter_tvm.onnx_import import load_graph
from nnmeter_tvm.predictors import Predictor, load_bundle
from nnmeter_tvm.rules import from_dict


def _rule(kind, ops, groups):
    return {"name": "_".join(ops), "kind": kind, "ops": list(ops),
            "groups": [list(g) for g in groups], "requires": [],
            "origin": {"method": "observed", "backend": "test"}}


RULES = {"schema": "nnmeter-tvm/rules", "schema_version": 1,
         "backend": {"name": "ort-cpu", "version": "0"}, "machine": {}, "alpha": 0.5,
         "date": "2026-01-01", "layout": None, "rules": [
             _rule("pair", ("conv", "bn"), [[0, 1]]), _rule("pair", ("conv", "relu"), [[0, 1]]),
             _rule("pair", ("dwconv", "bn"), [[0, 1]]),
             _rule("chain", ("conv", "bn", "relu"), [[0, 1, 2]]),
             _rule("chain", ("dwconv", "bn", "relu"), [[0, 1, 2]]),
             _rule("chain", ("dwconv", "bn", "relu6"), [[0, 1, 2]]),
             _rule("chain", ("conv", "bn", "relu6"), [[0, 1, 2]])]}


class FakeBackend:
    """Kernel time = 0.002 ms + FLOPs / 1e9 + bytes / 4e9; a model adds 0.03 ms per run."""

    name = "ort-cpu"
    config = None
    profile_sessions = 1
    launch_ms, flops_per_ms, bytes_per_ms = 0.002, 1e9, 4e9

    def __init__(self):
        self.rules = from_dict(RULES)
        self.truth_calls = 0
        self.measure_calls = 0

    def version(self):
        return "fake"

    def _kernels(self, model):
        graph = load_graph(load(model).proto)
        out = []
        for k in partition(graph, self.rules):
            family, raw = features.kernel_config(k, graph)
            x = features.encode(family, raw[None], exact=True)[0]
            names = features.feature_names(family)
            flops = x[names.index("flops")]
            moved = sum(x[names.index(c)] for c in ("bytes_in", "bytes_weight", "bytes_out"))
            out.append(TruthKernel(k.name, k.type, tuple(k.nodes), k.inserted, self.launch_ms
                                   + flops / self.flops_per_ms + moved / self.bytes_per_ms))
        return out

    def truth(self, model, timed=True):
        self.truth_calls += 1
        return KernelTruth("ort-cpu", "fake", "m", tuple(self._kernels(model)), (), True)

    def measure(self, model, store=None, key=None, drift=0.0, **kw):
        self.measure_calls += 1
        ms = 0.03 + sum(k.ms for k in self._kernels(model))
        m = Measurement("ort-cpu", "fake", key, ms, ms, ms, 30, 0.5, drift, 0, 1, {}, "now")
        if store is not None:
            store.add(m)
        return m


class DriftingFirst(FakeBackend):
    """Every model's first profile drifted (another process loaded the machine)."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def truth(self, model, timed=True):
        t = super().truth(model, timed)
        key = load(model).proto.SerializeToString()
        drift = 0.01 if key in self.seen else 0.2
        self.seen.add(key)
        return KernelTruth(t.backend, t.backend_version, t.model, t.kernels, (), True, drift)


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES))
    monkeypatch.setattr("nnmeter_tvm.predictors.bundle.backend_version", lambda b: "fake")
    cfg = BuildConfig.for_backend("ort-cpu", minutes=5, input_size=32, prior_per_family=1,
                                  insitu_per_family=1, calib_per_family=1, initial_samples=24,
                                  grid_samples=12, round_samples=8, near_per_bad=2, max_rounds=1,
                                  max_samples=400, families=("resnet", "mobilenetv2"),
                                  train_rounds=20, repeats=2, grid="cnn")
    return cfg, rules, tmp_path


def _builder(cfg, rules, tmp_path, backend):
    b = Builder(cfg, store=tmp_path / "samples.jsonl", backend=backend, rules_file=rules)
    b.measure_store = tmp_path / "measure.sqlite"
    return b


def test_build_writes_a_loadable_bundle_and_resumes(setup):
    cfg, rules, tmp = setup
    backend = FakeBackend()
    result = _builder(cfg, rules, tmp, backend).run(tmp / "bundle")
    assert 0 < result.samples <= cfg.max_samples
    assert backend.truth_calls > 0 and backend.measure_calls == 2 + len(cfg.calib_chains)
    pred = load_bundle(tmp / "bundle")
    assert "conv" in pred.models
    meta = json.loads((tmp / "bundle" / "bundle.json").read_text())
    assert meta["build"]["kernel_samples"] == result.samples
    assert meta["families"]["conv"]["heldout"]["n"] > 0
    assert meta["build"]["samples_by_origin"]["grid"] > 0  # family-agnostic specs measured
    phases = meta["build"]["phases"]  # where the run's time went, step by step
    assert {"insitu", "calibration", "initial", "training", "overhead_fit"} <= set(phases)
    assert sum(phases.values()) == pytest.approx(meta["build"]["seconds"], abs=1.0)
    assert meta["overhead"]["fixed_ms"] == pytest.approx(0.03, abs=0.02)
    graph = load_graph(__import__("nnmeter_tvm.zoo", fromlist=["x"]).generate("resnet", 0, 0, 32))
    report = pred.predict_graph(graph)
    truth = 0.03 + sum(k.ms for k in backend._kernels(
        __import__("nnmeter_tvm.zoo", fromlist=["x"]).generate("resnet", 0, 0, 32)))
    assert report.total_ms == pytest.approx(truth, rel=0.5)

    again = FakeBackend()
    second = _builder(cfg, rules, tmp, again).run(tmp / "bundle2")
    assert again.measure_calls == 0  # whole-model times come from the store
    # the sample log is reused: nothing measured again for the units already done
    assert second.samples >= result.samples
    lines = [json.loads(x) for x in (tmp / "samples.jsonl").read_text().splitlines()]
    units = [x["unit"] for x in lines if x["type"] == "unit"]
    assert len(units) == len(set(units))
    grid = [len(x["specs"]) for x in lines if x["type"] == "unit" and x["origin"] == "grid"]
    assert sum(grid) == 12  # the resumed build drew no more grid specs
    runs = json.loads((tmp / "bundle2" / "bundle.json").read_text())["build"]["runs"]
    assert len(runs) == 2 and runs[1]["kernels_timed"] < runs[0]["kernels_timed"]


def test_interleave_spreads_each_origin_evenly_in_its_own_order():
    q = interleave({"initial": ["i0", "i1", "i2", "i3", "i4", "i5"], "grid": ["g0", "g1"]})
    assert [p for _, p in q] == ["i0", "i1", "g0", "i2", "i3", "i4", "g1", "i5"]
    assert {o for o, p in q if p.startswith("g")} == {"grid"}
    # cut anywhere, each origin has had about its share
    first_half = [o for o, _ in q[:4]]
    assert first_half.count("grid") == 1 and first_half.count("initial") == 3
    assert interleave({"adaptive1": ["a"], "grid": []}) == [("adaptive1", "a")]


def test_the_bundle_carries_its_samples_so_a_fresh_machine_can_retrain_it(setup):
    """Leave-one-family-out retrains a bundle on a subset of its samples: with the build's
    sample log and measurement store gone, both come from the bundle itself."""
    from helpers import eval_lib

    cfg, rules, tmp = setup
    builder = _builder(cfg, rules, tmp, FakeBackend())
    builder.run(tmp / "bundle")
    (tmp / "samples.jsonl").unlink()
    (tmp / "measure.sqlite").unlink()
    pred = load_bundle(tmp / "bundle")
    assert (tmp / "bundle" / pred.meta["build"]["samples"]["file"]).is_file()
    samples, _, again = eval_lib("lofo").read_samples(pred)
    assert len(samples) == len(builder.samples()) > 0
    retrainer = eval_lib("lofo").Retrainer(pred, samples, {}, again)
    again.measure_store = tmp / "empty.sqlite"
    calib = retrainer.calibration()
    assert sorted(ms for *_, ms in calib) == sorted(pred.meta["build"]["calibration_ms"].values())
    assert len(calib) == len(cfg.families) * cfg.calib_per_family + len(cfg.calib_chains)
    # --quick: no target selection, each family keeps the bundle's choice
    quick, _ = eval_lib("lofo").Retrainer(pred, samples, {}, again, rounds=20,
                                          bundle_targets=True).predictor(lambda s: True)
    assert quick.models and {f: m.target for f, m in quick.models.items()} == \
        {f: pred.models[f].target for f in quick.models}
    assert all(list(m.info["by_target"]) == [m.target] for m in quick.models.values())


def _bundle_alone(setup):
    """A bundle built, its build's sample log and measurement store gone: (folder's parent,
    its bundle.json, the bytes of its samples file)."""
    cfg, rules, tmp = setup
    _builder(cfg, rules, tmp, FakeBackend()).run(tmp / "bundle")
    (tmp / "samples.jsonl").unlink()
    (tmp / "measure.sqlite").unlink()
    return (tmp, json.loads((tmp / "bundle" / "bundle.json").read_text()),
            (tmp / "bundle" / "samples.jsonl.gz").read_bytes())


def test_retrain_trains_again_from_the_bundles_own_samples_and_measures_nothing(setup):
    """``build --retrain BUNDLE``: the same samples and calibration times, new cost models
    (e.g. after a change of features); nothing measured, the source bundle left untouched."""
    from nnmeter_tvm.builder.build import retrain

    tmp, source, before = _bundle_alone(setup)
    result = retrain(tmp / "bundle", tmp / "again", progress=False)
    meta = json.loads((tmp / "again" / "bundle.json").read_text())
    assert result.samples == source["build"]["kernel_samples"] and result.measurements > 0
    assert meta["build"]["retrained_from"][0]["bundle"] == str(tmp / "bundle")
    again = retrain(tmp / "again", tmp / "third", progress=False)  # the chain is kept
    chain = json.loads((tmp / "third" / "bundle.json").read_text())["build"]["retrained_from"]
    assert chain[0]["retrained_from"][0]["bundle"] == str(tmp / "bundle")
    assert again.samples == result.samples
    assert meta["build"]["calibration_ms"] == source["build"]["calibration_ms"]
    assert meta["build"]["runs"] == source["build"]["runs"]  # no run of its own: no measuring
    assert meta["overhead"]["fixed_ms"] == pytest.approx(0.03, abs=0.02)
    assert (tmp / "bundle" / "samples.jsonl.gz").read_bytes() == before
    assert meta["build"]["kernels_timed_this_run"] == 0
    graph = load_graph(__import__("nnmeter_tvm.zoo", fromlist=["x"]).generate("resnet", 0, 0, 32))
    assert load_bundle(tmp / "again").predict_graph(graph).total_ms > 0


def test_retrain_with_rules_partitions_with_them(setup):
    """``build --retrain BUNDLE --rules FILE`` (e.g. the file with rules added for other
    models): the new bundle carries and uses FILE, not the source bundle's rules."""
    from nnmeter_tvm.builder.build import retrain

    tmp, _, _ = _bundle_alone(setup)
    more = dict(RULES, rules=RULES["rules"] + [_rule("pair", ("bn", "relu"), [[0, 1]])])
    (tmp / "more.json").write_text(json.dumps(more))
    retrain(tmp / "bundle", tmp / "again", progress=False, rules_file=tmp / "more.json")
    again = load_bundle(tmp / "again")
    assert (tmp / "again" / "rules.json").read_text() == (tmp / "more.json").read_text()
    assert again.rules.pair("bn", "relu") is not None
    assert load_bundle(tmp / "bundle").rules.pair("bn", "relu") is None


def test_retrain_pools_the_samples_of_several_bundles(setup):
    """Two builds' samples in one bundle: units profiled in both are taken once (from the
    first), the measuring runs of both are recorded, the first's calibration times used."""
    import dataclasses

    from nnmeter_tvm.builder.build import retrain

    cfg, rules, tmp = setup
    first = _builder(cfg, rules, tmp, FakeBackend()).run(tmp / "a")
    other = Builder(dataclasses.replace(cfg, seed=1), store=tmp / "other.jsonl",
                    backend=FakeBackend(), rules_file=rules)
    other.measure_store = tmp / "measure.sqlite"
    second = other.run(tmp / "b")
    pooled = retrain([tmp / "a", tmp / "b"], tmp / "pooled", progress=False)
    meta = json.loads((tmp / "pooled" / "bundle.json").read_text())
    assert max(first.samples, second.samples) < pooled.samples <= first.samples + second.samples
    assert [r["bundle"] for r in meta["build"]["retrained_from"]] == [str(tmp / "a"),
                                                                       str(tmp / "b")]
    assert len(meta["build"]["runs"]) == 2
    source = json.loads((tmp / "a" / "bundle.json").read_text())["build"]
    assert meta["build"]["calibration_ms"] == source["calibration_ms"]


def test_a_wide_build_draws_the_transformer_layers_on_top_of_the_grid(setup):
    ort = BuildConfig.for_backend("ort-cpu")
    assert ort.grid == "wide"  # the default there, with 600 family-agnostic specs for 550
    assert (ort.grid_samples, ort.initial_samples) == (600, 550)  # (results/xeon/grid-share/)
    assert BuildConfig.for_backend("tvm-llvm").grid == "cnn"
    cfg, rules, tmp = setup
    cfg = replace(cfg, grid="wide", wide_samples=30)
    _builder(cfg, rules, tmp, FakeBackend()).run(tmp / "bundle")
    units = [json.loads(x) for x in (tmp / "samples.jsonl").read_text().splitlines()]
    drawn = {o: sum(len(u["specs"]) for u in units if u.get("origin") == o)
             for o in ("grid", "grid-wide")}
    assert drawn == {"grid": cfg.grid_samples, "grid-wide": sum(wide_counts(30).values())}
    wide = [s for u in units if u.get("origin") == "grid-wide" for s in u["specs"]]
    assert {s["kind"] for s in wide} == {"gemm", "matmul", "softmax", "binary", "pad"}
    assert "softmax" in load_bundle(tmp / "bundle").models


def test_extend_adds_the_wide_grid_and_keeps_every_other_sample(setup):
    """``build --extend BUNDLE``: the transformer layers measured, nothing else; the kernel
    types they do not touch get the same cost models, the calibration times are the bundle's."""
    from nnmeter_tvm.builder.build import extend
    from nnmeter_tvm.errors import BundleError

    cfg, rules, tmp = setup
    cfg = replace(cfg, wide_samples=30)
    _builder(cfg, rules, tmp, FakeBackend()).run(tmp / "a")
    backend = FakeBackend()
    result = extend(tmp / "a", tmp / "x", progress=False, backend=backend)
    a, x = (json.loads((tmp / d / "bundle.json").read_text())["build"] for d in ("a", "x"))
    assert backend.measure_calls == 0 and backend.truth_calls > 0
    assert x["samples_by_origin"].pop("grid-wide") > 0 and "grid-wide" not in a["samples_by_origin"]
    assert x["samples_by_origin"] == a["samples_by_origin"]
    assert result.samples > a["kernel_samples"]
    assert x["config"]["grid"] == "wide" and x["calibration_ms"] == a["calibration_ms"]
    assert x["extended_from"][0]["bundle"] == str(tmp / "a") and len(x["runs"]) == 2
    assert (tmp / "x" / "models" / "conv.json").read_bytes() == \
        (tmp / "a" / "models" / "conv.json").read_bytes()
    assert "softmax" in load_bundle(tmp / "x").models
    assert not (tmp / "x" / "extend.jsonl").exists()  # the working log, once the bundle is written
    with pytest.raises(BundleError, match="--grid wide"):
        extend(tmp / "a", tmp / "y", progress=False, grid="cnn", backend=FakeBackend())


def test_a_users_model_is_logged_without_its_weights_and_comes_back_the_same(tmp_path):
    """``model_record``: the graph without weights, each weight's shape and type; zeros come
    back in their place, so the model partitions and profiles as it did."""
    from nnmeter_tvm import zoo
    from nnmeter_tvm.builder.build import model_from_record, model_record

    model = zoo.generate("mobilenetv2", 0, 1, 32)
    record = json.loads(json.dumps(model_record(model)))  # as the sample log stores it
    back = model_from_record(record)
    assert len(record["onnx"]) < len(model.SerializeToString()) / 4
    a, b = load_graph(model), load_graph(back)
    assert [(n.op, n.input_shapes, n.output_shapes, n.attrs) for n in a] == \
        [(n.op, n.input_shapes, n.output_shapes, n.attrs) for n in b]
    assert sorted(t.name for t in back.graph.initializer) == \
        sorted(t.name for t in model.graph.initializer)


def test_extend_with_models_adds_their_own_kernels_and_nothing_else(setup):
    """``build --extend BUNDLE --models M.onnx``: the models profiled whole, their kernels
    added as samples of origin ``user``; no wide grid; a bad file refused before measuring."""
    import onnx

    from nnmeter_tvm import zoo
    from nnmeter_tvm.builder.build import extend
    from nnmeter_tvm.errors import ModelLoadError

    cfg, rules, tmp = setup
    _builder(cfg, rules, tmp, FakeBackend()).run(tmp / "a")
    path = tmp / "user.onnx"
    onnx.save(zoo.generate("shufflenetv2", 0, 0, 32), str(path))
    backend = FakeBackend()
    result = extend(tmp / "a", tmp / "x", progress=False, backend=backend, models=[path])
    a, x = (json.loads((tmp / d / "bundle.json").read_text())["build"] for d in ("a", "x"))
    assert backend.truth_calls == 1 and backend.measure_calls == 0
    assert x["samples_by_origin"].pop("user") > 10 and x["samples_by_origin"] == \
        a["samples_by_origin"]
    assert result.samples > a["kernel_samples"]
    retrained = retrain_from(tmp / "x", tmp / "r")  # the bundle carries the model: it re-derives
    assert retrained.samples == result.samples
    symbolic = zoo.generate("shufflenetv2", 0, 1, 32)
    symbolic.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.save(symbolic, str(tmp / "symbolic.onnx"))
    extend(tmp / "x", tmp / "z", progress=False, backend=backend, models=[tmp / "symbolic.onnx"],
           input_shapes={symbolic.graph.input[0].name: (1, 3, 32, 32), "other": (1, 8)})
    assert backend.truth_calls == 2
    bad = tmp / "bad.onnx"
    bad.write_bytes(b"not onnx")
    backend = FakeBackend()
    with pytest.raises(ModelLoadError, match="bad.onnx"):
        extend(tmp / "a", tmp / "y", progress=False, backend=backend, models=[path, bad])
    assert backend.truth_calls == 0


def retrain_from(bundle, out):
    from nnmeter_tvm.builder.build import retrain

    return retrain([bundle], out, progress=False)


def test_extend_refuses_a_bundle_measured_with_another_backend_version(setup, monkeypatch):
    from nnmeter_tvm.builder.build import extend
    from nnmeter_tvm.errors import BundleError

    cfg, rules, tmp = setup
    _builder(cfg, rules, tmp, FakeBackend()).run(tmp / "a")
    monkeypatch.setattr("nnmeter_tvm.predictors.bundle.backend_version", lambda b: "newer")
    with pytest.raises(BundleError, match="same backend version"):
        extend(tmp / "a", tmp / "x", progress=False, backend=FakeBackend())


def test_retrain_of_a_bundle_without_samples_is_a_clear_error(setup, tmp_path):
    from nnmeter_tvm.builder.build import retrain
    from nnmeter_tvm.errors import BundleError

    cfg, rules, tmp = setup
    _builder(cfg, rules, tmp, FakeBackend()).run(tmp / "bundle")
    (tmp / "bundle" / "samples.jsonl.gz").unlink()
    with pytest.raises(BundleError, match="samples are missing"):
        retrain(tmp / "bundle", tmp_path / "out", progress=False)


def test_a_unit_timed_while_the_machine_drifted_gives_no_sample_until_measured_again(setup):
    """MEASURE.md: a batch whose reference workload drifted is measured again; the builder
    keeps a drifted unit out of training and times it again before the final fit."""
    cfg, rules, tmp = setup
    builder = _builder(cfg, rules, tmp, DriftingFirst())
    unit = "zoo:resnet:1000:0:32"
    builder.features, builder.predictor = features, None
    builder.insitu()
    assert unit in builder.log.units and not builder.log.done(unit)
    assert builder.log.drifted_units() and builder.samples() == []
    timed_once = builder.log.kernel_measurements()
    assert builder.retime_drifted() == len(builder.log.units)
    assert builder.log.drifted_units() == [] and builder.log.done(unit)
    # both timings count against the budget
    assert builder.log.kernel_measurements() == 2 * timed_once
    # the log keeps both records; read again, the latest one is used
    again = _builder(cfg, rules, tmp, FakeBackend())
    assert again.log.drifted_units() == [] and again.log.kernel_measurements() == 2 * timed_once


def test_insitu_profiles_more_models_of_a_family_named_in_insitu_counts(setup):
    cfg, rules, tmp = setup
    cfg = replace(cfg, insitu_counts={"mobilenetv2": 3})
    builder = _builder(cfg, rules, tmp, FakeBackend())
    builder.insitu()
    assert sorted(builder.log.units) == ["zoo:mobilenetv2:1000:0:32", "zoo:mobilenetv2:1000:1:32",
                                         "zoo:mobilenetv2:1000:2:32", "zoo:resnet:1000:0:32"]


def test_a_build_with_no_trainable_samples_fails_and_writes_no_bundle(setup):
    """Every profile drifted (a machine loaded throughout): a bundle of fallbacks only would
    predict silently wrong numbers, so the build stops with one line saying what to do."""
    from nnmeter_tvm.errors import MeasurementError

    cfg, rules, tmp = setup

    class Loaded(FakeBackend):
        def truth(self, model, timed=True):
            t = super().truth(model, timed)
            return KernelTruth(t.backend, t.backend_version, t.model, t.kernels, (), True, 0.3)

    with pytest.raises(MeasurementError, match="quieter"):
        _builder(cfg, rules, tmp, Loaded()).run(tmp / "bundle")
    assert not (tmp / "bundle" / "bundle.json").exists()


def test_samples_stay_within_the_budget(setup):
    cfg, rules, tmp = setup
    cfg = replace(cfg, max_samples=120, families=("resnet",))
    result = _builder(cfg, rules, tmp, FakeBackend()).run(tmp / "bundle")
    assert result.measurements <= 120 and result.samples <= result.measurements
    assert np.isfinite(load_bundle(tmp / "bundle").overhead["fixed_ms"])


def test_prior_widens_a_family_of_few_layers_without_raising_its_share(setup):
    cfg, rules, tmp = setup

    def prior(min_specs):
        b = _builder(replace(cfg, prior_min_specs=min_specs), rules, tmp, FakeBackend())
        b.predictor = Predictor(cfg.backend, rules_file=rules)
        return b.prior_models(), b.prior()

    narrow_models, narrow = prior(0)
    wide_models, wide = prior(10**6)
    assert {f: len(m) for f, m in narrow_models.items()} == {"resnet": 1, "mobilenetv2": 1}
    assert {f: len(m) for f, m in wide_models.items()} == {"resnet": 4, "mobilenetv2": 4}
    assert set(narrow) < set(wide)  # more distinct specs to draw from ...
    assert sum(wide.values()) == pytest.approx(sum(narrow.values()), rel=0.25)  # ... same weight


def test_overhead_fit_finds_a_per_kernel_cost_that_only_small_models_show():
    """Whole models whose measured time is the kernel sum less 3 µs per kernel: the fit picks
    a per-kernel form and recovers the 3 µs, although on the large models the term is lost in
    their noise; without a per-kernel effect it keeps the plain form."""
    from nnmeter_tvm.builder.training import fit_overhead

    rng = np.random.default_rng(0)
    n = np.concatenate([rng.integers(20, 120, 12), rng.integers(30, 200, 28)]).astype(float)
    sums = np.concatenate([rng.uniform(0.2, 1.5, 12), rng.uniform(5, 40, 28)])
    noise = 1 + rng.normal(0, 0.02, len(n))
    fit = fit_overhead((sums - 0.003 * n) * noise, sums, n)
    assert fit["form"].startswith("fixed+per_kernel")
    assert fit["per_kernel_ms"] == pytest.approx(-0.003, abs=0.0005)
    assert fit["loo_rmspe"] < 3
    plain = fit_overhead(sums * noise, sums, n)
    assert plain["form"] == "fixed" and plain["per_kernel_ms"] == 0.0
    # two models timed while another process loaded the machine (40 % slow) move nothing
    loaded = (sums - 0.003 * n) * noise
    loaded[[15, 30]] *= 1.4
    robust = fit_overhead(loaded, sums, n)
    assert robust["per_kernel_ms"] == pytest.approx(-0.003, abs=0.0005)
    assert robust["fixed_ms"] < 0.05


def test_chain_calibration_models_are_timed_and_fitted_for_every_family(setup):
    """The chains of tiny kernels are measured with the zoo models and come back as rows of
    family "chain", which leave-one-family-out (it drops the left-out family's rows) keeps."""
    from nnmeter_tvm.builder.kernel_models import chain_model

    cfg, rules, tmp = setup
    graph = load_graph(chain_model(12))
    assert [n.op for n in graph.nodes][:4] == ["relu", "sigmoid", "hardswish", "relu6"]
    assert len(graph.nodes) == 12
    backend = FakeBackend()
    b = _builder(replace(cfg, calib_chains=(8, 24)), rules, tmp, backend)
    b.predictor = Predictor(cfg.backend, rules_file=rules)
    assert b.measure_calibration() == 4  # two zoo models, two chains
    rows = b.calibration_rows(b.predictor, measure=False)
    assert [(f, len(k)) for f, _, k, _ in rows if f == "chain"] == [("chain", 8), ("chain", 24)]
    assert sorted(k.split(":")[1] for k in b.calib_ms) == ["chain", "chain", "mobilenetv2",
                                                           "resnet"]


def test_a_calibration_model_timed_while_the_machine_drifted_is_measured_again(setup):
    cfg, rules, tmp = setup
    cfg = replace(cfg, calib_chains=())

    class Loaded(FakeBackend):  # every attempt drifted 20 %: whole-model times not to be used
        def measure(self, model, store=None, key=None, **kw):
            return super().measure(model, store, key, drift=0.2)

    loaded = Loaded()
    assert _builder(cfg, rules, tmp, loaded).measure_calibration() == 0
    assert loaded.measure_calls == 2
    quiet = FakeBackend()
    b = _builder(cfg, rules, tmp, quiet)
    assert b.measure_calibration() == 2 and quiet.measure_calls == 2  # measured again
    assert b.measure_calibration() == 2 and quiet.measure_calls == 2  # then kept


def test_a_drifted_calibration_model_is_timed_again_between_packs(setup):
    """A calibration model that drifted before sampling is retried after a pack, up to
    ``calib_retries`` times; the chains are timed first."""
    cfg, rules, tmp = setup
    cfg = replace(cfg, calib_chains=(16,), calib_retries=2)

    class Flaky(FakeBackend):  # the chain drifts twice, then reads steady
        keys = []

        def measure(self, model, store=None, key=None, **kw):
            self.keys.append(key)
            drifted = ":chain:" in key and self.keys.count(key) <= 2
            return super().measure(model, store, key, drift=0.2 if drifted else 0.0)

    b = _builder(cfg, rules, tmp, Flaky())
    assert b.measure_calibration() == 2 and ":chain:" in Flaky.keys[0]
    b.retry_calibration()  # second try: still drifted, back in the queue
    assert b._calib_pending == [("chain", 16)]
    b.retry_calibration()  # third: steady
    assert b._calib_pending == [] and Flaky.keys.count(Flaky.keys[0]) == 3
    b.retry_calibration()  # nothing left: nothing measured
    assert len(Flaky.keys) == 5


def test_calibration_waits_out_drift_only_at_the_overhead_fit(setup):
    """Before sampling a calibration model gets ``attempts`` protocol attempts (a drifted one
    is measured again at the end rather than waited for); at the overhead fit, the protocol's
    own; profiled sessions always get ``attempts``."""
    cfg, rules, tmp = setup
    cfg = replace(cfg, calib_chains=(), attempts=2)

    class Loaded(FakeBackend):
        config = ProtocolConfig()
        attempts = []

        def measure(self, model, store=None, key=None, config=None, **kw):
            self.attempts.append(config.max_attempts)
            return super().measure(model, store, key, drift=0.2)

    b = _builder(cfg, rules, tmp, Loaded())
    b.measure_calibration()
    b.predictor = Predictor("ort-cpu", rules_file=rules)
    b.calibration_rows(b.predictor)
    assert Loaded.attempts == [2, 2, ProtocolConfig().max_attempts, ProtocolConfig().max_attempts]
    assert b._kernel_config().max_attempts == 2


def test_reprofile_times_the_same_models_again_and_keeps_the_calibration(setup, monkeypatch):
    """``build --retrain BUNDLE --reprofile``: every model the samples came from is profiled
    once more on this machine (after a fix of the profiling), the calibration times kept, the
    source bundle untouched and no working log left behind."""
    from nnmeter_tvm.builder.build import retrain

    tmp, source, before = _bundle_alone(setup)
    fake = FakeBackend()
    monkeypatch.setattr("nnmeter_tvm.backends.get_backend", lambda name, **kw: fake)
    result = retrain(tmp / "bundle", tmp / "again", progress=False, reprofile=True)
    meta = json.loads((tmp / "again" / "bundle.json").read_text())["build"]
    assert fake.truth_calls == source["build"]["models_profiled"] > 0
    assert meta["reprofiled"] is True
    assert meta["kernels_timed_this_run"] == result.measurements > 0
    assert result.samples == source["build"]["kernel_samples"]
    assert meta["calibration_ms"] == source["build"]["calibration_ms"]
    assert fake.measure_calls == 0
    assert not (tmp / "again" / "reprofile.jsonl").exists()
    assert (tmp / "bundle" / "samples.jsonl.gz").read_bytes() == before


def test_reprofile_stale_times_again_only_the_models_written_differently_now(setup,
                                                                             monkeypatch):
    """``build --retrain BUNDLE --reprofile-stale``: after a change of how kernel models are
    written (here: a pack holding a global pooling spec gains a node), only the units whose
    model has a node none of their logged kernels ran are profiled again; the others are
    kept."""
    from onnx import helper

    from nnmeter_tvm.builder import build as build_module
    from nnmeter_tvm.builder.build import bundle_builder, retrain

    tmp, source, _ = _bundle_alone(setup)
    fresh = bundle_builder(load_bundle(tmp / "bundle"))
    assert fresh.stale_units() == []  # a log just written is not stale
    write = build_module.build_model

    def written_anew(specs, seed=0, name="pack"):
        model = write(specs, seed=seed, name=name)
        if any(s["kind"] == "gpool" for s in specs):  # one more node in these packs
            out = model.graph.output[0]
            model.graph.node.append(helper.make_node("Identity", [out.name], ["again"],
                                                     name="again.identity"))
            out.name = "again"
        return model

    monkeypatch.setattr(build_module, "build_model", written_anew)
    changed = [u["unit"] for u in fresh.stale_units()]
    pools = [u for u in fresh.log.units.values()
             if u["kind"] == "pack" and any(s["kind"] == "gpool" for s in u["specs"])]
    assert changed and sorted(changed) == sorted(u["unit"] for u in pools)
    fake = FakeBackend()
    monkeypatch.setattr("nnmeter_tvm.backends.get_backend", lambda name, **kw: fake)
    result = retrain(tmp / "bundle", tmp / "again", progress=False, reprofile_stale=True)
    meta = json.loads((tmp / "again" / "bundle.json").read_text())["build"]
    assert fake.truth_calls == len(changed) and fake.measure_calls == 0
    assert meta["reprofiled"] is False and meta["reprofiled_stale_units"] == len(changed)
    assert result.samples >= source["build"]["kernel_samples"]
    assert meta["calibration_ms"] == source["build"]["calibration_ms"]
    assert not (tmp / "again" / "reprofile.jsonl").exists()


def test_reprofile_without_retrain_is_one_line(tmp_path, capsys):
    from nnmeter_tvm.cli import main

    assert main(["build", "--backend", "ort-cpu", "--reprofile", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--reprofile needs --retrain" in err and "\n" not in err


def test_extend_misuse_is_one_line(tmp_path, capsys):
    from nnmeter_tvm.cli import main

    assert main(["build", "--extend", "ort-cpu", "--retrain", "ort-cpu", "-o",
                 str(tmp_path)]) == 2
    assert "--retrain and --extend do not go together" in capsys.readouterr().err
    assert main(["build", "--extend", "ort-cpu", "--grid", "cnn", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--grid wide" in err and "\n" not in err
    assert main(["build", "--models", "m.onnx", "-o", str(tmp_path)]) == 2
    assert "--models needs --extend" in capsys.readouterr().err
    assert main(["build", "--extend", "ort-cpu", "--models", str(tmp_path / "none.onnx"),
                 "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "none.onnx" in err and "\n" not in err
