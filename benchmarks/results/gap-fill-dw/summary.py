"""The depthwise gaps filled against the shipped samples, training seeds 0-2, offline on the
same ground truth: within ±10 % overall and per family, leave-one-family-out overall and per
family.  Shipped: ``../evaluate-ort-cpu.json`` (seed 0) and ``../lofo-seeds/seed1``, ``seed2``.
Usage: python summary.py > summary.txt"""
import gzip
import json
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = {"shipped": [HERE.parent / "evaluate-ort-cpu.json",
                    HERE.parent / "lofo-seeds/seed1/evaluate-ort-cpu.json.gz",
                    HERE.parent / "lofo-seeds/seed2/evaluate-ort-cpu.json.gz"],
        "dw gaps": [HERE / f"seed{s}/evaluate-ort-cpu.json.gz" for s in range(3)]}


def load(path: Path) -> dict:
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)


def within(d: dict) -> dict:
    hits = defaultdict(list)
    for m in d["models"]:
        ok = abs(m["predicted_ms"] / m["measured_ms"] - 1) <= 0.10
        hits[m["family"]].append(ok)
        hits["overall"].append(ok)
    return {f: 100 * sum(v) / len(v) for f, v in hits.items()}


def lofo(d: dict) -> dict:
    return {f: v["acc10"] for f, v in d["lofo"]["methods"]["nn-meter"].items()}


runs = {k: [load(p) for p in paths] for k, paths in RUNS.items()}
for title, fn in (("within ±10 %", within), ("leave-one-family-out", lofo)):
    table = {k: [fn(d) for d in ds] for k, ds in runs.items()}
    print(f"{title}: seeds 0 / 1 / 2 (mean)")
    for f in ["overall"] + sorted(k for k in table["shipped"][0] if k != "overall"):
        cells = []
        for k, rows in table.items():
            v = [r[f] for r in rows]
            cells.append(f"{k} {' / '.join(f'{x:5.1f}' for x in v)} ({sum(v) / len(v):5.1f})")
        print(f"  {f:13s} " + "   ".join(cells))
    print()
