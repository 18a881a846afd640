"""Experiments on the ort-cpu bundle shipped before this change (run them with it installed):
its packs that hold a conv-add spec profiled again as the builder now writes them (the add's
operand from a small conv), everything else kept; or, with ``--drifted``, its drifted units
(profiled while the host was loaded: no samples) timed again instead.
Usage: python reprofile_add.py OUT_DIR [--drifted]  (writes OUT_DIR/bundle; evaluate it with
evaluate.py --predictor OUT_DIR/bundle)."""
import sys
from dataclasses import replace
from pathlib import Path

from nnmeter_tvm import features
from nnmeter_tvm.builder.build import Progress, _source_record, _unit_info, bundle_builder
from nnmeter_tvm.predictors import Predictor, load_predictor


def main(out: Path, drifted: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    src = load_predictor("ort-cpu", models=False)
    first = src.meta.get("build") or {}
    b = bundle_builder(src)
    b.progress = Progress(True)
    old = b.log
    b.log = b.new_log(out / "working.jsonl")  # the bundle's units, and the ones measured now
    b.log.pool(old, src.meta.get("source"))
    b.calib_known = first.get("calibration_ms") or {}
    b.features = features
    b.predictor = Predictor(b.config.backend, rules_file=src.rules_file)
    before = b.log.kernel_measurements()
    b.config = replace(b.config, max_samples=before + 5000)  # no budget: an experiment
    b.deadline = float("inf")
    if drifted:
        units = b.log.drifted_units()
    else:
        units = [u for u in b.log.units.values() if u["kind"] == "pack" and not b.log.drifted(u)
                 and any(s["kind"] == "conv" and "add" in (s.get("epi") or [])
                         for s in u["specs"])]
    for n, u in enumerate(list(units)):
        b.progress("profile", n + 1, len(units), u["unit"][:40])
        b._measure_unit(u["unit"], b._unit_model(u), **_unit_info(u))
    print("units", len(units), "kernels timed before", before, "after",
          b.log.kernel_measurements(), "drifted", len(b.log.drifted_units()))
    res = b._fit_and_write(out / "bundle", first.get("rounds") or [], 0,
                           len(b.log.drifted_units()), source={
        "record": [_source_record("ort-cpu", src)], "machine": src.meta.get("machine"),
        "config": first.get("config") or {}, "runs": first.get("runs") or [],
        "sample_log": first.get("sample_log"), "calibration_ms": b.calib_known})
    print(res.bundle, res.measurements, res.samples)


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--drifted" in sys.argv[2:])
