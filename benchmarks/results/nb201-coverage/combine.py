"""Experiment: the shipped bundle's samples plus the NAS-Bench-201 prior packs of nbp (over budget)."""
import gzip, json
from pathlib import Path
from nnmeter_tvm.builder.build import SampleLog, bundle_builder, Progress, _source_record
from nnmeter_tvm.predictors import load_predictor
src = load_predictor("ort-cpu", models=False)
builder = bundle_builder(src)
out = Path("/tmp/s13/comb/b"); out.mkdir(parents=True, exist_ok=True)
log_path = out.parent / "b-samples.jsonl"
lines = gzip.open(Path(src.meta["source"]) / src.meta["build"]["samples"]["file"], "rt").read().splitlines()
have = {json.loads(l).get("unit") for l in lines}
extra = [l for l in open("/tmp/s13/nbp/b-samples.jsonl").read().splitlines() if json.loads(l).get("unit") not in have]
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
