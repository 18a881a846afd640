"""Experiment: the shipped ort-cpu bundle's samples without its adaptive round (166 kernels,
mostly 3 µs convs), plus N packed specs drawn from the NAS-Bench-201 prior, retrained."""
import gzip, json, sys
from dataclasses import replace
from pathlib import Path
from nnmeter_tvm.builder.build import SampleLog, bundle_builder, Progress, _source_record
from nnmeter_tvm.builder.sampler import Sampler
from nnmeter_tvm.builder.kernel_models import spec_key
from nnmeter_tvm.predictors import load_predictor

n, out, drop = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(",")
src = load_predictor("ort-cpu", models=False)
builder = bundle_builder(src)
out.mkdir(parents=True, exist_ok=True)
log_path = out.parent / (out.name + "-samples.jsonl")
kept = dropped = 0
with gzip.open(Path(src.meta["source"]) / src.meta["build"]["samples"]["file"], "rt") as f, open(log_path, "w") as g:
    for line in f:
        rec = json.loads(line)
        if rec.get("origin") in drop:
            dropped += 1; continue
        g.write(line); kept += 1
print("units dropped", dropped)
builder.log = SampleLog(log_path, **src.meta["build"]["samples"]["context"])
builder.progress = Progress(True)
builder.rules_file = src.rules_file
builder.config = replace(builder.config, families=("nasbench201",))
prior = builder.prior()
builder.config = replace(builder.config, families=None)
print("kernels before", builder.log.kernel_measurements(), "NB201 prior specs", len(prior))
sampler = Sampler(prior, seed=int(sys.argv[4]) if len(sys.argv) > 4 else 7)
sampler.mark(s["target"] for s in builder.samples() if s.get("target"))
sampler.mark(spec_key(s["spec"]) for s in builder.samples() if s.get("spec"))
specs = sampler.initial(n)
print("drawn", len(specs))
builder.measure_specs({"initial": specs})
print("kernels after", builder.log.kernel_measurements())
first = src.meta.get("build") or {}
res = builder._fit_and_write(out, first.get("rounds") or [], 0, len(builder.log.drifted_units()), source={
    "record": [_source_record("ort-cpu", src)], "machine": src.meta.get("machine"),
    "config": first.get("config") or {}, "runs": first.get("runs") or [],
    "sample_log": first.get("sample_log"), "calibration_ms": first.get("calibration_ms") or {}})
print("samples", res.samples, "kernel measurements", builder.log.kernel_measurements())
