"""Ops a cost model never saw: flagged and named (``FamilyModel.unseen``), the ops grid that
samples them (``Sampler.ops``, ``build --extend BUNDLE --grid ops``), and one baseline line per
op where ops cost differently per element (``OpLines``)."""
import json

import numpy as np
import pytest

from nnmeter_tvm import features
from nnmeter_tvm.onnx_import import load_graph
from test_predictor_build import FakeBackend, _builder, setup  # noqa: F401 (a fixture)


def _binary_rows(elems, op_code: int):
    """Encoded binary-family rows: (1, 16, h, h) tensors, both operands full, op ``op_code``."""
    names = features.raw_fields("binary")
    rows = []
    for e in elems:
        h = max(1, int(np.sqrt(e / 16)))
        r = dict.fromkeys(names, 0.0)
        r.update(batch=1, c=16, h=h, w=h, a_elems=16 * h * h, b_elems=16 * h * h,
                 op_code=op_code, dtype_bytes=4)
        rows.append([r[n] for n in names])
    return features.encode("binary", np.array(rows, dtype=np.float64))


def _graph(*ops):
    """One model: each op of ``ops`` on a (1, 16, 8, 8) input of its own (a binary op on two);
    ``resize`` doubles H and W."""
    from nnmeter_tvm.zoo.builder import ModelBuilder

    b = ModelBuilder("ops")
    for i, op in enumerate(ops):
        x = b.input((1, 16, 8, 8), name=f"x{i}")
        if op == "resize":
            b.output(b.resize(x, 2, "linear", name=f"resize{i}"))
        elif op in ("add", "sub", "mul", "div", "pow"):
            y = b.input((1, 16, 8, 8), name=f"y{i}")
            b.output(getattr(b, op)(x, y, name=f"{op}{i}"))
        else:
            b.output(b.act(x, op, name=f"{op}{i}"))
    return load_graph(b.model(np.random.default_rng(0)))


def test_an_op_its_cost_model_never_saw_is_flagged_and_named():
    """The shipped bundle's binary model saw Add and Mul only: a Sub is priced by it (as before)
    but flagged, and a warning names it and the command that samples it; the Add is not."""
    from nnmeter_tvm import load_predictor

    predictor = load_predictor("ort-cpu")
    assert predictor.models["binary"].info["range"]["codes"]["op_code"] == [0.0, 2.0]
    report = predictor.predict(_graph("add", "sub"))
    by_op = {k.type: k for k in report.kernels}
    assert by_op["sub"].extrapolated and not by_op["sub"].fallback
    assert not by_op["add"].extrapolated and by_op["sub"].ms > 0
    line = [w for w in report.warnings if "never saw" in w]
    assert len(line) == 1 and "(sub)" in line[0] and "--grid ops" in line[0]
    assert not [w for w in predictor.predict(_graph("add")).warnings if "never saw" in w]


def test_the_codes_a_model_saw_are_recorded_and_come_back_from_its_bundle(tmp_path):
    from nnmeter_tvm.builder.training import train_family
    from nnmeter_tvm.predictors import Predictor, load_bundle, save_bundle

    rng = np.random.default_rng(0)
    x = np.vstack([_binary_rows(rng.integers(1000, 200000, 30), code) for code in (0, 2)])
    ms = 0.002 + x[:, features.feature_names("binary").index("bytes_in")] / 4e9
    model = train_family("binary", x, ms, feature_names=features.feature_names("binary"),
                         rounds=20).model
    assert model.info["range"]["codes"] == {"op_code": [0.0, 2.0]}
    rules = tmp_path / "rules.json"
    rules.write_text('{"backend": "ort-cpu", "rules": []}\n')
    save_bundle(Predictor("ort-cpu", models={"binary": model}, rules_file=rules),
                tmp_path / "b", rules_file=rules)
    loaded = load_bundle(tmp_path / "b").models["binary"]
    probe = np.vstack([_binary_rows([4096], code) for code in range(4)])
    assert loaded.unseen(probe).tolist() == [False, True, False, True]


