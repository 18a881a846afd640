"""Leave-one-family-out of the shipped ort-cpu samples under training seeds 0 (the shipped
bundle, ``../evaluate-ort-cpu.json``), 1 and 2 (``seed<N>/``): how much of the figure is the
training draw.  Usage: python summary.py > summary.txt"""
import gzip
import json
from pathlib import Path


def load(path: Path) -> dict:
    if path.suffix == ".gz":
        with gzip.open(path, "rt") as f:
            return json.load(f)
    return json.loads(path.read_text())


runs = {0: load(Path("../evaluate-ort-cpu.json")),
        **{s: load(Path(f"seed{s}/evaluate-ort-cpu.json.gz")) for s in (1, 2)}}
folds = [f for f in runs[0]["lofo"]["methods"]["nn-meter"] if f != "overall"]
print("| | " + " | ".join(f"seed {s}" for s in runs) + " |")
print("| --- |" + " ---: |" * len(runs))
for label, key in [("within ±10 %, all samples", None), ("leave-one-family-out", "overall")] + \
        [(f"  {f}", f) for f in folds]:
    cells = []
    for d in runs.values():
        if key is None:
            cells.append(f"{d['accuracy']['overall']['acc10']:.1f} %")
        else:
            cells.append(f"{d['lofo']['methods']['nn-meter'][key]['acc10']:.1f} %")
    print(f"| {label} | " + " | ".join(cells) + " |")
