"""How each rule's verdict was reached: the rules shipped before this run (no probe,
``before-rules-ort-cpu.json.gz``), the whole zoo and the
encoders detected again with a 16x2 launch probe, and the same measurements decided again
without the probe's rows (``../ort-launch-probe-trial/redecide.py``), which isolates what the
probe adds from a new draw of the 32x56 and 18x56 timings.  Also lists every grouping that
differs from the shipped file's.  Usage: python compare.py > compare.txt"""
import gzip
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ort-launch-probe-trial"))
from redecide import tuples  # noqa: E402

from nnmeter_tvm.builder.rules_verdicts import decide  # noqa: E402

SHIPPED = Path(__file__).resolve().parent / "before-rules-ort-cpu.json.gz"
PROBED = Path(__file__).resolve().parent / "rules-ort-cpu-launch16x2.json.gz"


def how(method: str, note: str) -> str:
    if method == "timing":
        return "timing"
    return ("observed: inconclusive" if "inconclusive" in note else
            "observed: agrees where conclusive" if "agrees" in note else "observed: contradicted")


def without_probe(rule) -> str:
    rows = [t for t in tuples(rule, False) if not t[0].launch]
    if not rows:
        return "-"
    _, _, method, note = decide(rows)
    return how(method, note)


def load(path) -> dict:
    text = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_text()
    return {r["name"]: r for r in json.loads(text)["rules"] if r["kind"] != "view"}


shipped, probed = load(SHIPPED), load(PROBED)
columns = {"shipped": {n: how(r["origin"]["method"], r.get("note", "")) for n, r in shipped.items()},
           "16x2": {n: how(r["origin"]["method"], r.get("note", "")) for n, r in probed.items()},
           "16x2 without the probe": {n: without_probe(r) for n, r in probed.items()}}
names = sorted(set(shipped) | set(probed))
print("Rules whose verdict was reached differently:\n")
print("| rule | " + " | ".join(columns) + " |")
print("| --- |" + " --- |" * len(columns))
for n in names:
    row = [columns[k].get(n, "-") for k in columns]
    if len(set(row)) > 1:
        print(f"| {n} | " + " | ".join(row) + " |")
print()
for k, col in columns.items():
    c = Counter(col.get(n, "-") for n in names)
    print(f"{k}: " + ", ".join(f"{v} {m}" for m, v in sorted(c.items())))
print("\nGroupings that differ from the shipped file's:")
for n in names:
    a, b = shipped.get(n), probed.get(n)
    if a is None or b is None:
        print(f"  {n}: only in {'the probed' if a is None else 'the shipped'} file")
    elif (a["groups"], a.get("requires")) != (b["groups"], b.get("requires")):
        print(f"  {n}: shipped {a['case']} {a.get('requires')}, 16x2 {b['case']} {b.get('requires')}")
