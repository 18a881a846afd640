"""How far this host's speed moved between ground truths measured at different times.

    python compare_truths.py   (writes compare_truths.json / .md)

The same 56 models (evaluate.py --quick's, a subset of the full evaluation's 680): measured in
the full evaluation (../full/, the session before), at 14:00 and at 14:40 UTC on 2026-11-29
(quick-1400/, quick-1440/: `evaluate.py --quick` with an empty store each).  The 14:40 run
scored the grid600-s2 build (../grid-share/), whose level against ../full/ was +7.5 %.  A fourth
run at 16:52 (quick-1652/, the session after) scored the shipped ort-cpu-xeon and a default
build finished at 16:28 (quick-1652-build1624/; the build: build-1624/).
"""
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TRUTHS = {"full (session 22)": HERE.parent / "full" / "evaluate-ort-cpu.json",
          "14:00": HERE / "quick-1400" / "evaluate-ort-cpu-quick.json",
          "14:40": HERE / "quick-1440" / "evaluate-ort-cpu-quick.json",
          "16:52": HERE / "quick-1652" / "evaluate-ort-cpu-quick.json"}
SCORED = (("14:40", "grid600-s2 build (14:36)", HERE / "quick-1440"),   # (truth, predictor, run)
          ("16:52", "shipped ort-cpu-xeon (session 22)", HERE / "quick-1652"),
          ("16:52", "default build (16:24-16:28)", HERE / "quick-1652-build1624"))


def load(path):
    d = json.loads(path.read_text())
    return d, {m["model"]: m for m in d["models"]}


def main() -> None:
    data = {k: load(p) for k, p in TRUTHS.items()}
    names = list(data["14:00"][1])
    out = {"models": len(names), "ratios": {}}
    keys = list(TRUTHS)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            r = np.array([data[b][1][n]["measured_ms"] / data[a][1][n]["measured_ms"]
                          for n in names])
            out["ratios"][f"{b} / {a}"] = {"median": float(np.median(r)),
                                           "p10": float(np.percentile(r, 10)),
                                           "p90": float(np.percentile(r, 90))}
    out["scored"] = []
    for when, label, run in SCORED:
        d, models = load(run / "evaluate-ort-cpu-quick.json")
        p = np.array([m["predicted_ms"] / m["measured_ms"] for m in models.values()])
        out["scored"].append({"truth": when, "predictor": label,
                              "level": float(np.median(p)),
                              "acc10": float(100 * np.mean(np.abs(p - 1) <= 0.1))})
    (HERE / "compare_truths.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = [f"Same {len(names)} models, measured ms of the later over the earlier:", "",
             "| later / earlier | median | p10 | p90 |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {k} | {v['median']:.3f} | {v['p10']:.3f} | {v['p90']:.3f} |"
              for k, v in out["ratios"].items()]
    lines += ["", "| truth | predictor | level | ±10 % |", "| --- | --- | ---: | ---: |"]
    lines += [f"| {s['truth']} | {s['predictor']} | {100 * (s['level'] - 1):+.1f} % | "
              f"{s['acc10']:.1f} % |" for s in out["scored"]]
    (HERE / "compare_truths.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
