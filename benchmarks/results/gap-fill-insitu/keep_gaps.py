"""Variant of ``insitu_gaps.py``: of the new in-situ units, keep only the kernels whose spec
is one of the gaps (the rest of each model was timed, and is dropped), then train again.
Usage: python keep_gaps.py INSITU_BUNDLE SOURCE_BUNDLE GAPS_JSON OUT_DIR"""
import json
import sys
from pathlib import Path

from nnmeter_tvm.builder.build import (bundle_builder, extension_builder, truth_kernels,
                                       write_extension)
from nnmeter_tvm.builder.kernel_models import spec_from_kernel, spec_key
from nnmeter_tvm.predictors import load_predictor


def main() -> int:
    insitu, source_name, gaps_file, out_dir = sys.argv[1:5]
    # a working log of its own: the in-situ bundle's samples file is never written
    builder, src, _ = extension_builder(insitu, Path(out_dir) / "keep.jsonl")
    old = set(bundle_builder(load_predictor(source_name, models=False)).log.units)
    keys = {spec_key(s) for s in json.loads(Path(gaps_file).read_text())["specs"]}
    kept = dropped = 0
    for name, unit in builder.log.units.items():
        if name in old or not name.startswith("zoo:"):
            continue
        graph, keep = builder._unit_graph(unit), []
        for k in unit["kernels"]:
            if k["nodes"] and not k["inserted"]:
                matched = truth_kernels(graph, [k], builder._block(), builder.predictor)
                spec = matched and spec_from_kernel(matched[0][0], graph)
                if spec and spec_key(spec) in keys:
                    keep.append(k)
        kept, dropped = kept + len(keep), dropped + len(unit["kernels"]) - len(keep)
        unit["kernels"] = keep
        builder._rows.pop(name, None)
    print(f"kept {kept} gap kernels, dropped {dropped}", file=sys.stderr)
    result = write_extension(builder, insitu, src, Path(out_dir))
    print(f"bundle {out_dir}: {result.samples} samples", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
