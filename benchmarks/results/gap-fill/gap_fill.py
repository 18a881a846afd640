"""Measure the prior's specs that no sample of a bundle is near, and train again on all.

The prior is the builder's: the layers of the zoo models it reads (zoo seed 1000, never the
evaluation's seed 0).  A sample is near a prior spec when it is of the same kind, kernel size,
stride and grouping (dense, depthwise or grouped), a depthwise conv's channels are on the same
side of a multiple of 4 (onnxruntime runs those in another layout), and its channels and
spatial size are each within 2x.  Measures the gap specs on this machine (packed as the
builder packs), as ``build --extend`` measures the wide grid, then writes the bundle.
Usage: python gap_fill.py BUNDLE OUT_DIR [MAX_SPECS]"""
import json
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

from nnmeter_tvm.builder.build import extension_builder, write_extension

FACTOR = 2.0


def group(spec: dict) -> str:
    g, cin = spec.get("groups", 1), spec.get("cin", spec.get("c", 0))
    if g == 1:
        return "dense"
    return "dw" if g == cin == spec.get("cout") else "grouped"


def signature(spec: dict) -> tuple:
    """What must be equal for a sample to be near."""
    plain = group(spec) == "dw" and spec["cin"] % 4 != 0
    return (spec.get("kind"), spec.get("op"), spec.get("k"), spec.get("s"), group(spec), plain)


def sizes(spec: dict) -> list[float]:
    return [float(spec[f]) for f in ("cin", "cout", "c", "h", "m")
            if isinstance(spec.get(f), (int, float))]


def near(a: dict, b: dict) -> bool:
    sa, sb = sizes(a), sizes(b)
    return len(sa) == len(sb) and all(y / FACTOR <= x <= y * FACTOR for x, y in zip(sa, sb))


def gaps(prior: Counter, samples: list[dict]) -> list[dict]:
    by_sig: dict[tuple, list] = {}
    for s in samples:
        if s.get("spec"):
            by_sig.setdefault(signature(s["spec"]), []).append(s["spec"])
    out = []
    for key, weight in prior.most_common():
        spec = json.loads(key)
        if not any(near(spec, other) for other in by_sig.get(signature(spec), ())):
            out.append(spec)
    return out


def main() -> int:
    bundle, out_dir = sys.argv[1], Path(sys.argv[2])
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    builder, source, _ = extension_builder(bundle, out_dir / "gap.jsonl")
    prior = builder.prior()
    found = gaps(prior, builder.samples())
    print(f"prior: {len(prior)} specs; {len(found)} with no sample near; measuring the "
          f"{min(limit, len(found))} most frequent", file=sys.stderr)
    todo = found[:limit]
    kinds = Counter(signature(s)[0] for s in todo)
    measure_and_write(builder, bundle, source, todo, out_dir, {
        "prior_specs": len(prior), "gaps": len(found), "measured": len(todo), "by_kind": kinds})
    return 0


def measure_and_write(builder, bundle, source, todo: list, out_dir: Path, record: dict):
    """Measure the specs ``todo`` packed (within a budget of their own), train again, write
    ``out_dir/bundle`` and ``out_dir/gaps.json`` (``record`` and the specs)."""
    kept = builder.config
    builder.config = replace(kept, max_samples=builder.log.kernel_measurements()
                             + 4 * len(todo), minutes=60.0)
    builder.measure_specs({"gap": todo})
    builder._phase("gap")
    builder.config = kept  # the bundle keeps its build's budget for later extensions
    result = write_extension(builder, bundle, source, out_dir / "bundle")
    (out_dir / "gaps.json").write_text(json.dumps({**record, "specs": todo}, indent=1))
    print(f"bundle {out_dir / 'bundle'}: {result.measurements} kernels timed, "
          f"{result.samples} samples", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
