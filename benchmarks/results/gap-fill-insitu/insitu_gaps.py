"""The gap specs of ``../gap-fill/`` profiled in situ: the zoo models (seed 1000, the
builder's, never the evaluation's seed 0) that hold them, whole, as in-situ units.

Each gap spec comes from one of the builder's prior models; a greedy cover picks the fewest
of those models that hold every gap, and each is profiled as the builder profiles its in-situ
models (unit ``zoo:<family>:1000:<index>:<size>``, so leave-one-family-out drops it with its
family).  Then every cost model is trained again on all the samples.
Usage: python insitu_gaps.py BUNDLE GAPS_JSON OUT_DIR [--list]"""
import json
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from nnmeter_tvm import zoo
from nnmeter_tvm.builder.build import extension_builder, write_extension
from nnmeter_tvm.builder.kernel_models import spec_from_kernel, spec_key


def holders(builder, gap_keys: set) -> dict:
    """(family, index) -> the gap keys that prior model holds."""
    out = defaultdict(set)
    for family, pairs in builder.prior_models().items():
        for index, (graph, kernels) in enumerate(pairs):
            for kernel in kernels:
                spec = spec_from_kernel(kernel, graph)
                if spec is not None and spec_key(spec) in gap_keys:
                    out[(family, index)].add(spec_key(spec))
    return out


def cover(held: dict, keys: set) -> list:
    """Greedy set cover: the models holding the most uncovered gaps first."""
    left, chosen = set(keys), []
    while left:
        best = max(held, key=lambda m: (len(held[m] & left), -m[1]))
        if not held[best] & left:
            break
        chosen.append(best)
        left -= held[best]
    return chosen


def main() -> int:
    bundle, gaps_file, out_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    builder, source, _ = extension_builder(bundle, out_dir / "insitu.jsonl")
    keys = {spec_key(s) for s in json.loads(Path(gaps_file).read_text())["specs"]}
    held = holders(builder, keys)
    chosen = cover(held, keys)
    cfg = builder.config
    plan = [{"family": f, "index": i, "gaps": len(held[(f, i)])} for f, i in chosen]
    print(json.dumps(plan), file=sys.stderr)
    if "--list" in sys.argv:
        return 0
    builder.config = cfg = replace(cfg, max_samples=10**6, minutes=60.0)
    for n, (family, index) in enumerate(chosen):
        unit = f"zoo:{family}:{cfg.zoo_seed}:{index}:{cfg.input_size}"
        builder.progress("in-situ gaps", n + 1, len(chosen), family)
        if not builder.log.done(unit):
            builder._measure_unit(unit, zoo.generate(family, cfg.zoo_seed, index, cfg.input_size),
                                  kind="zoo", origin="zoo",
                                  zoo=[family, cfg.zoo_seed, index, cfg.input_size])
    builder._phase("insitu-gaps")
    result = write_extension(builder, bundle, source, out_dir / "bundle")
    (out_dir / "plan.json").write_text(json.dumps({"gaps": len(keys), "models": plan,
                                                   "covered": len(set().union(*held.values()))},
                                                  indent=1))
    print(f"bundle {out_dir / 'bundle'}: {result.measurements} kernels timed, "
          f"{result.samples} samples", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
