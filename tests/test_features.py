"""The feature schema, the raw configs read from graphs, and the C++ encoder against its NumPy
reference."""
import sys

import numpy as np
import pytest
from onnx import helper

from nnmeter_tvm import features as F
from nnmeter_tvm.errors import UnknownNameError
from nnmeter_tvm.features import schema as S
from nnmeter_tvm.features.configs import nchw
from nnmeter_tvm.features.reference import encode_reference
from nnmeter_tvm.kernels.kernel import Kernel
from nnmeter_tvm.onnx_import import load_graph
from nnmeter_tvm.ops import VOCAB

from helpers import make_model, weights

FAMILIES = list(S.FAMILIES)


def col(family, x, name):
    return x[:, S.FAMILIES[family].features.index(name)]


def one_kernel(graph, *names, anchor=None):
    nodes = [graph.node(n) for n in names]
    return Kernel(name=names[0], type="-".join(n.op for n in nodes), nodes=tuple(names),
                  anchor=anchor or names[0], ops=tuple(n.op for n in nodes))


def node_kernels(graph):
    """Every node its own kernel: a stand-in for the partition."""
    return [one_kernel(graph, n.name) for n in graph.nodes]


# ------------------------------------------------------------------------- random configs
_TABLES = {"elementwise": S.ELEMENTWISE_OPS, "binary": S.BINARY_OPS, "split": S.SPLIT_OPS,
           "movement": S.MOVEMENT_OPS, "softmax": S.SOFTMAX_OPS, "reduce": S.REDUCE_OPS}


def random_configs(family, n, rng):
    """Plausible integer configurations: what the sampler and real models produce."""
    fields = S.FAMILIES[family].raw
    x = rng.integers(1, 65, size=(n, len(fields))).astype(np.float64)

    def put(name, values):
        if name in fields:
            x[:, fields.index(name)] = values

    for f in fields:
        if f.startswith(("ep_", "n_misaligned", "pad_", "out_pad")):
            put(f, rng.integers(0, 3, n))
        elif f in ("has_bias", "b_const", "ceil_mode", "is_max", "axis_is_channel", "moves_inner"):
            put(f, rng.integers(0, 2, n))
        elif f in ("kh", "kw"):
            put(f, rng.choice([1, 3, 5, 7], n))
        elif f in ("sh", "sw", "dh", "dw"):
            put(f, rng.integers(1, 3, n))
        elif f in ("batch", "b_batch", "n"):
            put(f, rng.integers(1, 4, n))
    put("dtype_bytes", rng.choice([1, 2, 4], n))
    put("ep_extra_elems", rng.integers(0, 5000, n))
    put("op_code", rng.integers(0, len(_TABLES.get(family, (0,))), n))
    put("mode", rng.integers(0, 3, n))
    put("direction", rng.integers(0, 3, n))
    put("block", rng.choice([0, 8, 16], n))
    put("layout", rng.integers(0, len(S.LAYOUT_CODES), n))
    put("channel_block", rng.choice([0, 4, 8, 16], n))
    if family in ("conv", "dwconv", "gconv", "convtranspose"):
        hin = rng.integers(7, 113, n)
        put("hin", hin), put("win", hin)
        groups = {"conv": np.ones(n, int), "dwconv": rng.integers(1, 257, n),
                  "gconv": rng.choice([2, 4, 8, 32], n), "convtranspose": rng.choice([1, 2], n)}[family]
        put("groups", groups)
        if family == "dwconv":
            put("cin", groups), put("cout", groups)
        else:
            put("cin", groups * rng.integers(1, 33, n)), put("cout", groups * rng.integers(1, 33, n))
    if family == "pool":
        put("hin", rng.integers(7, 113, n)), put("win", rng.integers(7, 113, n))
        put("pad_t", 0), put("pad_b", rng.integers(0, 2, n))
    return x


