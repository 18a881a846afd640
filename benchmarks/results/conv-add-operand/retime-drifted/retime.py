"""Experiment: the shipped ort-cpu bundle (before this session's change) with its drifted units (profiled
while the host was loaded: no samples) timed again.  Usage: python retime.py OUT_DIR"""
import sys
from dataclasses import replace
from pathlib import Path
from nnmeter_tvm.builder.build import bundle_builder, Progress, _source_record
from nnmeter_tvm.predictors import load_predictor, Predictor
from nnmeter_tvm import features
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
src = load_predictor('ort-cpu', models=False)
b = bundle_builder(src)
b.progress = Progress(True)
first = src.meta.get('build') or {}
old = b.log
b.log = b.new_log(out / 'retime.jsonl')
b.log.pool(old, src.meta.get('source'))
b.calib_known = first.get('calibration_ms') or {}
b.features = features
b.predictor = Predictor(b.config.backend, rules_file=src.rules_file)
print('drifted before', len(b.log.drifted_units()), 'measured', b.log.kernel_measurements())
b.config = replace(b.config, max_samples=b.log.kernel_measurements() + 1000, minutes=1e6)
b.deadline = float("inf")
n = b.retime_drifted()
print('retimed', n, 'drifted after', len(b.log.drifted_units()), 'measured', b.log.kernel_measurements())
res = b._fit_and_write(out / 'bundle', first.get('rounds') or [], n, len(b.log.drifted_units()), source={
    'record': [_source_record('ort-cpu', src)], 'machine': src.meta.get('machine'),
    'config': first.get('config') or {}, 'runs': first.get('runs') or [],
    'sample_log': first.get('sample_log'), 'calibration_ms': b.calib_known})
print(res.bundle, res.measurements, res.samples)
