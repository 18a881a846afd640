"""The 22 chain rules of two detections: how each was decided, and per test shape how often
timing was conclusive and agreed with onnxruntime's kernel list.

    python chain_agreement.py ../ort-cpu-xeon.json rules-common.json    # chain_agreement.json
"""
import json
import sys
from collections import Counter


def shape_label(shape):
    return f"c{shape['c']}hw{shape['h']}" + ("-launch" if shape.get("probe") else "") + \
        ("-plainother" if shape.get("other_operand") else "")


def stats(rules):
    per_shape, decided = {}, Counter()
    for r in rules:
        decided["timing" if r["origin"]["method"] == "timing" else
                ("contradicted" if "backend's own kernels say" in r["note"] else "kernel list")] += 1
        for e in r["evidence"]:
            c = per_shape.setdefault(shape_label(e["shape"]), Counter())
            obs = e.get("observed")
            if obs is None or obs.startswith("unreliable"):
                continue
            c["tests"] += 1
            if not e.get("inconclusive"):
                c["agrees" if e["winner"] == obs else "contradicts"] += 1
    return {"decided": dict(decided), "per_shape": {k: dict(v) for k, v in per_shape.items()}}


def main(before, after):
    names = {r["name"] for r in json.load(open(after))["rules"] if r["kind"] == "chain"}
    out = {}
    for label, path in (("first occurrence (shipped)", before), ("zoo's most common", after)):
        rules = [r for r in json.load(open(path))["rules"] if r["name"] in names]
        out[label] = stats(rules)
        print(label, json.dumps(out[label]))
    json.dump(out, open("chain_agreement.json", "w"), indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:3])
