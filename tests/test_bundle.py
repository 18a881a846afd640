"""Bundles: save/load round trip, version checks, clear errors for broken bundles, no pickles."""
import json
import warnings

import numpy as np
import pytest

from nnmeter_tvm.errors import BundleError, UnknownNameError
from nnmeter_tvm.onnx_import import load_graph
from nnmeter_tvm.predictors import load_bundle, load_predictor, save_bundle
from nnmeter_tvm.predictors.bundle import FORMAT_VERSION, machine_info

from _predictor_helpers import chain_kernels, small_model, synthetic_conv_predictor


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return synthetic_conv_predictor(tmp_path_factory.mktemp("trained"))


@pytest.fixture()
def saved(trained, tmp_path):
    pred, rules = trained
    out = tmp_path / "bundle"
    save_bundle(pred, out, rules_file=rules)
    return pred, out


def _edit_meta(path, **changes):
    meta = json.loads((path / "bundle.json").read_text())
    for key, value in changes.items():
        cur = meta
        *parents, last = key.split(".")
        for p in parents:
            cur = cur[p]
        cur[last] = value
    (path / "bundle.json").write_text(json.dumps(meta))


def test_layout_is_json_only(saved):
    _, out = saved
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["bundle.json", "models/conv.json", "rules.json"]
    for f in files:
        json.loads((out / f).read_text())  # every file is JSON, nothing pickled
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["backend"]["name"] == "ort-cpu"
    assert meta["machine"]["cpu_model"] == machine_info()["cpu_model"]
    assert meta["families"]["conv"]["samples"] == 80
    assert "acc10" in meta["families"]["conv"]["heldout"]


def test_round_trip_gives_identical_predictions(saved):
    pred, out = saved
    loaded = load_bundle(out)
    graph = load_graph(small_model())
    kernels = chain_kernels(graph)
    a, b = pred.predict_kernels(graph, kernels), loaded.predict_kernels(graph, kernels)
    assert [k.ms for k in a.kernels] == [k.ms for k in b.kernels]
    assert a.total_ms == b.total_ms
    assert [k.fallback for k in a.kernels] == [k.fallback for k in b.kernels]
    assert [k.extrapolated for k in a.kernels] == [k.extrapolated for k in b.kernels]
    assert loaded.models["conv"].info["range"] == pred.models["conv"].info["range"]
    assert loaded.models["conv"].target == pred.models["conv"].target
    # and by path through load_predictor
    assert load_predictor(str(out)).predict_kernels(graph, kernels).total_ms == a.total_ms


def test_schema_version_mismatch_is_refused(saved):
    _, out = saved
    _edit_meta(out, schema_version=-1)
    with pytest.raises(BundleError, match="feature-schema version -1"):
        load_bundle(out)


def test_a_bundle_of_the_previous_schema_is_refused_with_the_retrain_command(saved):
    """Schema 3's lines read the FLOPs of blocked channels: a schema-2 bundle's lines do not,
    so it is trained again from its samples, not read."""
    _, out = saved
    _edit_meta(out, schema_version=2)
    with pytest.raises(BundleError, match=r"feature-schema version 2.*build --retrain"):
        load_bundle(out)


def test_format_version_mismatch_is_refused(saved):
    _, out = saved
    _edit_meta(out, format_version=FORMAT_VERSION + 1)
    with pytest.raises(BundleError, match="format version"):
        load_bundle(out)


def test_corrupted_model_file(saved):
    _, out = saved
    path = out / "models" / "conv.json"
    path.write_text(path.read_text()[:100])
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(out)


