"""Experiment: the shipped bundle's samples with one family's in-situ model swapped for the
NAS-Bench-201 cells profiled in situ last session (/tmp/s12/nb5-samples.jsonl), retrained."""
import gzip, json, sys
from pathlib import Path
from nnmeter_tvm.builder.build import SampleLog, bundle_builder, Progress, _source_record
from nnmeter_tvm.predictors import load_predictor
drop_units, cells, out = sys.argv[1].split(","), sys.argv[2].split(","), Path(sys.argv[3])
src = load_predictor("ort-cpu", models=False)
builder = bundle_builder(src)
out.mkdir(parents=True, exist_ok=True)
log_path = out.parent / (out.name + "-samples.jsonl")
lines = [l for l in gzip.open(Path(src.meta["source"]) / src.meta["build"]["samples"]["file"], "rt").read().splitlines()
         if json.loads(l).get("unit") not in drop_units]
extra = [l for l in open("/tmp/s12/nb5-samples.jsonl").read().splitlines()
         if json.loads(l).get("unit") in {f"zoo:nasbench201:1000:{c}:None" for c in cells}]
print("extra units", len(extra))
open(log_path, "w").write("\n".join(lines + extra) + "\n")
builder.log = SampleLog(log_path, **src.meta["build"]["samples"]["context"])
builder.progress = Progress(False); builder.rules_file = src.rules_file
first = src.meta.get("build") or {}
res = builder._fit_and_write(out, first.get("rounds") or [], 0, len(builder.log.drifted_units()), source={
    "record": [_source_record("ort-cpu", src)], "machine": src.meta.get("machine"),
    "config": first.get("config") or {}, "runs": first.get("runs") or [],
    "sample_log": first.get("sample_log"), "calibration_ms": first.get("calibration_ms") or {}})
print("samples", res.samples, "kernel measurements", builder.log.kernel_measurements())
