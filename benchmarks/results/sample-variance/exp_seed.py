"""Experiment: the shipped ort-cpu samples retrained with another training seed."""
import sys, dataclasses
from pathlib import Path
from nnmeter_tvm.builder.build import bundle_builder, Progress, _source_record
from nnmeter_tvm.predictors import load_predictor
seed, out = int(sys.argv[1]), Path(sys.argv[2])
src = load_predictor("ort-cpu", models=False)
builder = bundle_builder(src)
builder.progress = Progress(False)
builder.rules_file = src.rules_file
builder.config = dataclasses.replace(builder.config, seed=seed)
first = src.meta.get("build") or {}
res = builder._fit_and_write(out, first.get("rounds") or [], 0, len(builder.log.drifted_units()), source={
    "record": [_source_record("ort-cpu", src)], "machine": src.meta.get("machine"),
    "config": first.get("config") or {}, "runs": first.get("runs") or [],
    "sample_log": first.get("sample_log"), "calibration_ms": first.get("calibration_ms") or {}})
