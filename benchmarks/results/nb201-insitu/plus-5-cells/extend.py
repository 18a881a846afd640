"""Experiment: the shipped ort-cpu bundle's samples + in-situ profiles of more zoo models of
one family (seed 1000), retrained; measures only those models' kernels."""
import gzip, shutil, sys
from pathlib import Path
from nnmeter_tvm import zoo
from nnmeter_tvm.builder.build import Builder, SampleLog, bundle_builder, Progress, _source_record
from nnmeter_tvm.predictors import load_predictor

family, indices, out = sys.argv[1], [int(i) for i in sys.argv[2].split(",")], Path(sys.argv[3])
src = load_predictor("ort-cpu", models=False)
builder = bundle_builder(src)
out.mkdir(parents=True, exist_ok=True)
log_path = out.parent / (out.name + "-samples.jsonl")
with gzip.open(Path(src.meta["source"]) / src.meta["build"]["samples"]["file"], "rt") as f, open(log_path, "w") as g:
    shutil.copyfileobj(f, g)
ctx = src.meta["build"]["samples"]["context"]
builder.log = SampleLog(log_path, **ctx)
builder.progress = Progress(True)
builder.rules_file = src.rules_file
from dataclasses import replace
builder.config = replace(builder.config, max_samples=int(sys.argv[4]) if len(sys.argv) > 4 else builder.config.max_samples)
cfg = builder.config
before = builder.log.kernel_measurements()
for index in indices:
    unit = f"zoo:{family}:{cfg.zoo_seed}:{index}:{cfg.input_size}"
    if builder.log.done(unit):
        print("have", unit); continue
    model = zoo.generate(family, cfg.zoo_seed, index, cfg.input_size)
    ok = builder._measure_unit(unit, model, kind="zoo", origin="zoo",
                               zoo=[family, cfg.zoo_seed, index, cfg.input_size])
    print(unit, ok, builder.log.kernel_measurements() - before, flush=True)
first = src.meta.get("build") or {}
res = builder._fit_and_write(out, first.get("rounds") or [], 0, len(builder.log.drifted_units()), source={
    "record": [_source_record("ort-cpu", src)], "machine": src.meta.get("machine"),
    "config": first.get("config") or {}, "runs": first.get("runs") or [],
    "sample_log": first.get("sample_log"), "calibration_ms": first.get("calibration_ms") or {}})
print("samples", res.samples, "kernel measurements", builder.log.kernel_measurements())
