#!/bin/bash
# eval.sh BUNDLE_DIR OUT_DIR: score a bundle offline on the full Xeon evaluation's ground truth
# (leave-one-family-out included), then print its ±10 % and LOFO per family.
set -e
BENCH="$(cd "$(dirname "$0")/../../.." && pwd)"
OUT="$(mkdir -p "$2" && cd "$2" && pwd)"; rm -f "$OUT/empty.sqlite"
cd "$BENCH" && ../.venv/bin/python evaluate.py --predictor "$1" \
    --truth-from results/xeon/full/evaluate-ort-cpu.json --no-measure \
    --store "$OUT/empty.sqlite" --out "$OUT" > "$OUT/log.txt" 2>&1
python3 - "$OUT" <<'PY'
import json, sys
d = json.load(open(sys.argv[1] + "/evaluate-ort-cpu.json"))
a, l = d["accuracy"], d["lofo"]["methods"]["nn-meter"]
print("acc10 %.1f  lofo %.1f" % (a["overall"]["acc10"], l["overall"]["acc10"]))
print(" ".join(f"{f[:6]}:{a[f]['acc10']:.0f}/{l[f]['acc10']:.0f}" for f in a if f != "overall"))
PY