@pytest.mark.parametrize("family", FAMILIES)
def test_encode_matches_numpy_reference(family):
    rng = np.random.default_rng([7, FAMILIES.index(family)])
    x = random_configs(family, 400, rng)
    got, want = F.encode(family, x), encode_reference(family, x)
    assert got.dtype == np.float32 and got.shape == (400, S.FAMILIES[family].width)
    exact = np.all(want == np.round(want), axis=0)  # integer-valued columns: bit-exact
    np.testing.assert_array_equal(got[:, exact], want[:, exact])
    np.testing.assert_allclose(got[:, ~exact], want[:, ~exact], rtol=1e-6, atol=0)
    np.testing.assert_allclose(F.encode(family, x, exact=True), encode_reference(family, x, True),
                               rtol=1e-12, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_encode_matches_reference_on_arbitrary_values(family):
    """Fractional and zero fields too (degenerate strides, empty tensors): same answers."""
    x = np.random.default_rng([8, FAMILIES.index(family)]).uniform(0, 40, (300, S.FAMILIES[family].raw_width))
    x[::7] = np.floor(x[::7])
    x[::11, :3] = 0
    got, want = F.encode(family, x, exact=True), encode_reference(family, x, exact=True)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(F.encode(family, x), want.astype(np.float32), rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------- one schema governs
def test_extension_implements_this_schema():
    from nnmeter_tvm import _features

    assert _features.SCHEMA_VERSION == S.SCHEMA_VERSION
    assert tuple(_features.families()) == tuple(S.FAMILIES)
    for name, fam in S.FAMILIES.items():
        assert tuple(_features.raw_fields(name)) == fam.encoded_raw, name
        assert fam.raw == fam.encoded_raw + S.CONTEXT, name
        assert tuple(_features.feature_names(name)) + S.CONTEXT + S.CONTEXT_DERIVED == \
            fam.features == \
            F.feature_names(name), name
        assert len(set(fam.features)) == fam.width, f"{name}: duplicate feature names"


def test_context_is_passed_through_after_the_derived_features():
    """The encoder never reads the context block; it comes out unchanged after the derived
    features, followed by what is derived from it."""
    row = conv_row()
    blocked = row.copy()
    blocked[0, -2:] = S.LAYOUT_CODES.index("blocked"), 16
    a, b = F.encode("conv", row), F.encode("conv", blocked)
    np.testing.assert_array_equal(a[:, :-3], b[:, :-3])
    assert F.feature_names("conv")[-3:] == S.CONTEXT + S.CONTEXT_DERIVED
    assert tuple(b[0, -3:-1]) == (2, 16) and tuple(a[0, -3:-1]) == (0, 0)
    assert S.CONTEXT == ("layout", "channel_block")


def _blocked(row, block=16):
    row = row.copy()
    row[0, -2:] = S.LAYOUT_CODES.index("blocked"), block
    return row


def test_flops_blocked_rounds_a_blocked_convs_channels_up_to_its_block():
    """onnxruntime pads NCHWc channels to the block: a 20 -> 20 conv does the work of 32 -> 32.
    A dense conv's input below one block is read plain (not padded); a plain row is as is."""
    def both(family, row):
        x = F.encode(family, row, exact=True)
        return col(family, x, "flops")[0], col(family, x, "flops_blocked")[0]

    flops, padded = both("conv", _blocked(conv_row(cin=20, cout=20, hw=32)))
    assert padded == flops * (32 / 20) ** 2
    flops, padded = both("conv", _blocked(conv_row(cin=3, cout=20, hw=32)))
    assert padded == flops * 32 / 20                       # the input is not padded
    flops, padded = both("conv", _blocked(conv_row(cin=20, cout=20, hw=32), block=8))
    assert padded == flops * (24 / 20) ** 2
    flops, padded = both("conv", conv_row(cin=20, cout=20, hw=32))
    assert padded == flops                                 # plain: no padding
    flops, padded = both("dwconv", _blocked(conv_row("dwconv", cin=20, cout=20, groups=20)))
    assert padded == flops * 32 / 20
    g = load_graph(conv_model(24, 24, 1))
    kernel = [k for k in _ort_partition(g) if not k.inserted][0]
    x = F.encode("conv", F.kernel_config(kernel, g)[1], exact=True)
    assert col("conv", x, "flops_blocked")[0] == col("conv", x, "flops")[0] * (32 / 24) ** 2


def _ort_partition(graph):
    from nnmeter_tvm import load_predictor

    return load_predictor("ort-cpu").partition(graph)


def test_layout_context_is_the_partitions():
    """A kernel's layout context is what the partition decided: plain, blocked, or unknown
    (no layout rules: tvm-llvm)."""
    from nnmeter_tvm import load_predictor

    g = load_graph(conv_model(24, 24, 24))      # depthwise, a multiple of 4: NCHWc on onnxruntime
    odd = load_graph(conv_model(21, 21, 21))    # not: plain NCHW
    context = []
    for graph in (g, odd):
        kernels = [k for k in _ort_partition(graph) if not k.inserted]
        context.append(tuple(F.kernel_config(kernels[0], graph)[1][-2:]))
    tvm = [k for k in load_predictor("tvm-llvm").partition(g) if not k.inserted]
    assert context == [(S.LAYOUT_CODES.index("blocked"), 16), (S.LAYOUT_CODES.index("plain"), 0)]
    assert tuple(F.kernel_config(tvm[0], g)[1][-2:]) == (S.LAYOUT_CODES.index("unknown"), 0)


def test_every_family_carries_the_generic_cost_block():
    for name in FAMILIES:
        cols = F.generic_columns(name)
        assert tuple(np.array(F.feature_names(name))[list(cols)]) == S.GENERIC_FEATURES


def test_every_op_in_the_vocabulary_has_a_family_and_an_epilogue_kind():
    for op, (cat, _) in VOCAB.items():
        if op == "unknown":
            continue
        assert op in S.FAMILY_OF_OP, f"op {op!r} has no feature family: add it and bump SCHEMA_VERSION"
        if cat in ("unary", "binary", "movement"):
            assert op in S.EPILOGUE_KIND or op in S.EPILOGUE_FREE, op
    assert set(S.FAMILY_OF_OP.values()) | {"generic"} == set(S.FAMILIES)


def test_stale_or_missing_extension_fails_loudly(monkeypatch):
    import nnmeter_tvm

    monkeypatch.setattr(F, "_ext", None)
    monkeypatch.delattr(nnmeter_tvm, "_features", raising=False)
    monkeypatch.setitem(sys.modules, "nnmeter_tvm._features", None)
    with pytest.raises(ImportError, match="compiler"):
        F.encode("conv", np.zeros((1, S.FAMILIES["conv"].raw_width)))

    class Stale:
        SCHEMA_VERSION = S.SCHEMA_VERSION + 1

    monkeypatch.setitem(sys.modules, "nnmeter_tvm._features", Stale)
    monkeypatch.setattr(nnmeter_tvm, "_features", Stale, raising=False)
    with pytest.raises(ImportError, match="rebuild"):
        F.encode("conv", np.zeros((1, S.FAMILIES["conv"].raw_width)))


# ---------------------------------------------------------------------- errors at the edge
def test_unknown_family_raises_unknown_name_error_listing_the_valid_ones():
    for call in (lambda: F.encode("convolution", np.zeros((1, 3))), lambda: F.feature_names("nope"),
                 lambda: F.raw_fields("nope")):
        with pytest.raises(UnknownNameError, match="valid: .*concat.*conv"):
            call()


def test_wrong_config_width_names_the_family_and_the_expected_width():
    width = S.FAMILIES["gemm"].raw_width
    with pytest.raises(ValueError, match=rf"'gemm' expects configs of shape \(N, {width}\).*\(2, 5\)"):
        F.encode("gemm", np.zeros((2, 5)))
    with pytest.raises(ValueError, match="'gemm'"):
        F.encode("gemm", np.zeros((2, width, 1)))


def test_one_row_encodes_as_a_matrix_of_one():
    row = random_configs("pool", 1, np.random.default_rng(0))[0]
    assert F.encode("pool", row).shape == (1, S.FAMILIES["pool"].width)


# ------------------------------------------------------------------------------ conv
def conv_row(family="conv", cin=64, cout=64, hw=56, k=3, s=1, p=1, d=1, groups=1, bias=0, batch=1):
    r = dict.fromkeys(S.FAMILIES[family].raw, 0)
    r.update(batch=batch, cin=cin, hin=hw, win=hw, cout=cout, kh=k, kw=k, sh=s, sw=s, dh=d, dw=d,
             groups=groups, pad_t=p, pad_l=p, pad_b=p, pad_r=p, has_bias=bias, dtype_bytes=4)
    return np.array([list(r.values())], dtype=np.float64)


def test_conv_flops_and_params_by_hand():
    # ResNet-18 stage 1: 3x3, 64 -> 64, 56x56, stride 1, pad 1
    x = F.encode("conv", conv_row(), exact=True)
    assert col("conv", x, "hout")[0] == col("conv", x, "wout")[0] == 56
    assert col("conv", x, "params")[0] == 64 * 64 * 3 * 3 == 36864
    assert col("conv", x, "flops")[0] == 2 * 56 * 56 * 36864 == 231_211_008
    assert col("conv", x, "bytes_in")[0] == 64 * 56 * 56 * 4
    assert col("conv", x, "bytes_weight")[0] == 36864 * 4
    assert col("conv", x, "bytes_out")[0] == 64 * 56 * 56 * 4
    # the stem: 7x7 stride 2 pad 3 on 224, 3 -> 64, with bias
    stem = conv_row(cin=3, cout=64, hw=224, k=7, s=2, p=3, bias=1)
    flops, params = F.conv_flops_params(np.vstack([conv_row(), stem]))
    assert params.tolist() == [36864, 64 * 3 * 49 + 64]
    assert flops.tolist() == [231_211_008, 2 * 112 * 112 * 64 * 3 * 49 + 112 * 112 * 64]
    assert col("conv", F.encode("conv", stem), "hout")[0] == 112
    # dilation 2 keeps 56 with pad 2
    assert col("conv", F.encode("conv", conv_row(p=2, d=2)), "hout")[0] == 56


def test_alignment_features():
    x = F.encode("conv", conv_row(cin=30, cout=64))
    got = {n: col("conv", x, n)[0] for n in S.align("cin")}
    assert got == {"cin_up4": 32, "cin_up8": 32, "cin_up16": 32, "cin_rem4": 2, "cin_rem8": 6,
                   "cin_rem16": 14}


def test_grouped_conv_is_not_dense_conv():
    """ResNeXt's 32-group 3x3 and ResNet's dense 3x3 at the same shape must differ."""
    dense = F.encode("conv", conv_row(cin=128, cout=128))
    grouped = F.encode("gconv", conv_row("gconv", cin=128, cout=128, groups=32))
    assert col("conv", dense, "params")[0] == 128 * 128 * 9
    assert col("gconv", grouped, "params")[0] == 128 * 4 * 9
    assert col("gconv", grouped, "flops")[0] * 32 == col("conv", dense, "flops")[0]
    assert col("gconv", grouped, "cin_per_group")[0] == 4
    assert S.conv_family(128, 128, 32) == "gconv"
    # through the importer: a different family and different features
    graphs = [load_graph(conv_model(128, 128, g)) for g in (1, 32)]
    (fd, rd), (fg, rg) = (F.kernel_config(one_kernel(g, "c"), g) for g in graphs)
    assert (fd, fg) == ("conv", "gconv")
    assert not np.array_equal(F.encode(fd, rd), F.encode(fg, rg))


def test_depthwise_detection():
    assert S.conv_family(32, 32, 32) == "dwconv"
    assert S.conv_family(32, 64, 32) == "gconv"  # channel multiplier 2: grouped, not depthwise
    assert S.conv_family(32, 64, 1) == "conv"
    g = load_graph(conv_model(32, 32, 32))
    fam, row = F.kernel_config(one_kernel(g, "c"), g)
    assert fam == "dwconv"
    x = F.encode(fam, row)
    assert col(fam, x, "groups")[0] == 32 and col(fam, x, "params")[0] == 32 * 9 + 32


def conv_model(cin, cout, group, k=3, hw=16):
    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], name="c", group=group, pads=[1, 1, 1, 1],
                            kernel_shape=[k, k], strides=[2, 2])
    return make_model([node], [("x", [1, cin, hw, hw])], [("y", [1, cout, hw // 2, hw // 2])],
                      {"W": weights(cout, cin // group, k, k), "B": weights(cout)})


# ---------------------------------------------------------------------------- concat
def concat_graph(channels):
    names = [f"x{i}" for i in range(len(channels))]
    node = helper.make_node("Concat", names, ["y"], name="cat", axis=1)
    model = make_model([node], [(n, [1, c, 14, 14]) for n, c in zip(names, channels)],
                       [("y", [1, sum(channels), 14, 14])])
    return load_graph(model)


def test_concat_of_2_3_5_inputs_encodes_to_one_width():
    rows = {}
    for channels in ([16, 24], [16, 24, 30], [16, 24, 30, 8, 12]):
        g = concat_graph(channels)
        fam, rows[len(channels)] = F.kernel_config(one_kernel(g, "cat"), g)
        assert fam == "concat"
    assert {r.shape for r in rows.values()} == {(S.FAMILIES["concat"].raw_width,)}
    x = F.encode("concat", np.vstack(list(rows.values())))
    assert x.shape[1] == S.FAMILIES["concat"].width
    assert col("concat", x, "n_inputs").tolist() == [2, 3, 5]
    assert col("concat", x, "c_total").tolist() == [40, 70, 90]
    assert col("concat", x, "c_rest").tolist() == [0, 0, 12]
    assert col("concat", x, "c3").tolist() == [0, 30, 30]
    assert col("concat", x, "n_misaligned8").tolist() == [0, 1, 2]  # 30 and 12
    assert col("concat", x, "inner").tolist() == [196] * 3


# ------------------------------------------------------------------ configs from graphs
def resnet_block():
    """conv-bn-relu, conv-bn, add(residual)-relu, then a global pool and an fc."""
    h = helper.make_node
    nodes = [h("Conv", ["x", "W1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             h("BatchNormalization", ["c1", "s", "b", "m", "v"], ["b1"], name="bn1"),
             h("Relu", ["b1"], ["r1"], name="relu1"),
             h("Conv", ["r1", "W2"], ["c2"], name="conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             h("BatchNormalization", ["c2", "s", "b", "m", "v"], ["b2"], name="bn2"),
             h("Add", ["b2", "x"], ["a"], name="add"),
             h("Relu", ["a"], ["r2"], name="relu2"),
             h("GlobalAveragePool", ["r2"], ["gp"], name="gap"),
             h("Flatten", ["gp"], ["f"], name="flat"),
             h("Gemm", ["f", "Wf", "bf"], ["y"], name="fc", transB=1)]
    init = {"W1": weights(32, 32, 3, 3), "W2": weights(32, 32, 3, 3), "s": np.ones(32),
            "b": np.zeros(32), "m": np.zeros(32), "v": np.ones(32), "Wf": weights(10, 32),
            "bf": np.zeros(10)}
    return load_graph(make_model(nodes, [("x", [1, 32, 28, 28])], [("y", [1, 10])], init))


def test_fused_epilogue_becomes_fields():
    g = resnet_block()
    k1 = one_kernel(g, "conv1", "bn1", "relu1")
    k2 = one_kernel(g, "conv2", "bn2", "add", "relu2")
    rows = F.configs_by_family([k1, k2], g)["conv"]
    raw = dict(zip(S.FAMILIES["conv"].raw, rows.T))
    assert raw["ep_bn"].tolist() == [1, 1] and raw["ep_relu"].tolist() == [1, 1]
    assert raw["ep_add"].tolist() == [0, 1]
    assert raw["ep_extra_elems"].tolist() == [0, 32 * 28 * 28]  # the residual read from outside
    x = F.encode("conv", rows, exact=True)
    assert col("conv", x, "ep_bytes_in").tolist() == [0, 32 * 28 * 28 * 4]
    out = 32 * 28 * 28
    assert (col("conv", x, "flops") - 2 * out * 32 * 9).tolist() == [3 * out, 4 * out]  # bn 2, relu, add


def test_configs_by_family_matches_kernel_config_and_keeps_order():
    g = resnet_block()
    kernels = node_kernels(g)
    configs, index = F.configs_by_family([(k, g) for k in kernels], return_index=True)
    assert configs.keys() == index.keys()
    assert set(configs) == {"conv", "elementwise", "binary", "globalpool", "movement", "gemm"}
    for fam, rows in configs.items():
        assert rows.dtype == np.float64 and rows.shape == (len(index[fam]), S.FAMILIES[fam].raw_width)
        for row, i in zip(rows, index[fam]):
            f, want = F.kernel_config(kernels[i], g)
            assert f == fam and np.array_equal(row, want)
    assert index["conv"].tolist() == [0, 3]
    fc = F.encode("gemm", configs["gemm"], exact=True)
    assert col("gemm", fc, "params")[0] == 32 * 10 + 10
    assert col("gemm", fc, "flops")[0] == 2 * 32 * 10 + 10
    assert F.configs_by_family([]) == {}


def test_generic_family_reads_any_kernel():
    g = resnet_block()
    k = one_kernel(g, "conv1", "bn1", "relu1")
    fam, row = F.kernel_config(k, g, family="generic")
    assert fam == "generic"
    assert F.encode("generic", row).shape == (1, S.FAMILIES["generic"].width)
    with pytest.raises(ValueError, match="'conv'"):
        F.kernel_config(k, g, family="pool")
    with pytest.raises(UnknownNameError):
        F.kernel_config(k, g, family="nope")
    unknown = Kernel(name="u", type="unknown", nodes=(), anchor=None, ops=())
    assert F.family_of(unknown) == "generic"


def test_layout_kernel_reads_its_shape_from_attrs():
    k = Kernel(name="reorder0", type="reorder", nodes=(), anchor=None, ops=(), inserted=True,
               attrs={"tensor": "t", "shape": (1, 30, 56, 56), "direction": "to_blocked", "block": 8})
    fam, row = F.kernel_config(k, None)
    assert fam == "layout" == F.family_of(k)
    x = F.encode(fam, row, exact=True)
    assert col(fam, x, "elems")[0] == 30 * 56 * 56
    assert col(fam, x, "blocked_elems")[0] == 32 * 56 * 56
    assert col(fam, x, "bytes_out")[0] == 32 * 56 * 56 * 4
    assert F.configs_by_family([(k, None)])["layout"].shape == (1, S.FAMILIES["layout"].raw_width)
    with pytest.raises(TypeError, match="pairs.*graph="):
        F.configs_by_family([k])


def test_batched_matmul_is_gemm_with_a_batch():
    h = helper.make_node
    model = make_model([h("MatMul", ["a", "b"], ["y"], name="mm")],
                       [("a", [2, 8, 16, 32]), ("b", [2, 8, 32, 24])], [("y", [2, 8, 16, 24])])
    g = load_graph(model)
    fam, row = F.kernel_config(one_kernel(g, "mm"), g)
    assert fam == "gemm"
    r = dict(zip(S.FAMILIES["gemm"].raw, row))
    assert (r["batch"], r["m"], r["k"], r["n"], r["b_batch"], r["b_const"]) == (16, 16, 32, 24, 16, 0)
    x = F.encode(fam, row, exact=True)
    assert col(fam, x, "flops")[0] == 2 * 16 * 16 * 32 * 24
    assert col(fam, x, "params")[0] == 0


def test_nchw_reads_any_rank():
    assert nchw((1, 3, 8, 8)) == (1, 3, 8, 8)
    assert nchw((4, 10)) == (4, 10, 1, 1)
    assert nchw((2, 3, 4, 5, 6)) == (2, 3, 4, 30)
    assert nchw(()) == (1, 1, 1, 1)


@pytest.mark.parametrize("zoo_family", ["resnet", "googlenet", "squeezenet", "shufflenetv2",
                                        "mobilenetv3", "densenet"])
def test_derived_output_shapes_match_real_models(zoo_family):
    """Output H, W derived from the raw config equal the graph's, for every conv and pool."""
    from nnmeter_tvm import zoo

    g = load_graph(zoo.generate(zoo_family, 0, 0))
    kernels = node_kernels(g)
    configs, index = F.configs_by_family(kernels, g, return_index=True)
    checked = 0
    for fam in ("conv", "dwconv", "gconv", "pool", "pad"):
        if fam not in configs:
            continue
        x = F.encode(fam, configs[fam])
        for row, i in zip(x, index[fam]):
            _, c, h, w = nchw(g.node(kernels[i].anchor).output_shape)
            feats = dict(zip(S.FAMILIES[fam].features, row))
            assert (feats["hout"], feats["wout"]) == (h, w), kernels[i].name
            checked += 1
    assert checked > 5
    for fam, rows in configs.items():  # every kernel encodes to finite numbers
        assert np.isfinite(F.encode(fam, rows)).all(), fam
