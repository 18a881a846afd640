"""Shared helpers for the predictor / bundle / sampler tests: small models, hand-made kernels."""
from __future__ import annotations

import numpy as np


def small_model(seed: int = 0):
    """conv-bn-relu, dwconv-bn-relu6, residual add, pool, gap, flatten, gemm: an ONNX model."""
    from nnmeter_tvm.zoo.builder import ModelBuilder

    b = ModelBuilder("small")
    x = b.input((1, 3, 32, 32))
    x = b.conv_bn_act(x, 16, 3, 1, tag="1")
    y = b.conv_bn_act(x, 16, 3, 1, groups=16, act="relu6", tag="2")
    x = b.add(x, y, name="res")
    x = b.maxpool(x, 2, 2, name="pool")
    x = b.global_avgpool(x, name="gap")
    x = b.flatten(x, name="flat")
    x = b.gemm(x, 10, name="fc")
    x = b.hardswish(x, name="hs")
    b.output(x)
    return b.model(np.random.default_rng(seed))


def chain_kernels(graph):
    """One kernel per anchor op followed by its single-consumer unary epilogue (a stand-in
    for the partition in tests that must not depend on the rules)."""
    from nnmeter_tvm.kernels.kernel import Kernel
    from nnmeter_tvm.ops import category

    kernels, used = [], set()
    for node in graph:
        if node.name in used:
            continue
        members = [node]
        while True:
            succ = graph.successors(members[-1].name)
            if len(succ) != 1 or len(graph.consumers(members[-1].outputs[0])) != 1:
                break
            nxt = graph.node(succ[0])
            if category(nxt.op) != "unary" or nxt.name in used:
                break
            members.append(nxt)
        used.update(m.name for m in members)
        ops = tuple(m.op for m in members)
        kernels.append(Kernel(members[0].name, "-".join(ops), tuple(m.name for m in members),
                              members[0].name, ops))
    return kernels


def synthetic_conv_predictor(tmp_path, backend: str = "ort-cpu"):
    """A Predictor with a conv model trained on synthetic times, and its rules file."""
    from nnmeter_tvm import features
    from nnmeter_tvm.builder.training import train_family
    from nnmeter_tvm.predictors import Predictor

    rng = np.random.default_rng(0)
    width = len(features.raw_fields("conv"))
    rows = []
    for _ in range(80):
        cin, cout = (int(v) for v in rng.choice([8, 16, 24, 32, 64], 2))
        hw, k = int(rng.choice([8, 16, 32])), int(rng.choice([1, 3, 5]))
        row = [1, cin, hw, hw, cout, k, k, 1, 1, 1, 1, 1, k // 2, k // 2, k // 2, k // 2, 0, 0, 0]
        rows.append(row + [0] * (width - len(row) - 1) + [4])
    x = features.encode("conv", np.array(rows, dtype=np.float64))
    flops = x[:, features.feature_names("conv").index("flops")]
    ms = 0.01 + flops / 2e7 * rng.uniform(0.95, 1.05, len(flops))
    result = train_family("conv", x, ms, feature_names=features.feature_names("conv"), rounds=60)
    rules = tmp_path / "rules-src.json"
    rules.write_text('{"backend": "%s", "rules": []}\n' % backend)
    return Predictor(backend, models={"conv": result.model},
                     overhead={"fixed_ms": 0.05, "per_kernel_ms": 0.002, "scale": 1.0},
                     rules_file=rules), rules