def test_unreadable_model_even_with_matching_checksum(saved):
    _, out = saved
    path = out / "models" / "conv.json"
    path.write_text("{not json")
    import hashlib

    _edit_meta(out, **{"families.conv.sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    with pytest.raises(BundleError, match="cannot load the XGBoost model"):
        load_bundle(out)


def test_corrupted_metadata(saved):
    _, out = saved
    (out / "bundle.json").write_text('{"format": "nnmeter-tvm-bundle", ')
    with pytest.raises(BundleError, match="corrupted"):
        load_bundle(out)


def test_missing_files(saved, tmp_path):
    _, out = saved
    with pytest.raises(BundleError, match="no bundle.json"):
        load_bundle(tmp_path / "nowhere")
    (out / "rules.json").unlink()
    with pytest.raises(BundleError, match="rules.json is missing"):
        load_bundle(out)


def test_other_cpu_and_backend_version_warn(saved):
    _, out = saved
    _edit_meta(out, **{"machine.cpu_model": "Some Other CPU", "backend.version": "0.0.1"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_bundle(out)
    text = " ".join(str(w.message) for w in caught)
    assert "Some Other CPU" in text and "0.0.1" in text
    assert len(loaded.warnings) == 2
    graph = load_graph(small_model())
    report = loaded.predict_kernels(graph, chain_kernels(graph))
    assert any("Some Other CPU" in w for w in report.warnings)


def test_the_cli_prints_a_bundle_mismatch_once_in_its_report(tmp_path):
    """``predict`` with a bundle built on another CPU: the report says so, once, and stderr has
    no Python warning with a source line beside it (the Python API still warns).  A real
    process: pytest would capture the warning itself."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import nnmeter_tvm
    from nnmeter_tvm.errors import MismatchWarning

    package = Path(nnmeter_tvm.__file__).parent
    out = tmp_path / "bundle"
    shutil.copytree(package / "predictors" / "bundles" / "ort-cpu", out)
    _edit_meta(out, **{"machine.cpu_model": "Some Other CPU"})
    with pytest.warns(MismatchWarning, match="Some Other CPU"):
        load_bundle(out)
    example = package / "zoo" / "examples" / "mobilenetv2.onnx"
    run = subprocess.run([sys.executable, "-m", "nnmeter_tvm", "predict", str(example),
                          "--predictor", str(out)], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)  # not the checkout, whose nnmeter_tvm/ lacks rules/
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("Some Other CPU") == 1
    assert run.stderr == ""


def test_other_cpu_warning_names_a_shipped_bundle_built_on_this_cpu(saved, monkeypatch):
    """The warning says what to use instead: a shipped bundle of the backend built on this
    CPU model when there is one (by name), else the build command."""
    from nnmeter_tvm.predictors import bundle as bundle_mod

    _, out = saved
    backend = json.loads((out / "bundle.json").read_text())["backend"]["name"]
    _edit_meta(out, **{"machine.cpu_model": "Some Other CPU"})
    shipped = out.parent / "shipped"
    (shipped / "here-built").mkdir(parents=True)
    (shipped / "here-built" / "bundle.json").write_text(json.dumps(
        {"backend": {"name": backend}, "machine": {"cpu_model": machine_info()["cpu_model"]}}))
    monkeypatch.setattr(bundle_mod, "SHIPPED", shipped)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        loaded = load_bundle(out)
    assert "'here-built' was built on this CPU (--predictor here-built)" in loaded.warnings[0]
    (shipped / "here-built" / "bundle.json").unlink()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        loaded = load_bundle(out)
    assert f"nnmeter-tvm build --backend {backend} -o DIR" in loaded.warnings[0]
    assert "nnmeter-tvm build --transfer-from BUNDLE -o DIR" in loaded.warnings[0]


def test_unknown_predictor_name_lists_valid():
    with pytest.raises(UnknownNameError, match="ort-cpu"):
        load_predictor("no-such-backend")


def test_overhead_recorded_and_used(saved):
    pred, out = saved
    loaded = load_bundle(out)
    assert loaded.overhead["fixed_ms"] == pytest.approx(0.05)
    graph = load_graph(small_model())
    kernels = chain_kernels(graph)
    report = loaded.predict_kernels(graph, kernels)
    assert report.total_ms == pytest.approx(0.05 + sum(k.ms for k in report.kernels))
    assert report.predictor["fixed_overhead_ms"] == pytest.approx(0.05)
    assert np.all(np.array([k.ms for k in report.kernels]) > 0.002)


def _conv_rows(channels, layout=0):
    """Encoded rows of 3x3 stride-1 convs on 16x16 with ``channels`` in and out."""
    from nnmeter_tvm import features

    fam = features.FAMILIES["conv"]
    rows = []
    for c in channels:
        r = dict.fromkeys(fam.raw, 0)
        r.update(batch=1, cin=c, hin=16, win=16, cout=c, kh=3, kw=3, sh=1, sw=1, dh=1, dw=1,
                 groups=1, pad_t=1, pad_l=1, pad_b=1, pad_r=1, dtype_bytes=4, layout=layout)
        rows.append(list(r.values()))
    return features.encode("conv", np.array(rows, dtype=np.float64))


def test_a_line_per_layout_follows_two_backend_paths_and_round_trips(tmp_path):
    """One backend path ten times slower than the other for the same work: the ``logratio``
    baseline becomes one line per layout (it cuts the line's held-out error), each path is
    priced against its own line, and the bundle keeps both."""
    from nnmeter_tvm import features
    from nnmeter_tvm.builder.training import train_family
    from nnmeter_tvm.features.schema import LAYOUT_CODES
    from nnmeter_tvm.predictors import Predictor
    from nnmeter_tvm.predictors.fallback import LayoutLines

    rng = np.random.default_rng(2)
    plain, blocked = LAYOUT_CODES.index("plain"), LAYOUT_CODES.index("blocked")
    x = np.vstack([_conv_rows(rng.integers(8, 64, 40), plain),
                   _conv_rows(rng.integers(8, 64, 40), blocked)])
    names = features.feature_names("conv")
    flops = x[:, names.index("flops")]
    ms = 0.005 + flops / 2e7 * np.where(x[:, names.index("layout")] == plain, 10.0, 1.0)
    model = train_family("conv", x, ms, feature_names=names, rounds=40,
                         targets=("logratio",)).model
    assert isinstance(model.baseline, LayoutLines)
    errors = model.info["baseline_errors"]
    assert errors["per_layout"] < 0.5 * errors["one_line"]
    big_plain, big_blocked = _conv_rows([256], plain), _conv_rows([256], blocked)
    true = 0.005 + big_blocked[0, names.index("flops")] / 2e7
    assert abs(model.predict(big_blocked)[0] / true - 1) < 0.15
    assert abs(model.predict(big_plain)[0] / (10 * true) - 1) < 0.15
    rules = tmp_path / "rules.json"
    rules.write_text('{"backend": "ort-cpu", "rules": []}\n')
    pred = Predictor("ort-cpu", models={"conv": model}, rules_file=rules)
    save_bundle(pred, tmp_path / "b", rules_file=rules)
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert set(meta["families"]["conv"]["baseline"]["by_layout"]) == {"plain", "blocked"}
    loaded = load_bundle(tmp_path / "b").models["conv"]
    both = np.vstack([big_plain, big_blocked])
    assert loaded.predict(both) == pytest.approx(model.predict(both))


def test_one_line_is_kept_when_the_layouts_cost_alike():
    from nnmeter_tvm import features
    from nnmeter_tvm.builder.training import choose_baseline
    from nnmeter_tvm.features.schema import LAYOUT_CODES
    from nnmeter_tvm.predictors.fallback import GenericModel

    rng = np.random.default_rng(3)
    x = np.vstack([_conv_rows(rng.integers(8, 64, 40), LAYOUT_CODES.index(name))
                   for name in ("plain", "blocked")])
    ms = 0.005 + x[:, features.feature_names("conv").index("flops")] / 2e7
    ms *= rng.uniform(0.95, 1.05, len(ms))
    baseline, errors = choose_baseline("conv", x, ms)
    assert isinstance(baseline, GenericModel) and errors["per_layout"] > 0.9 * errors["one_line"]


def test_logratio_target_round_trips_and_extrapolates(tmp_path):
    """A ``logratio`` model keeps its baseline in the bundle and, past the largest sample,
    grows with the work; a plain ``log`` model stays at the edge sample's time."""
    from nnmeter_tvm import features
    from nnmeter_tvm.builder.training import train_family
    from nnmeter_tvm.predictors import Predictor

    rng = np.random.default_rng(1)
    conv_rows = _conv_rows

    x = conv_rows(rng.integers(8, 64, 60))
    flops = x[:, features.feature_names("conv").index("flops")]
    ms = 0.005 + flops / 2e7
    names = features.feature_names("conv")
    big = conv_rows([256])  # 16x the FLOPs of the largest sample
    true_big = 0.005 + big[0, names.index("flops")] / 2e7
    fits = {t: train_family("conv", x, ms, feature_names=names, rounds=40, targets=(t,)).model
            for t in ("log", "logratio")}
    assert fits["logratio"].target == "logratio" and fits["logratio"].baseline is not None
    assert abs(fits["logratio"].predict(big)[0] / true_big - 1) < 0.10
    assert fits["log"].predict(big)[0] < 0.2 * true_big
    rules = tmp_path / "rules.json"
    rules.write_text('{"backend": "ort-cpu", "rules": []}\n')
    pred = Predictor("ort-cpu", models={"conv": fits["logratio"]}, rules_file=rules)
    save_bundle(pred, tmp_path / "b", rules_file=rules)
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert meta["families"]["conv"]["baseline"]["c_flop"] > 0
    loaded = load_bundle(tmp_path / "b")
    assert loaded.models["conv"].predict(big) == pytest.approx(pred.models["conv"].predict(big))
    assert loaded._cost_models({"conv": big})["conv"] == pytest.approx(
        pred.models["conv"].predict(big))
