"""How often the launch probe is conclusive, and agrees with onnxruntime's kernel list, with
one copy of the pattern per probe model and with eight.

    python probe_agreement.py ../ort-cpu-xeon.json rules-x8.json    # -> probe_agreement.json

Only the rules of the second file are counted in the first (``ort-cpu-xeon.json`` also has
the encoders' 14 rules, which the eight-copy run did not test).
"""
import json
import sys
from collections import Counter


def probe_stats(rules):
    """Counts over the probe's evidence that has an observed grouping to check it by."""
    c = Counter()
    for r in rules:
        for e in r["evidence"]:
            obs = e.get("observed")
            if not e["shape"].get("probe") or e.get("operand") or obs is None \
                    or obs.startswith("unreliable"):
                continue
            c["probed"] += 1
            if e.get("inconclusive"):
                c["inconclusive"] += 1
                continue
            c["conclusive"] += 1
            said = e.get("verdict") or e.get("winner")
            c["agrees" if said == obs else "contradicts"] += 1
    return dict(c)


def main(one_path, eight_path):
    eight = json.load(open(eight_path))["rules"]
    names = {r["name"] for r in eight}
    one = [r for r in json.load(open(one_path))["rules"] if r["name"] in names]
    out = {}
    for label, rules in (("one copy", one), ("eight copies", eight)):
        methods = Counter(r["origin"]["method"] for r in rules)
        out[label] = {"rules": len(rules), "probe": probe_stats(rules),
                      "decided_by": dict(methods)}
        print(label, out[label])
    json.dump(out, open("probe_agreement.json", "w"), indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:3])
