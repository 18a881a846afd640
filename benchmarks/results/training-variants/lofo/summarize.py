"""Tabulate the retrained variants (retrain_score.py's JSONs here) beside the current choice.

    python summarize.py   (writes summary.md)

AMD: every variant retrained here, the current choice included (amd-current.json reproduces the
shipped bundle's 97.1 / 87.9 %).  Xeon: only the logratio-only retrain is here; the current
choice's figures are those bundles' own evaluations (../../xeon/grid-share/eval-*/ and
../../xeon/full/), on the same ground truth, with each build's level taken out the same way.
"""
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
XEON = HERE.parents[1] / "xeon"
CURRENT_XEON = {"default": "grid-share/eval-default", "default-s1": "grid-share/eval-default-s1",
                "default-s2": "grid-share/eval-default-s2", "grid600": "grid-share/eval-grid600",
                "grid600-s1": "grid-share/eval-grid600-s1",
                "grid600-s2": "grid-share/eval-grid600-s2", "ort-cpu-xeon": "full"}


def level_out(path: Path) -> tuple[float, float]:
    """±10 % in-family and left out, each prediction divided by the in-family median ratio."""
    models = json.loads(path.read_text())["models"]
    r = np.array([m["predicted_ms"] / m["measured_ms"] for m in models])
    lo = np.array([m["lofo_ms"] / m["measured_ms"] for m in models])
    level = np.median(r)
    acc = lambda x: float(100 * np.mean(np.abs(x / level - 1) <= 0.10))  # noqa: E731
    return acc(r), acc(lo)


def main() -> None:
    lines = ["AMD EPYC, shipped `ort-cpu` bundle's samples, its 680-model ground truth:", "",
             "| variant | ±10 % | leave-one-family-out ±10 % | file |",
             "| --- | ---: | ---: | --- |"]
    for f in sorted(HERE.glob("amd-*.json")):
        d = json.loads(f.read_text())
        lines.append(f"| {f.stem.removeprefix('amd-')} | {d['acc10']:.1f} % | "
                     f"{d['lofo_acc10']:.1f} % | `{f.name}` |")
    lines += ["", "Intel Xeon builds, their 680-model ground truth, each build's level taken out:",
              "", "| bundle | current: ±10 % | current: left out | logratio only: ±10 % | "
              "logratio only: left out |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, where in CURRENT_XEON.items():
        stem = f"xeon-{'' if name == 'ort-cpu-xeon' else 'bundle-'}{name}-logratio"
        d = json.loads((HERE / f"{stem}.json").read_text())
        cur = level_out(XEON / where / "evaluate-ort-cpu.json")
        lines.append(f"| {name} | {cur[0]:.1f} % | {cur[1]:.1f} % | "
                     f"{d['acc10_level_out']:.1f} % | {d['lofo_level_out']:.1f} % |")
    (HERE / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
