"""Experiment: the shipped ort-cpu bundle with the packs that hold a conv-add spec profiled again
as the builder now writes them (the add's operand from a small conv), everything else kept.
Usage: python reprofile_add.py OUT_DIR (writes OUT_DIR/bundle; evaluate it with evaluate.py)."""
import sys
from dataclasses import replace
from pathlib import Path
from nnmeter_tvm.builder.build import bundle_builder, Progress, _source_record, _unit_info
from nnmeter_tvm.predictors import load_predictor, Predictor
from nnmeter_tvm import features
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
src = load_predictor('ort-cpu', models=False)
b = bundle_builder(src)
b.progress = Progress(True)
first = src.meta.get('build') or {}
old = b.log
b.log = b.new_log(out / 'reprofile-add.jsonl')
b.log.pool(old, src.meta.get('source'))
b.calib_known = first.get('calibration_ms') or {}
b.features = features
b.predictor = Predictor(b.config.backend, rules_file=src.rules_file)
before = b.log.kernel_measurements()
b.config = replace(b.config, max_samples=before + 5000, minutes=1e6)
b.deadline = float('inf')
units = [u for u in list(b.log.units.values()) if u['kind'] == 'pack' and not b.log.drifted(u)
         and any(s['kind'] == 'conv' and 'add' in (s.get('epi') or []) for s in u['specs'])]
for n, u in enumerate(units):
    b.progress('reprofile', n + 1, len(units), u['unit'][:40])
    b._measure_unit(u['unit'], b._unit_model(u), **_unit_info(u))
print('units', len(units), 'measured before', before, 'after', b.log.kernel_measurements(), 'drifted', len(b.log.drifted_units()))
res = b._fit_and_write(out / 'bundle', first.get('rounds') or [], 0, len(b.log.drifted_units()), source={
    'record': [_source_record('ort-cpu', src)], 'machine': src.meta.get('machine'),
    'config': first.get('config') or {}, 'runs': first.get('runs') or [],
    'sample_log': first.get('sample_log'), 'calibration_ms': b.calib_known})
print(res.bundle, res.measurements, res.samples)
