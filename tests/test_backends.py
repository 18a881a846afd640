"""Backends: registry, ground-truth kernels on hand-built graphs whose fusions onnxruntime and
TVM document, measurement records, and errors.  Tiny models only; no absolute times."""
import json

import numpy as np
import pytest
from onnx import helper

from helpers import make_model, weights
from nnmeter_tvm.backends import BACKENDS, ProtocolConfig, get_backend
from nnmeter_tvm.backends.store import Store
from nnmeter_tvm.errors import BackendError, UnknownNameError


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    lock = tmp_path_factory.mktemp("lock") / "measure.lock"
    return ProtocolConfig(warmup_runs=2, warmup_s=0.0, min_runs=5, min_time_s=0.01,
                          max_attempts=1, lock_path=str(lock))


@pytest.fixture(scope="module")
def ort(fast):
    return get_backend("ort-cpu", config=fast)


@pytest.fixture(scope="module")
def tvm_backend(fast):
    pytest.importorskip("tvm")
    return get_backend("tvm-llvm", config=fast)


def node(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs, name=outs[0], **attrs)


def conv(x, out, cin, cout, k=3, bias=False, name=None):
    """A Conv node named ``out`` and its initializers."""
    inits = {f"{out}.w": weights(cout, cin, k, k, seed=len(out))}
    ins = [x, f"{out}.w"]
    if bias:
        inits[f"{out}.b"] = weights(cout, seed=1)
        ins.append(f"{out}.b")
    pads = [k // 2] * 4
    return node("Conv", ins, [out], kernel_shape=[k, k], pads=pads), inits


def bn(x, out, c):
    inits = {f"{out}.s": weights(c, seed=2), f"{out}.b": weights(c, seed=3),
             f"{out}.m": weights(c, seed=4), f"{out}.v": np.abs(weights(c, seed=5)) + 0.5}
    return node("BatchNormalization", [x, f"{out}.s", f"{out}.b", f"{out}.m", f"{out}.v"],
                [out]), inits


def chain(*parts):
    nodes, inits = [], {}
    for n, i in parts:
        nodes.append(n)
        inits.update(i)
    return nodes, inits


# ---- models whose onnxruntime fusions are documented ------------------------------------

def conv_bn():
    nodes, inits = chain(conv("x", "c", 16, 16), bn("c", "y", 16))
    return make_model(nodes, [("x", (1, 16, 8, 8))], [("y", (1, 16, 8, 8))], inits)


def conv_relu():
    nodes, inits = chain(conv("x", "c", 16, 16, bias=True), (node("Relu", ["c"], ["y"]), {}))
    return make_model(nodes, [("x", (1, 16, 8, 8))], [("y", (1, 16, 8, 8))], inits)


def conv_clip():
    inits = {"lo": np.array(0.0), "hi": np.array(6.0)}
    nodes, more = chain(conv("x", "c", 16, 16), (node("Clip", ["c", "lo", "hi"], ["y"]), {}))
    return make_model(nodes, [("x", (1, 16, 8, 8))], [("y", (1, 16, 8, 8))], {**inits, **more})


def conv_add_relu():
    """x -> conv a -> relu r -> conv b -> add(+r) -> relu y: the residual block."""
    nodes, inits = chain(conv("x", "a", 16, 16), (node("Relu", ["a"], ["r"]), {}),
                         conv("r", "b", 16, 16), (node("Add", ["b", "r"], ["s"]), {}),
                         (node("Relu", ["s"], ["y"]), {}))
    return make_model(nodes, [("x", (1, 16, 8, 8))], [("y", (1, 16, 8, 8))], inits)


def gemm_relu():
    nodes = [node("Gemm", ["x", "w", "b"], ["g"], transB=1), node("Relu", ["g"], ["y"])]
    return make_model(nodes, [("x", (1, 32))], [("y", (1, 8))],
                      {"w": weights(8, 32), "b": weights(8, seed=1)})


def matmul_add():
    nodes = [node("MatMul", ["x", "w"], ["m"]), node("Add", ["m", "b"], ["y"])]
    return make_model(nodes, [("x", (4, 32))], [("y", (4, 8))],
                      {"w": weights(32, 8), "b": weights(8, seed=1)})


def with_identity():
    nodes, inits = chain(conv("x", "c", 16, 16), (node("Identity", ["c"], ["i"]), {}),
                         (node("Relu", ["i"], ["y"]), {}))
    return make_model(nodes, [("x", (1, 16, 8, 8))], [("y", (1, 16, 8, 8))], inits)


def kernel_with(truth, name):
    found = [k for k in truth.kernels if name in k.nodes]
    assert len(found) == 1, (name, truth.kernels)
    return found[0]


def assert_accounted(truth, model):
    names = [n.name for n in model.graph.node]
    members = [n for k in truth.kernels for n in k.nodes]
    assert sorted(members + list(truth.eliminated)) == sorted(names)


# ---- registry ---------------------------------------------------------------------------

def test_registry_lists_both_backends():
    assert set(BACKENDS) == {"ort-cpu", "tvm-llvm"}
    assert get_backend("ort-cpu").name == "ort-cpu"


def test_unknown_backend_names_the_valid_ones():
    with pytest.raises(UnknownNameError, match="unknown backend 'gpu'.*ort-cpu, tvm-llvm"):
        get_backend("gpu")


# ---- onnxruntime ground truth -----------------------------------------------------------

@pytest.mark.parametrize("build, together", [
    (conv_bn, {"c", "y"}),               # BatchNormalization folded into the Conv
    (conv_relu, {"c", "y"}),             # FusedConv, activation=Relu
    (conv_clip, {"c", "y"}),             # FusedConv, activation=Clip
    (conv_add_relu, {"b", "s", "y"}),    # NchwcConv with the Add as Sum input, and Relu
    (gemm_relu, {"g", "y"}),             # FusedGemm
    (matmul_add, {"m", "y"}),            # MatMulAddFusion -> Gemm
])
def test_ort_truth_recovers_documented_fusions(ort, build, together):
    model = build()
    truth = ort.truth(model)
    k = kernel_with(truth, sorted(together)[0])
    assert set(k.nodes) == together and not k.inserted
    assert k.ms is not None and k.ms >= 0
    assert_accounted(truth, model)


def test_ort_truth_puts_the_reshapes_around_a_3d_gemm_in_its_kernel(ort):
    """MatMul + bias Add over a (1, tokens, width) input: onnxruntime runs Reshape, Gemm,
    Reshape (MatMulAddFusion); the Reshapes replace no node of the model, and are the Gemm's
    kernel, not inserted ones (the partition forms one kernel, gemm-add).  A SkipLayerNorm
    after a residual Add runs both nodes."""
    nodes = [node("MatMul", ["x", "w"], ["m"]), node("Add", ["m", "b"], ["p"]),
             node("Add", ["p", "x"], ["r"]),
             node("LayerNormalization", ["r", "g", "beta"], ["y"], axis=-1)]
    model = make_model(nodes, [("x", (1, 6, 16))], [("y", (1, 6, 16))],
                       {"w": weights(16, 16), "b": weights(16, seed=1), "g": np.ones(16),
                        "beta": np.zeros(16)}, opset=17)
    truth = ort.truth(model, timed=False)
    assert not [k for k in truth.kernels if k.inserted]
    gemm = kernel_with(truth, "m")
    assert set(gemm.nodes) == {"m", "p"} and "Gemm" in gemm.op_type
    assert set(kernel_with(truth, "y").nodes) == {"r", "y"}
    assert_accounted(truth, model)


def test_ort_truth_reports_inserted_reorders_and_eliminated_identity(ort):
    model = with_identity()
    truth = ort.truth(model, timed=False)
    assert "i" in truth.eliminated
    assert set(kernel_with(truth, "c").nodes) == {"c", "y"}
    inserted = [k for k in truth.kernels if k.inserted]
    assert inserted and all(k.nodes == () for k in inserted)
    assert {k.op_type for k in inserted} <= {"ReorderInput", "ReorderOutput"}
    # each names the plain-layout tensor it converts: x into the blocked conv, y out of it
    assert sorted((k.op_type, k.tensor) for k in inserted) == [("ReorderInput", "x"),
                                                               ("ReorderOutput", "y")]
    assert all(k.tensor == "" for k in truth.kernels if not k.inserted)
    assert all(k.ms is None for k in truth.kernels) and truth.total_ms is None
    assert_accounted(truth, model)


def test_ort_truth_one_node_run_as_two_is_one_kernel(ort):
    """HardSwish on a plain tensor: onnxruntime inlines it as two unnamed nodes (HardSigmoid,
    Mul); both run the one original node, so they form one kernel, timed."""
    model = make_model([node("Sigmoid", ["x"], ["s"]), node("HardSwish", ["s"], ["y"])],
                       [("x", (1, 8, 4, 4))], [("y", (1, 8, 4, 4))])
    truth = ort.truth(model)
    k = kernel_with(truth, "y")
    assert k.nodes == ("y",) and k.op_type == "HardSigmoid+Mul" and k.ms is not None
    assert_accounted(truth, model)


def test_ort_truth_common_subexpression_is_eliminated(ort):
    """Two identical Relus of one tensor: onnxruntime keeps one; the other runs in no kernel."""
    nodes = [node("Relu", ["x"], ["r1"]), node("Relu", ["x"], ["r2"]),
             node("Add", ["r1", "r2"], ["y"])]
    model = make_model(nodes, [("x", (1, 8))], [("y", (1, 8))])
    truth = ort.truth(model, timed=False)
    assert len([n for n in ("r1", "r2") if n in truth.eliminated]) == 1
    assert_accounted(truth, model)


def test_ort_truth_two_convs_stay_two_kernels(ort):
    model = conv_add_relu()
    truth = ort.truth(model, timed=False)
    assert kernel_with(truth, "a") is not kernel_with(truth, "b")
    assert set(kernel_with(truth, "a").nodes) == {"a", "r"}


def test_ort_truth_conv_left_apart_from_add_by_nchwc(ort):
    """x(18ch) -> conv a -> bn -> {relu -> y1; conv b -> bn -> add(+a) -> relu y}.  With the
    NCHWc stage on, onnxruntime skips Conv+Add+Relu fusion for conv b (it will be NCHWc), and
    the NCHWc stage cannot take the Add (a stays plain): Conv, Add and Relu run apart."""
    nodes, inits = chain(conv("x", "a", 18, 32), bn("a", "an", 32),
                         (node("Relu", ["an"], ["y1"]), {}),
                         conv("an", "b", 32, 32), bn("b", "bn", 32),
                         (node("Add", ["an", "bn"], ["s"]), {}), (node("Relu", ["s"], ["y"]), {}))
    model = make_model(nodes, [("x", (1, 18, 8, 8))],
                       [("y", (1, 32, 8, 8)), ("y1", (1, 32, 8, 8))], inits)
    truth = ort.truth(model, timed=False)
    assert set(kernel_with(truth, "a").nodes) == {"a", "an"}
    assert set(kernel_with(truth, "b").nodes) == {"b", "bn"}
    assert kernel_with(truth, "s").nodes == ("s",)
    assert kernel_with(truth, "y").nodes == ("y",)
    assert kernel_with(truth, "y1").nodes == ("y1",)
    inserted = [k for k in truth.kernels if k.inserted]
    assert {k.op_type for k in inserted} <= {"ReorderInput", "ReorderOutput"}
    assert_accounted(truth, model)


def test_ort_truth_chained_sum_inputs_go_to_the_conv_that_adds_them(ort):
    """y = (conv a + relu r) + conv c, 25 channels (plain layout): onnxruntime runs
    FusedConv(a, sum=r) writing s and FusedConv(c, sum=s) writing y; s belongs to a's kernel,
    not to c's (whose sum input it only is)."""
    nodes, inits = chain(conv("x", "a", 25, 25, bias=True), conv("x", "c", 25, 25, bias=True),
                         (node("Relu", ["x"], ["r"]), {}), (node("Add", ["a", "r"], ["s"]), {}),
                         (node("Add", ["s", "c"], ["y"]), {}))
    model = make_model(nodes, [("x", (1, 25, 8, 8))], [("y", (1, 25, 8, 8))], inits)
    truth = ort.truth(model, timed=False)
    assert set(kernel_with(truth, "a").nodes) == {"a", "s"}
    assert set(kernel_with(truth, "c").nodes) == {"c", "y"}
    assert_accounted(truth, model)


# ---- measurement ------------------------------------------------------------------------

def test_measure_records_statistics_and_context(ort, tmp_path):
    store = Store(tmp_path / "s.sqlite")
    m = ort.measure(conv_relu(), store=store)
    assert m.ok and m.error is None
    assert 0 < m.p10_ms <= m.median_ms <= m.p90_ms
    assert m.runs >= 5 and m.threads == 1 and m.backend == "ort-cpu"
    assert m.machine["cpu_model"] and "python" in m.machine
    assert m.key.startswith("g@") and m.backend_version == ort.version()
    assert store.get("ort-cpu", m.key) == m


def test_measure_over_the_time_limit_is_recorded_failed(ort, tmp_path):
    store = Store(tmp_path / "s.sqlite")
    m = ort.measure(conv_relu(), timeout_s=1e-4, store=store, key="slow")
    assert m.status == "failed" and m.median_ms is None and "time limit" in m.error
    assert store.get("ort-cpu", "slow") is None
    assert store.rows(key="slow", status="failed")


def test_same_model_gives_same_key(ort):
    from nnmeter_tvm.backends.base import load
    assert load(conv_relu()).key() == load(conv_relu()).key() != load(conv_bn()).key()


def test_run_once_agrees_between_backends(ort, tvm_backend):
    model = conv_relu()
    a, = ort.run_once(model)
    b, = tvm_backend.run_once(model)
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


# ---- errors -----------------------------------------------------------------------------

def unsupported_by_ort():
    from onnx import TensorProto

    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["y"], name="f", domain="com.example")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 4))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 4))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    return model


