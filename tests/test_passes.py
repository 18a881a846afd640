"""NNMeterEstimate: the Relax pass on zoo models before and after FuseOps, inside tvm.compile."""
from __future__ import annotations

import collections
import json

import numpy as np
import pytest

tvm = pytest.importorskip("tvm")
from tvm import relax  # noqa: E402

from nnmeter_tvm.errors import BudgetExceededError  # noqa: E402
from nnmeter_tvm.onnx_import import load_graph  # noqa: E402
from nnmeter_tvm.passes import LatencyBudget, NNMeterEstimate, relax_to_graph, report  # noqa: E402
from test_passes_support import (fuse, input_for, predictor, relax_module, run_vm, shipped,  # noqa: E402
                                 zoo_model)

# families whose ONNX ops cover the frontend's expansions: hardswish/SE (mobilenetv3), split /
# transpose / reshape (shufflenetv2), residual add (resnet), concat and avgpool (nasbench201)
FAMILIES = ("mobilenetv3", "shufflenetv2", "resnet", "squeezenet", "nasbench201")
STAGES = ("pre", "post")


def _signature(graph):
    return collections.Counter(repr((n.op, n.input_shapes, n.output_shapes, n.attrs)) for n in graph)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("family", FAMILIES)
def test_relax_graph_equals_onnx_import(family, stage):
    """Same ops, shapes and attributes as onnx_import's graph of the same model."""
    expected = _signature(load_graph(zoo_model(family)))
    got = _signature(relax_to_graph(relax_module(family, stage)).graph)
    assert got == expected, (expected - got, got - expected)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("name", ["ort-cpu", "tvm-llvm"])
@pytest.mark.parametrize("family", ["mobilenetv3", "resnet"])
def test_total_equals_predict(family, name, stage):
    if name == "tvm-llvm" and stage == "post":
        pytest.skip("tvm-llvm after FuseOps prices TVM's own kernels: see the test below")
    p = predictor(name)
    out = NNMeterEstimate(p)(relax_module(family, stage))
    expected = p.predict(zoo_model(family)).total_ms
    assert out.attrs["nnmeter.total_latency_ms"] == pytest.approx(expected, rel=1e-9)
    assert report(out).total_ms == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name", ["ort-cpu", "tvm-llvm"])
