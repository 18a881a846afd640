"""Compare the fusion rules detected on this Xeon with the shipped ones (detected on the AMD
machine): per rule, the same verdict or not (groups and conditions), and how each file reached
it (timing checked by the kernel list, or the kernel list where timing was inconclusive or
contradicted).

    python compare_rules.py XEON_RULES.json   (writes compare.json / compare.md here)
"""
import collections
import json
import sys
from pathlib import Path

from nnmeter_tvm.builder.rules_tester import verdicts_by_origin
from nnmeter_tvm.rules import load

HERE = Path(__file__).resolve().parent
SHIPPED = HERE.parents[3] / "rules" / "ort-cpu.json"


def how(rule) -> str:
    """The detection's origin class of one verdict (rules/SCHEMA.md)."""
    return next(iter(verdicts_by_origin([rule])))


def _raw(path, key):
    """A top-level block of a rules file without its origins (their dates differ)."""
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k != "origin"}
        return [strip(x) for x in v] if isinstance(v, list) else v
    return strip(json.loads(Path(path).read_text())[key])


def main() -> None:
    amd, xeon = load(SHIPPED), load(sys.argv[1])
    a, x = {r.name: r for r in amd.rules}, {r.name: r for r in xeon.rules}
    common = [n for n in a if n in x]
    differ = [n for n in common
              if (a[n].groups, a[n].requires) != (x[n].groups, x[n].requires)]
    pairs = collections.Counter((how(a[n]), how(x[n])) for n in common)
    out = {
        "shipped": {"file": "rules/ort-cpu.json", "machine": amd.machine.get("cpu_model"),
                    "date": amd.date, "rules": len(a)},
        "xeon": {"file": Path(sys.argv[1]).name, "machine": xeon.machine.get("cpu_model"),
                 "date": xeon.date, "rules": len(x), "detection": {
                     k: xeon.detection.get(k) for k in ("measurements", "reused_from_store",
                                                        "measuring_seconds", "failed")}},
        "common": len(common), "same_verdict": len(common) - len(differ),
        "only_shipped": sorted(set(a) - set(x)), "only_xeon": sorted(set(x) - set(a)),
        "differ": [{"rule": n, "shipped": [a[n].groups, a[n].requires, how(a[n])],
                    "xeon": [x[n].groups, x[n].requires, how(x[n])]} for n in differ],
        "how_shipped": dict(collections.Counter(how(a[n]) for n in common)),
        "how_xeon": dict(collections.Counter(how(x[n]) for n in common)),
        "how_both": {f"{p} / {q}": c for (p, q), c in sorted(pairs.items())},
        "layout_same": _raw(SHIPPED, "layout") == _raw(sys.argv[1], "layout"),
        "rewrites_same": _raw(SHIPPED, "rewrites") == _raw(sys.argv[1], "rewrites"),
    }
    (HERE / "compare.json").write_text(json.dumps(out, indent=1, default=list) + "\n")
    lines = [f"# Fusion rules detected on the Xeon against the shipped ones (AMD)", "",
             f"- rules: {len(a)} shipped, {len(x)} detected here, {len(common)} in both",
             f"- same verdict (groups and conditions): **{out['same_verdict']} of {len(common)}**",
             f"- layout model the same (origin dates aside): {out['layout_same']}; rewrites the "
             f"same: {out['rewrites_same']}", "", "| how reached (shipped / Xeon) | rules |",
             "| --- | ---: |"]
    lines += [f"| {k} | {v} |" for k, v in out["how_both"].items()]
    if differ:
        lines += ["", "| rule | shipped | Xeon |", "| --- | --- | --- |"]
        lines += [f"| {d['rule']} | {d['shipped']} | {d['xeon']} |" for d in out["differ"]]
    (HERE / "compare.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
