"""The variants' offline scores side by side (``eval/<variant>-s<seed>/``), against the
shipped features retrained with the same seeds (``../blocked-flops/eval-ort-cpu-new-<seed>/``).
Usage: python summary.py > summary.txt"""
import gzip
import json
from pathlib import Path

import numpy as np


def load(folder: Path, backend: str = "ort-cpu") -> dict:
    with gzip.open(folder / f"evaluate-{backend}.json.gz", "rt") as f:
        return json.load(f)


def acc(models, family=None, tol=0.10) -> float:
    e = [abs(m["predicted_ms"] / m["measured_ms"] - 1) <= tol for m in models
         if family is None or m["family"] == family]
    return 100 * float(np.mean(e))


def folder(variant: str, seed: int) -> Path:
    """A variant's seed: seed 0 of ``bytes`` and ``feeds`` was scored with leave-one-family-out
    (``-lofo``), which predicts the same models alike."""
    lofo = Path(f"eval/{variant}-s{seed}-lofo")
    return lofo if lofo.exists() else Path(f"eval/{variant}-s{seed}")


variants = {"shipped features": [Path(f"../blocked-flops/eval-ort-cpu-new-{s}") for s in range(3)],
            **{v: [folder(v, s) for s in range(3)] for v in ("bytes", "feeds", "both")}}
runs = {v: [load(p)["models"] for p in paths] for v, paths in variants.items()}
families = sorted({m["family"] for m in runs["shipped features"][0]})
print("ort-cpu, within ±10 % for training seeds 0 / 1 / 2 (±5 % overall in the second row)\n")
print("| | " + " | ".join(variants) + " |")
print("| --- |" + " ---: |" * len(variants))
for label, fam, tol in [("all", None, 0.10), ("all, ±5 %", None, 0.05)] + \
        [(f, f, 0.10) for f in families]:
    cells = [" / ".join(f"{acc(r, fam, tol):.1f}" for r in rs) for rs in runs.values()]
    print(f"| {label} | " + " | ".join(cells) + " |")
print("\nleave-one-family-out (seed 0) and tvm-llvm (seed 0)\n")
for label, folder, backend in [("shipped", Path(".."), "ort-cpu"),
                               ("bytes", Path("eval/bytes-s0-lofo"), "ort-cpu"),
                               ("feeds", Path("eval/feeds-s0-lofo"), "ort-cpu"),
                               ("shipped", Path(".."), "tvm-llvm"),
                               ("bytes", Path("eval/bytes-tvm-llvm"), "tvm-llvm"),
                               ("feeds", Path("eval/feeds-tvm-llvm"), "tvm-llvm")]:
    path = folder / f"evaluate-{backend}.json"
    d = json.loads(path.read_text()) if path.exists() else load(folder, backend)
    lofo = d["lofo"]["methods"]["nn-meter"]
    folds = ", ".join(f"{f} {v['acc10']:.1f}" for f, v in sorted(lofo.items())
                      if f != "overall" and v["acc10"] < 90)
    print(f"- {backend} {label}: within ±10 % {acc(d['models']):.1f} %, leave-one-family-out "
          f"{lofo['overall']['acc10']:.1f} % (folds below 90 %: {folds})")