def test_total_equals_predict_cli(name, tmp_path, capsys):
    """The same number ``nnmeter-tvm predict --json`` prints."""
    if not shipped(name):
        pytest.skip(f"no shipped rules for {name} yet: the CLI cannot load it")
    import onnx

    from nnmeter_tvm.cli import main

    path = tmp_path / "m.onnx"
    onnx.save(zoo_model("resnet"), str(path))
    assert main(["predict", str(path), "--predictor", name, "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)["total_ms"]
    out = NNMeterEstimate(name)(relax_module("resnet", "pre"))
    assert out.attrs["nnmeter.total_latency_ms"] == pytest.approx(expected, rel=1e-9)


def _main_calls(mod):
    """(fused functions called, lone call_tirs) in main after FuseOps."""
    fused, lone = [], 0
    for block in mod["main"].body.blocks:
        for b in block.bindings:
            op = getattr(b.value, "op", None)
            if isinstance(op, tvm.ir.GlobalVar) and isinstance(mod[op], relax.Function):
                fused.append(op.name_hint)
            elif getattr(op, "name", "") == "relax.call_tir":
                lone += 1
    return fused, lone


def test_tvm_llvm_kernels_are_the_fused_functions():
    mod = relax_module("mobilenetv3", "post")
    out = NNMeterEstimate(predictor("tvm-llvm"))(mod)
    rep = report(out)
    fused, lone = _main_calls(mod)
    assert len(rep.kernels) == len(fused) + lone
    calls = collections.Counter(fused)
    for name, n in calls.items():
        mine = [k for k in rep.kernels if k.name.split("@")[0] == name]
        attrs = out[name].attrs
        assert len(mine) == n and attrs["nnmeter.kernel"] == mine[0].type
        assert attrs["nnmeter.latency_ms"] == pytest.approx(sum(k.ms for k in mine) / n)
        assert attrs.get("nnmeter.calls", 1) == n
        assert attrs["Primitive"]  # FuseOps' own attribute is kept
    fixed = rep.predictor.get("fixed_overhead_ms", 0.0)
    assert sum(k.ms for k in rep.kernels) + fixed == pytest.approx(rep.total_ms)


def test_ort_predictor_after_fuseops_hosts_kernels_in_fused_functions():
    mod = relax_module("resnet", "post")
    out = NNMeterEstimate(predictor("ort-cpu"))(mod)
    fused, _ = _main_calls(mod)
    annotated = [out[n].attrs for n in fused]
    assert all("nnmeter.kernel" in a and "nnmeter.latency_ms" in a for a in annotated)
    rep = report(out)
    assert sum(a["nnmeter.latency_ms"] for a in annotated) <= rep.total_ms + 1e-9


def test_attributes_before_fuseops_and_semantics_unchanged():
    mod = relax_module("mobilenetv3", "pre")
    out = NNMeterEstimate(predictor("ort-cpu"))(mod)
    rows = list(out.attrs["nnmeter.kernels"])
    # a layout kernel the backend inserts (onnxruntime's NCHWc reorders) has no Relax binding
    assert rows and all((r["bindings"] or r["nnmeter.kernel"] == "reorder")
                        and r["nnmeter.kernel"] and r["nnmeter.latency_ms"] > 0 for r in rows)
    assert any(r["bindings"] for r in rows)
    assert out.attrs["nnmeter.total_latency_ms"] > 0
    # Before/Expected: the pass adds attributes and changes no function
    for gv in mod.get_global_vars():
        tvm.ir.assert_structural_equal(out[gv.name_hint], mod[gv])
    assert mod.attrs is None or "nnmeter.total_latency_ms" not in mod.attrs  # input untouched


def test_report_roundtrip_and_missing():
    p = predictor("ort-cpu")
    out = NNMeterEstimate(p)(relax_module("resnet", "pre"))
    direct = p.predict_graph(relax_to_graph(relax_module("resnet", "pre")).graph)
    rep = report(out)
    assert [(k.name, k.type, k.nodes) for k in rep.kernels] == \
        [(k.name, k.type, k.nodes) for k in direct.kernels]
    assert [k.ms for k in rep.kernels] == pytest.approx([k.ms for k in direct.kernels])
    assert [(k.fallback, k.extrapolated) for k in rep.kernels] == \
        [(k.fallback, k.extrapolated) for k in direct.kernels]
    with pytest.raises(ValueError, match="run nnmeter_tvm.passes.NNMeterEstimate"):
        report(relax_module("resnet", "pre"))


@pytest.mark.parametrize("stage", STAGES)
def test_outputs_identical_after_pass(stage):
    mod = relax_module("squeezenet", stage)
    x = input_for()
    before = run_vm(mod, x)
    after = run_vm(NNMeterEstimate(predictor("tvm-llvm"))(mod), x)
    assert np.array_equal(before, after)


def _pipeline(*extra_after_fuseops):
    """The default CPU pipeline with passes inserted between FuseOps and FuseTIR."""
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    target = tvm.target.Target("llvm")
    legalize = [relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
                relax.transform.FoldConstant(), relax.transform.FuseOps()]

    @tvm.transform.module_pass(opt_level=0, name="PipelineWithNNMeter")
    def pipeline(mod, ctx):
        with target:
            return tvm.transform.Sequential(
                cpu.library_dispatch_passes(target) + legalize + list(extra_after_fuseops)
                + [relax.transform.FuseTIR()] + cpu.dataflow_lower_passes(target)
                + cpu.finalize_passes(target))(mod)

    return pipeline


def test_pass_inside_tvm_compile_and_sequential():
    mod = relax_module("squeezenet", "pre")
    p = predictor("tvm-llvm")
    x = input_for()
    expected = run_vm(mod, x)
    seen = []

    @tvm.ir.instrument.pass_instrument
    class Capture:
        def run_after_pass(self, m, info):
            if info.name == "NNMeterEstimate":
                seen.append(m)

    with tvm.transform.PassContext(instruments=[Capture()]):
        got = run_vm(mod, x, pipeline=_pipeline(NNMeterEstimate(p)))
    assert np.array_equal(got, expected)
    assert len(seen) == 1 and seen[0].attrs["nnmeter.total_latency_ms"] > 0
    # a user Sequential before the default pipeline
    seq = tvm.transform.Sequential([NNMeterEstimate(p),
                                    relax.pipeline.get_default_pipeline(tvm.target.Target("llvm"))])
    assert np.array_equal(run_vm(mod, x, pipeline=seq), expected)


def test_budget_failure_fails_tvm_compile():
    mod = relax_module("squeezenet", "pre")
    p = predictor("tvm-llvm")
    fused = NNMeterEstimate(p)(fuse(mod))  # the pipeline runs the pass after FuseOps
    total = fused.attrs["nnmeter.total_latency_ms"]
    budget = total / 2
    with pytest.raises(BudgetExceededError) as info:
        tvm.compile(mod, target="llvm", relax_pipeline=_pipeline(NNMeterEstimate(p, budget_ms=budget)))
    text = str(info.value)
    assert f"{total:.3f} ms" in text and f"{budget:.3f} ms" in text
    heaviest = max(report(fused).kernels, key=lambda k: k.ms)
    assert heaviest.name in text and "heaviest kernels" in text
    # within budget: compiles
    tvm.compile(mod, target="llvm", relax_pipeline=_pipeline(NNMeterEstimate(p, budget_ms=total * 2)))


def test_latency_budget_instrument_is_the_passcontext_budget():
    mod = relax_module("squeezenet", "pre")
    p = predictor("ort-cpu")
    total = NNMeterEstimate(p)(mod).attrs["nnmeter.total_latency_ms"]
    with pytest.raises(BudgetExceededError, match="exceeds the budget"):
        with tvm.transform.PassContext(instruments=[LatencyBudget(total / 3)]):
            tvm.transform.Sequential([NNMeterEstimate(p)])(mod)
    with tvm.transform.PassContext(instruments=[LatencyBudget(total * 3)]):
        tvm.transform.Sequential([NNMeterEstimate(p)])(mod)


def test_budget_config_key_cannot_be_registered_in_this_tvm():
    """Documents why LatencyBudget exists; if TVM ever accepts the key, the pass reads it."""
    try:
        ctx = tvm.transform.PassContext(config={"nnmeter.budget_ms": 0.001})
    except AttributeError as exc:
        assert "Invalid config option" in str(exc)
        return
    with pytest.raises(BudgetExceededError), ctx:
        NNMeterEstimate(predictor("ort-cpu"))(relax_module("squeezenet", "pre"))


def test_hand_written_tvmscript_module():
    from tvm.script import ir as I
    from tvm.script import relax as R

    @I.ir_module
    class Module:
        @R.function
        def main(x: R.Tensor((1, 8, 16, 16), "float32"), w: R.Tensor((16, 8, 3, 3), "float32"),
                 b: R.Tensor((1, 16, 1, 1), "float32")):
            R.func_attr({"num_input": 1})
            with R.dataflow():
                y = R.nn.conv2d(x, w, strides=[2, 2], padding=[1, 1, 1, 1])
                z = R.add(y, b)
                r = R.nn.relu(z)
                p = R.nn.max_pool2d(r, pool_size=[2, 2], strides=[2, 2])
                R.output(p)
            return p

    conv = relax_to_graph(Module)
    assert [n.op for n in conv.graph] == ["conv", "relu", "maxpool"]
    c = conv.graph.nodes[0]
    assert c.attrs["strides"] == (2, 2) and c.attrs["pads"] == (1, 1, 1, 1) and c.attrs["has_bias"]
    assert conv.placement[c.name].bindings == ("y", "z")
    out = NNMeterEstimate(predictor("ort-cpu"))(Module)
    assert out.attrs["nnmeter.total_latency_ms"] > 0
    fused = relax_to_graph(tvm.transform.Sequential([])(out))  # still readable after the pass
    assert len(fused.graph) == 3


def test_dynamic_shape_is_refused_with_a_hint():
    from tvm.script import ir as I
    from tvm.script import relax as R

    from nnmeter_tvm.errors import ShapeError

    @I.ir_module
    class Dyn:
        @R.function
        def main(x: R.Tensor(("n", 8), "float32")):
            with R.dataflow():
                y = R.nn.relu(x)
                R.output(y)
            return y

    with pytest.raises(ShapeError, match="static"):
        relax_to_graph(Dyn)
