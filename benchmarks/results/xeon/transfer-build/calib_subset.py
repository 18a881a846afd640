"""Offline: a bundle's overhead refitted on fewer of its calibration models (the chains and
index 0 of each family, or no chains), its cost models kept, scored on a truth.

    python calib_subset.py TRUTH.json BUNDLE... > calib_subset.txt
"""
import json, sys, tempfile, warnings
from dataclasses import replace
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # benchmarks/
warnings.simplefilter("ignore")
import numpy as np
from eval_lib import dataset
from nnmeter_tvm import features
from nnmeter_tvm.builder.build import Builder, BuildConfig, SampleLog
from nnmeter_tvm.predictors import load_predictor
from dataclasses import fields

truth = sys.argv[1]
res = {m["model"]: m for m in json.load(open(truth))["models"]}
items = [it for it in dataset.plan_for("ort-cpu", quick=False).items() if it.name in res]
entries = dataset.prepare(items, progress=False)
graphs = [e.graph for e in entries]
meas = np.array([res[e.item.name]["measured_ms"] for e in entries])
names = {f.name for f in fields(BuildConfig)}
for b in sys.argv[2:]:
    p = load_predictor(b)
    meta = p.meta["build"]
    cfg = BuildConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in meta["config"].items() if k in names})
    bl = Builder(cfg, store=Path(tempfile.mkdtemp()) / "none.jsonl")
    own = meta["samples"]
    bl.log = SampleLog(Path(b) / own["file"], **own["context"])
    bl.features, bl.predictor = features, p
    bl.measure_store = Path(tempfile.mkdtemp()) / "empty.sqlite"  # known times only
    out = {}
    for label, sub in (("all", {}), ("1/family", {"calib_per_family": 1}),
                       ("1/family, no chains", {"calib_per_family": 1, "calib_chains": ()}),
                       ("3/family, no chains", {"calib_chains": ()})):
        bl.config = replace(cfg, **sub)
        rows = bl.calibration_rows(p, measure=False, known=meta["calibration_ms"])
        o = bl.calibrate(p, rows)
        p.overhead = {k: o[k] for k in ("fixed_ms", "per_kernel_ms", "scale")}
        pred = np.array([x.total_ms for x in p.predict_many(graphs)])
        r = pred / meas
        out[label] = {"calibration models": len(rows),
                      "acc10": round(float(100 * np.mean(np.abs(r - 1) <= .1)), 1),
                      "level_pct": round(float(100 * (np.median(r) - 1)), 1)}
    print(Path(b).name, json.dumps(out), flush=True)
