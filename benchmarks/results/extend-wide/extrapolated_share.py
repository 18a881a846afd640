"""The zoo models by the share of their predicted time on kernels flagged `extrapolated`
(beyond their cost model's training range), and how accurate each group is.
Usage: python extrapolated_share.py BUNDLE EVALUATE.json > extrapolated_share.txt"""
import json
import sys

import numpy as np

from nnmeter_tvm import zoo
from nnmeter_tvm.onnx_import import load_graph
from nnmeter_tvm.predictors import load_predictor

measured = {r["model"]: r["measured_ms"] for r in json.load(open(sys.argv[2]))["models"]}
predictor = load_predictor(sys.argv[1])
share, error = [], []
for family in zoo.FAMILIES:
    for model in zoo.variants(family, 200 if family == "nasbench201" else 40):
        graph = load_graph(model)
        if graph.name not in measured:
            continue
        report = predictor.predict_graph(graph)
        share.append(sum(k.ms for k in report.kernels if k.extrapolated) / report.total_ms)
        error.append(abs(report.total_ms / measured[graph.name] - 1))
share, error = np.array(share), np.array(error)
print(len(share))
for lo, hi in ((0, 1e-12), (1e-12, 0.01), (0.01, 0.05), (0.05, 0.2), (0.2, 1.01)):
    m = (share >= lo) & (share < hi)
    acc = 100 * np.mean(error[m] <= 0.1) if m.any() else float("nan")
    print(f"share [{lo}, {hi}): {m.sum()} models, within 10%: {acc:.1f}")
