"""``build --transfer-from``: a bundle for a new machine from a few kernels timed there and
another machine's bundle (``builder.transfer``), on fake backends with known costs."""
import numpy as np
import pytest

from nnmeter_tvm import features, zoo
from nnmeter_tvm.onnx_import import load_graph
from nnmeter_tvm.predictors import load_bundle
# setup: a fixture
from test_predictor_build import DriftingFirst, FakeBackend, _builder, setup  # noqa: F401


class NewMachine(FakeBackend):
    """Compute twice as slow, memory twice as fast, launches dearer: how much slower a kernel
    is here depends on its arithmetic intensity, not on its family alone."""

    launch_ms, flops_per_ms, bytes_per_ms = 0.004, 0.5e9, 8e9


def _truth_ms(backend, model) -> float:
    return 0.03 + sum(k.ms for k in backend._kernels(model))


def _moved(setup, monkeypatch, max_samples=80, here=None):
    """(source bundle, transferred bundle, the new machine, the transfer's result)."""
    from nnmeter_tvm.builder.transfer import transfer

    cfg, rules, tmp = setup
    _builder(cfg, rules, tmp, FakeBackend()).run(tmp / "source")
    monkeypatch.setenv("NNMETER_TVM_STORE", str(tmp / "new-machine.sqlite"))
    here = here or NewMachine()
    result = transfer(tmp / "source", tmp / "moved", store=tmp / "new.jsonl", progress=False,
                      rules_file=rules, backend=here, max_samples=max_samples)
    return load_bundle(tmp / "source"), load_bundle(tmp / "moved"), here, result


def test_a_transfer_times_few_kernels_and_prices_the_new_machine(setup, monkeypatch):
    source, moved, here, result = _moved(setup, monkeypatch)
    assert 0 < result.measurements <= 80 and result.carried > result.samples
    build = moved.meta["build"]
    assert build["kernels_timed"] == result.measurements
    assert build["transferred_from"]["samples_carried"] == result.carried
    assert build["transferred_from"]["ratios"]["conv"]["samples_here"] > 0
    assert set(build["calibration_ms"]) == set(source.meta["build"]["calibration_ms"])
    model = zoo.generate("resnet", 0, 0, 32)
    truth = _truth_ms(here, model)
    graph = load_graph(model)
    err_moved = abs(moved.predict_graph(graph).total_ms / truth - 1)
    err_source = abs(source.predict_graph(graph).total_ms / truth - 1)
    assert err_moved < 0.2 and err_moved < err_source / 2


def test_a_transfer_times_its_drifted_units_again_before_the_fit(setup, monkeypatch):
    """As a build does: a unit profiled while the machine drifted gives no sample until it is
    measured again, which the transfer does while its budget has room (here, for all)."""

    class Drifting(DriftingFirst, NewMachine):  # the new machine, each first profile drifted
        pass

    _, moved, _, result = _moved(setup, monkeypatch, max_samples=10_000, here=Drifting())
    drift = moved.meta["build"]["drift"]
    assert drift["units_measured_again"] > 0 and drift["kernels_timed_again"] > 0
    assert result.drifted == 0 and result.samples > 0


def test_a_transferred_bundle_cannot_be_retrained_from_its_own_samples(setup, monkeypatch):
    from nnmeter_tvm.builder.build import retrain
    from nnmeter_tvm.errors import BundleError

    _, _, _, result = _moved(setup, monkeypatch, max_samples=40)
    with pytest.raises(BundleError, match="transferred from .*--transfer-from"):
        retrain(result.bundle, result.bundle.parent / "again", progress=False)


def test_kernel_ratios_follow_the_kernel_not_just_its_family():
    """Here, a conv with 64 input channels or more takes 1.5x the source's time and a narrower
    one 3x: one factor per family would miss both; the per-kernel model follows them.  A
    family with no sample here takes the median of all."""
    from nnmeter_tvm.builder.transfer import KernelRatios

    cin = features.feature_names("conv").index("cin")
    source_ms = lambda x: np.asarray(x)[:, cin] * 0.001 + 0.01  # noqa: E731
    model = type("ConvModel", (), {"predict": staticmethod(source_ms)})
    source = type("Source", (), {"models": {"conv": model}})
    rows, factors = [], []
    for raw in _conv_configs():
        x = features.encode("conv", np.array([raw], dtype=np.float64))
        factors.append(1.5 if x[0, cin] >= 64 else 3.0)
        rows.append({"family": "conv", "raw": list(raw), "ms": float(source_ms(x)[0])
                     * factors[-1]})
    factors = np.array(factors)
    assert 10 <= np.sum(factors == 1.5) <= len(rows) - 10  # both kinds, enough of each
    ratios = KernelRatios(source, features, rows)
    assert "conv" in ratios.models
    got = ratios("conv", np.array([r["raw"] for r in rows]))
    assert np.median(got[factors == 1.5]) == pytest.approx(1.5, rel=0.1)
    assert np.median(got[factors == 3.0]) == pytest.approx(3.0, rel=0.1)
    assert ratios("pool", np.zeros((2, 3)))[0] == ratios.overall == ratios.medians["conv"]
    assert ratios.summary()["conv"] == {"samples_here": len(rows), "by": "model",
                                        "median_ratio": round(ratios.medians["conv"], 4)}


def _conv_configs() -> list:
    """The distinct raw configurations of the convs of a few zoo models."""
    from nnmeter_tvm.kernels import partition
    from nnmeter_tvm.rules import from_dict
    from test_predictor_build import RULES

    seen = {}
    for family in ("resnet", "mobilenetv2", "squeezenet"):
        for index in range(2):
            graph = load_graph(zoo.generate(family, 0, index, 32))
            for kernel in partition(graph, from_dict(RULES)):
                fam, raw = features.kernel_config(kernel, graph)
                if fam == "conv":
                    seen[tuple(float(v) for v in raw)] = None
    return list(seen)


def test_transfer_misuse_is_one_line(tmp_path, capsys):
    from nnmeter_tvm.cli import main

    assert main(["build", "--transfer-from", "ort-cpu", "--retrain", "ort-cpu", "-o",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--retrain and --transfer-from do not go together" in err and "\n" not in err
    assert main(["build", "--transfer-from", "ort-cpu", "--backend", "tvm-llvm", "-o",
                 str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert "a bundle for 'ort-cpu', not 'tvm-llvm'" in err and "\n" not in err


def test_the_plan_takes_the_sources_zoo_models_first_then_its_packs_shuffled():
    from nnmeter_tvm.builder.transfer import source_plan

    units = {f"pack:{i}": {"unit": f"pack:{i}", "kind": "pack", "kernels": [1]} for i in range(8)}
    units["zoo:a"] = {"unit": "zoo:a", "kind": "zoo", "kernels": [1, 2]}
    units["pack:failed"] = {"unit": "pack:failed", "kind": "pack", "kernels": []}
    log = type("Log", (), {"units": units})
    plan = [u["unit"] for u in source_plan(log, seed=0)]
    assert plan[0] == "zoo:a" and sorted(plan[1:]) == sorted(f"pack:{i}" for i in range(8))
    assert plan[1:] != sorted(plan[1:])  # shuffled, the same way for the same seed
    assert plan == [u["unit"] for u in source_plan(log, seed=0)]
    assert plan != [u["unit"] for u in source_plan(log, seed=1)]
    assert [u["unit"] for u in source_plan(log, 0, zoo_first=False)] == plan[1:]