def test_a_line_per_op_prices_ops_of_different_cost_per_element(tmp_path):
    """Pow costs 15x Add per element here: the ``logratio`` baseline becomes one line per op,
    each op is priced against its own line beyond the sampled sizes, and the bundle keeps both."""
    from nnmeter_tvm.builder.training import train_family
    from nnmeter_tvm.predictors import Predictor, load_bundle, save_bundle
    from nnmeter_tvm.predictors.fallback import OpLines

    rng = np.random.default_rng(1)
    x = np.vstack([_binary_rows(rng.integers(1000, 100000, 40), code) for code in (0, 4)])
    names = features.feature_names("binary")
    per_elem = np.where(x[:, names.index("op_code")] == 4, 15.0, 1.0)
    ms = 0.002 + x[:, names.index("a_elems")] * per_elem / 1e6
    model = train_family("binary", x, ms, feature_names=names, rounds=40,
                         targets=("logratio",)).model
    assert isinstance(model.baseline, OpLines)
    errors = model.info["baseline_errors"]
    assert errors["per_op"] < 0.5 * errors["one_line"]
    big_add, big_pow = _binary_rows([400000], 0), _binary_rows([400000], 4)
    elems = big_add[0, names.index("a_elems")]
    assert model.predict(big_add)[0] == pytest.approx(0.002 + elems / 1e6, rel=0.15)
    assert model.predict(big_pow)[0] == pytest.approx(0.002 + 15 * elems / 1e6, rel=0.15)
    rules = tmp_path / "rules.json"
    rules.write_text('{"backend": "ort-cpu", "rules": []}\n')
    save_bundle(Predictor("ort-cpu", models={"binary": model}, rules_file=rules),
                tmp_path / "b", rules_file=rules)
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert set(meta["families"]["binary"]["baseline"]["by_op_code"]) == {"0", "4"}
    both = np.vstack([big_add, big_pow])
    assert load_bundle(tmp_path / "b").models["binary"].predict(both) == \
        pytest.approx(model.predict(both))


def test_the_ops_grid_writes_every_op_as_a_kernel_of_its_own_that_onnxruntime_runs():
    import onnxruntime as ort

    from nnmeter_tvm import load_predictor
    from nnmeter_tvm.builder.kernel_models import build_model
    from nnmeter_tvm.builder.sampler import OPS_GRID, Sampler, ops_op

    specs = Sampler([], seed=0).ops({op: 2 for op in OPS_GRID})
    assert sorted({ops_op(s) for s in specs}, key=str) == sorted(OPS_GRID, key=str)
    assert len(specs) == 2 * len(OPS_GRID)
    model = build_model(specs, seed=0)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.standard_normal(i.shape).astype(np.float32)
             for i in session.get_inputs()}
    assert len(session.run(None, feeds)) == len(specs)
    graph = load_graph(model)
    kernels = [k for k in load_predictor("ort-cpu").partition(graph) if not k.inserted]
    assert len(kernels) == len(specs)  # one kernel per spec: nothing fused, nothing dropped
    expected = {"unary": "elementwise", "binary": "binary", "resize": "movement",
                "gather": "movement", "slice": "split"}
    for kernel in kernels:
        family, _ = features.kernel_config(kernel, graph)
        spec = specs[int(kernel.nodes[0].split(".")[0][1:])]
        assert family == expected[spec["kind"]]


def test_extend_with_the_ops_grid_gives_the_new_ops_samples_of_their_own(setup):
    from nnmeter_tvm.builder.build import extend
    from nnmeter_tvm.predictors import load_bundle

    cfg, rules, tmp = setup
    _builder(cfg, rules, tmp, FakeBackend()).run(tmp / "a")
    extend(tmp / "a", tmp / "x", progress=False, grid="ops", backend=FakeBackend())
    a, x = (json.loads((tmp / d / "bundle.json").read_text())["build"] for d in ("a", "x"))
    assert x["samples_by_origin"].pop("grid-ops") > 0 and "grid-ops" not in a["samples_by_origin"]
    assert x["config"]["grid"] == a["config"]["grid"]  # the ops grid is no build's grid
    bundle = load_bundle(tmp / "x")
    report = bundle.predict_graph(_graph("tanh", "erf", "exp", "resize"))
    assert not [w for w in report.warnings if "never saw" in w]
    assert [w for w in load_bundle(tmp / "a").predict_graph(_graph("tanh")).warnings
            if "never saw (tanh)" in w]


def test_the_ops_grid_needs_a_bundle_to_extend(tmp_path, capsys):
    from nnmeter_tvm.cli import main

    assert main(["build", "--backend", "ort-cpu", "--grid", "ops", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--grid ops adds to a built bundle; give --extend BUNDLE" in err and "\n" not in err
