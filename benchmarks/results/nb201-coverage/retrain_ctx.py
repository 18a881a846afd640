"""Experiment: pack rows marked in a spare column (batch=2) so that trees can tell a pack's
context from a model's; predictions (batch 1) get the in-situ branch."""
import sys, numpy as np
from collections import defaultdict
import nnmeter_tvm.builder.build as B
from nnmeter_tvm.builder.kernel_models import spec_key
mode, out = sys.argv[1], sys.argv[2]
def train(self, rounds, targets=None):
    from nnmeter_tvm.predictors.cost_model import TARGETS
    from nnmeter_tvm.builder.training import train_family
    by_family = defaultdict(list)
    for s in self.samples():
        by_family[s["family"]].append(s)
    results = {}
    for family, rows in sorted(by_family.items()):
        raw = np.array([r["raw"] for r in rows], dtype=np.float64)
        x = self.features.encode(family, raw)
        names = list(self.features.feature_names(family))
        col = names.index("batch") if "batch" in names else (names.index("n") if "n" in names else None)
        if col is not None and (mode == "all" or family in mode.split(",")):
            x[:, col] = [1.0 if r["origin"] == "zoo" else 2.0 for r in rows]
        ms = np.array([r["ms"] for r in rows])
        keys = [spec_key(r["spec"]) if r.get("spec") else None for r in rows]
        results[family] = train_family(family, x, ms, keys, names, seed=self.config.seed,
                                       rounds=rounds, targets=targets or TARGETS)
    return results
B.Builder.train = train
B.retrain(["ort-cpu"], out, progress=False)