def test_ort_unsupported_op_names_backend_and_op(ort, tmp_path):
    store = Store(tmp_path / "s.sqlite")
    with pytest.raises(BackendError, match=r"^ort-cpu: .*Frobnicate") as err:
        ort.measure(unsupported_by_ort(), store=store, key="bad")
    assert "\n" not in str(err.value)
    assert store.rows(key="bad", status="failed")


def test_tvm_unsupported_op_names_backend_model_and_op(tvm_backend, tmp_path):
    model = make_model([node("Det", ["x"], ["y"])], [("x", (3, 3))], [("y", ())])
    path = tmp_path / "det.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(BackendError, match=r"^tvm-llvm: .*det\.onnx.*Det"):
        tvm_backend.prepare(str(path))


# ---- TVM ground truth -------------------------------------------------------------------

def test_tvm_groups_conv_add_relu_chain(tvm_backend):
    model = conv_add_relu()
    truth = tvm_backend.truth(model)
    k = kernel_with(truth, "b")
    assert set(k.nodes) == {"b", "s", "y"}
    assert "conv2d" in k.op_type and "relu" in k.op_type
    assert set(kernel_with(truth, "a").nodes) == {"a", "r"}
    assert all(k.ms is not None for k in truth.kernels)
    assert_accounted(truth, model)


