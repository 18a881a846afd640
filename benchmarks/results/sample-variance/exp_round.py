"""Experiment: the shipped ort-cpu samples without their adaptive round, then one adaptive
round again (fresh measurements) with the misses taken in ORDER: 'name' (the builder's: family
by family) or 'abs' (largest absolute held-out error in ms first, all families), retrained."""
import gzip, json, sys
from pathlib import Path
from nnmeter_tvm.builder.build import SampleLog, bundle_builder, Progress, _source_record
from nnmeter_tvm.builder.sampler import Sampler
from nnmeter_tvm.builder.kernel_models import spec_key
from nnmeter_tvm.predictors import load_predictor

order, out = sys.argv[1], Path(sys.argv[2])
src = load_predictor("ort-cpu", models=False)
builder = bundle_builder(src)
cfg = builder.config
out.mkdir(parents=True, exist_ok=True)
log_path = out.parent / (out.name + "-samples.jsonl")
with gzip.open(Path(src.meta["source"]) / src.meta["build"]["samples"]["file"], "rt") as f, open(log_path, "w") as g:
    for line in f:
        if json.loads(line).get("origin") != "adaptive1":
            g.write(line)
builder.log = SampleLog(log_path, **src.meta["build"]["samples"]["context"])
builder.progress = Progress(True)
builder.rules_file = src.rules_file
print("kernels before", builder.log.kernel_measurements(), "budget", cfg.max_samples)
results = builder.train(max(20, cfg.train_rounds // 3), targets=("log",))
print("held-out ±10 %", builder.overall(results))
misses = [(fam, k, m) for fam, res in results.items() for k, m in zip(res.bad, res.bad_ms) if k]
if order == "abs":
    misses.sort(key=lambda t: -t[2])
print("misses", len(misses), "first:", [(f, round(m * 1e3, 1)) for f, _, m in misses[:10]])
sampler = Sampler({}, seed=int(sys.argv[3]) if len(sys.argv) > 3 else 0)
sampler.mark(s["target"] for s in builder.samples() if s.get("target"))
sampler.mark(spec_key(s["spec"]) for s in builder.samples() if s.get("spec"))
new = []
for fam, k, m in misses:
    new += sampler.near(json.loads(k), cfg.near_per_bad)
    if len(new) >= cfg.round_samples:
        break
new = new[: cfg.round_samples]
builder.deadline = float("inf")
builder.measure_specs({"adaptive1": new})
got = [s for s in builder.samples() if s["origin"] == "adaptive1"]
import collections
print("adaptive samples", len(got), collections.Counter(s["family"] for s in got),
      "median ms", sorted(s["ms"] for s in got)[len(got) // 2] if got else None)
print("kernels after", builder.log.kernel_measurements())
first = src.meta.get("build") or {}
res = builder._fit_and_write(out, first.get("rounds") or [], 0, len(builder.log.drifted_units()), source={
    "record": [_source_record("ort-cpu", src)], "machine": src.meta.get("machine"),
    "config": first.get("config") or {}, "runs": first.get("runs") or [],
    "sample_log": first.get("sample_log"), "calibration_ms": first.get("calibration_ms") or {}})
print("samples", res.samples)
