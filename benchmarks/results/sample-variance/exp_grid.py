"""Experiment: the shipped ort-cpu samples plus N grid conv specs (groups 1) drawn with the
shipped grid ('old': cin, cout independent log-uniform) or with cout tied to cin ('tied':
cout = cin x 2^U(-1.5, 1.5)), measured now, retrained.  Usage: exp_grid.py MODE N OUT"""
import gzip, json, sys, shutil
import numpy as np
from pathlib import Path
import nnmeter_tvm.builder.sampler as sm
from nnmeter_tvm.builder.build import SampleLog, bundle_builder, Progress, _source_record
from nnmeter_tvm.builder.kernel_models import spec_key, spec_flops
from nnmeter_tvm.predictors import load_predictor

mode, n, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
src = load_predictor("ort-cpu", models=False)
builder = bundle_builder(src)
out.mkdir(parents=True, exist_ok=True)
log_path = out.parent / (out.name + "-samples.jsonl")
with gzip.open(Path(src.meta["source"]) / src.meta["build"]["samples"]["file"], "rt") as f:
    log_path.write_text(f.read())
builder.log = SampleLog(log_path, **src.meta["build"]["samples"]["context"])
builder.progress = Progress(True)
builder.rules_file = src.rules_file
seen = {spec_key(s["spec"]) for s in builder.samples() if s.get("spec")}
rng = np.random.default_rng(int(sys.argv[4]) if len(sys.argv) > 4 else 11)
specs = []
while len(specs) < n:
    s = sm.grid_spec(rng)
    if s["kind"] != "conv" or s["groups"] != 1:
        continue
    if mode == "tied":
        c = int(round(s["cin"] * 2 ** rng.uniform(-1.5, 1.5)))
        s["cout"] = int(min(1024, max(4, c)))
    if spec_flops(s) > sm.GRID_MAX_FLOPS or spec_key(s) in seen:
        continue
    seen.add(spec_key(s))
    specs.append(s)
print(mode, "specs", len(specs), "median cout/cin", np.median([s["cout"] / s["cin"] for s in specs]))
builder.deadline = float("inf")
builder.config = __import__("dataclasses").replace(builder.config, max_samples=10 ** 6)
builder.measure_specs({"grid": specs})
print("kernels after", builder.log.kernel_measurements())
first = src.meta.get("build") or {}
res = builder._fit_and_write(out, first.get("rounds") or [], 0, len(builder.log.drifted_units()), source={
    "record": [_source_record("ort-cpu", src)], "machine": src.meta.get("machine"),
    "config": first.get("config") or {}, "runs": first.get("runs") or [],
    "sample_log": first.get("sample_log"), "calibration_ms": first.get("calibration_ms") or {}})
print("samples", res.samples)