def test_tvm_truth_times_each_call_in_every_profiled_vm(tvm_backend, monkeypatch):
    from nnmeter_tvm.backends import tvm_llvm

    sessions = []
    real = tvm_llvm.timed_calls

    def counted(runner, *args, **kwargs):
        sessions.append(runner.vm)
        return real(runner, *args, **kwargs)

    monkeypatch.setattr(tvm_llvm, "timed_calls", counted)
    monkeypatch.setattr(tvm_backend, "profile_sessions", 3)
    truth = tvm_backend.truth(conv_add_relu())
    assert len(sessions) == 3 and len({id(vm) for vm in sessions}) == 3   # fresh VMs
    assert all(k.ms is not None and k.ms > 0 for k in truth.kernels)


def test_tvm_call_times_pair_each_call_with_its_start():
    from nnmeter_tvm.backends.tvm_llvm import _call_times

    events = [("a", True, 1_000), ("a", False, 3_000), ("b", True, 3_500),
              ("b", False, 4_500), ("a", True, 5_000), ("a", False, 5_250)]
    assert _call_times(events) == [("a", 0.002), ("b", 0.001), ("a", 0.00025)]


def test_tvm_truth_maps_bias_and_gemm(tvm_backend):
    model = gemm_relu()
    truth = tvm_backend.truth(model, timed=False)
    assert set(kernel_with(truth, "g").nodes) == {"g", "y"}
    assert_accounted(truth, model)


def test_relax_import_provenance_covers_every_op():
    pytest.importorskip("tvm")
    from nnmeter_tvm.backends.relax_import import bindings, import_onnx

    imported = import_onnx(conv_bn())
    assert set(imported.node_vars) == {"c", "y"}
    main = imported.mod["main"]
    assert all(imported.node_of(b.var) in {"c", "y"} for b in bindings(main))


# ---- CLI --------------------------------------------------------------------------------

@pytest.fixture
def private_lock(tmp_path, monkeypatch):
    """CLI runs use the default config: keep them off the machine-wide lock other jobs hold."""
    from nnmeter_tvm.backends import protocol

    monkeypatch.setattr(protocol, "DEFAULT_LOCK_PATH", str(tmp_path / "cli.lock"))

def test_cli_measure_json(tmp_path, capsys, private_lock):
    from nnmeter_tvm.cli import main

    path = tmp_path / "m.onnx"
    path.write_bytes(matmul_add().SerializeToString())
    store = tmp_path / "s.sqlite"
    assert main(["measure", str(path), "--json", "--store", str(store)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok" and out["model"] == str(path) and out["store"] == str(store)
    assert {"median_ms", "p10_ms", "p90_ms", "runs", "drift", "machine", "key"} <= set(out)
    assert Store(store).get("ort-cpu", out["key"]) is not None


def test_cli_measure_missing_file_is_one_line(tmp_path, capsys):
    from nnmeter_tvm.cli import main

    assert main(["measure", str(tmp_path / "none.onnx"), "--no-store"]) == 2
    err = capsys.readouterr().err.strip()
    assert "none.onnx" in err and "\n" not in err


def test_cli_truth_json(tmp_path, capsys, private_lock):
    import argparse

    from nnmeter_tvm.cli.kernels_truth import add_truth_args, run_truth

    path = tmp_path / "m.onnx"
    path.write_bytes(conv_relu().SerializeToString())
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--json", action="store_true")
    add_truth_args(parser)
    assert run_truth(parser.parse_args([str(path), "--truth", "--json"])) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == "ort-cpu" and out["timed"] is True
    k = [k for k in out["kernels"] if "c" in k["nodes"]][0]
    assert set(k) == {"name", "op_type", "nodes", "inserted", "ms", "detail", "tensor"}
    assert set(k["nodes"]) == {"c", "y"}


# ---- onnxruntime profiler times -------------------------------------------------------------

def test_profiler_times_use_the_kept_runs_and_resolve_below_a_microsecond():
    """Per node: only the kept attempt's runs count (the others warmed up or drifted), and
    their interquartile mean resolves what whole microseconds cannot."""
    from types import SimpleNamespace

    from nnmeter_tvm.backends.ort_cpu import _node_times
    from nnmeter_tvm.backends.protocol import Timing

    g2 = SimpleNamespace(node=[SimpleNamespace(name="a", op_type="Conv"),
                               SimpleNamespace(name="", op_type="ReorderInput")])
    # two slow warm-up runs, 3-4 µs runs of the kept attempt, then a drifted later attempt
    durs_a = [90, 95] + [3, 4, 3, 4, 3, 4, 3, 4] + [40, 40]
    durs_r = [50, 50] + [2] * 8 + [30, 30]
    events = []
    for da, dr in zip(durs_a, durs_r):
        events.append({"cat": "Node", "name": "a_kernel_time", "dur": da})
        events.append({"cat": "Node", "name": "ReorderInput_token_7_kernel_time", "dur": dr,
                       "args": {"op_name": "ReorderInput"}})
    events.append({"cat": "Session", "name": "model_run", "dur": 1000})
    kept = Timing("ok", 0.004, 0.003, 0.005, 8, 1.0, 0.0, 2, None, first_run=2)
    times = _node_times(events, g2, kept)
    assert times[0] == pytest.approx(0.0035)
    assert times[1] == pytest.approx(0.002)


def test_profiled_reorders_are_matched_by_shape_not_by_their_session_made_names():
    """onnxruntime numbers its reorders (``ReorderOutput_token_<n>``) in an order that changes
    from one session to the next: the profiled session's token_18 may be the G2 file's
    token_19.  Each reorder takes the time of the event with its plain-layout shape."""
    from types import SimpleNamespace

    from nnmeter_tvm.backends.ort_cpu import _node_times
    from nnmeter_tvm.backends.protocol import Timing

    def reorder(name, plain):
        return SimpleNamespace(name=name, op_type="ReorderOutput", input=[f"{name}_in"],
                               output=[plain])
    g2 = SimpleNamespace(node=[reorder("ReorderOutput_token_18", "small"),
                               reorder("ReorderOutput_token_19", "big")])
    shapes = {"small": (1, 20, 16, 16), "big": (1, 55, 8, 8)}
    events = [{"cat": "Node", "name": f"ReorderOutput_token_{n}_kernel_time", "dur": dur,
               "args": {"op_name": "ReorderOutput", "output_type_shape": [{"float": shape}]}}
              for _ in range(8) for n, dur, shape in ((18, 40, [1, 55, 8, 8]),
                                                       (19, 3, [1, 20, 16, 16]))]
    kept = Timing("ok", 0.04, 0.04, 0.04, 8, 1.0, 0.0, 1, None)
    times = _node_times(events, g2, kept, shapes)
    assert times == {0: pytest.approx(0.003), 1: pytest.approx(0.040)}
    # without the shapes (or for a shape unknown), by name as before
    assert _node_times(events, g2, kept) == {0: pytest.approx(0.040), 1: pytest.approx(0.003)}


def test_ort_truth_profiles_several_sessions(ort, monkeypatch):
    """Kernel times are the median over ``profile_sessions`` fresh sessions."""
    from nnmeter_tvm.backends import ort_cpu

    calls = []
    real = ort_cpu.OrtCpu._profile_session

    def counting(self, loaded, g2, prefix, shapes):
        calls.append(prefix)
        return real(self, loaded, g2, prefix, shapes)

    monkeypatch.setattr(ort_cpu.OrtCpu, "_profile_session", counting)
    monkeypatch.setattr(ort, "profile_sessions", 3)
    truth = ort.truth(conv_relu())
    assert len(set(calls)) == 3
    assert all(k.ms is not None and k.ms > 0 for k in truth.kernels if not k.inserted)


def test_sessions_that_drifted_are_left_out_when_one_is_steady():
    """A session whose reference drifted does not cost the model's steady sessions; with none
    steady the worst drift is reported, so the unit counts as drifted."""
    from nnmeter_tvm.backends.base import across_sessions

    times, drift = across_sessions([({0: 1.0, 1: 2.0}, 0.01), ({0: 9.0, 1: 9.0}, 0.3),
                                    ({0: 3.0, 1: 2.0}, 0.02)])
    assert times == {0: 2.0, 1: 2.0} and drift == 0.02
    times, drift = across_sessions([({0: 1.0}, 0.2), ({0: 3.0}, 0.3)])
    assert times == {0: 2.0} and drift == 0.3
    assert across_sessions([({0: 1.0}, None)]) == ({0: 1.0}, None)  # no reference read
