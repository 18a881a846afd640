"""Summarise the grid-share builds' evaluations: level, accuracy as scored and with the level
taken out, leave-one-family-out, and how far leaving a family out moves its predictions.

    python summarize.py   (reads eval-*/evaluate-ort-cpu.json, writes summary.json / .md)

- level: median of predicted / measured over the 680 models (a build's absolute offset: the
  host's speed while it built, against the ground truth's, measured at another time);
- "level out": every prediction divided by that median (what the samples and the cost models
  do apart from the offset; a diagnostic, not an accuracy figure);
- shift: per family, the mean of leave-one-family-out / all-samples prediction, minus 1 (needs
  no ground truth, so the offset cancels).
"""
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHIPPED = HERE.parent / "full" / "evaluate-ort-cpu.json"  # its evaluation, and the truth's


def acc10(ratio) -> float:
    return float(100 * np.mean(np.abs(np.asarray(ratio) - 1) <= 0.10))


def row(name: str, path: Path) -> dict:
    models = json.loads(path.read_text())["models"]
    fams = np.array([m["family"] for m in models])
    r = np.array([m["predicted_ms"] / m["measured_ms"] for m in models])
    lofo = np.array([m["lofo_ms"] / m["measured_ms"] for m in models])
    level = float(np.median(r))
    shift = {f: float(100 * np.mean(lofo[fams == f] / r[fams == f] - 1))
             for f in dict.fromkeys(fams.tolist())}
    meta = json.loads((path.parent / "bundle.json").read_text()) \
        if (path.parent / "bundle.json").exists() else {}
    build = meta.get("build") or {}
    return {"build": name, "file": str(path.relative_to(HERE.parent)), "built_at": meta.get("created"),
            "kernels_timed": build.get("kernels_timed"), "build_s": build.get("seconds"),
            "grid_samples": (build.get("config") or {}).get("grid_samples"),
            "initial_samples": (build.get("config") or {}).get("initial_samples"),
            "level_pct": 100 * (level - 1),
            "acc10": acc10(r), "acc10_level_out": acc10(r / level),
            "lofo_acc10": acc10(lofo), "lofo_acc10_level_out": acc10(lofo / level),
            "nb201_lofo_level_out": acc10(lofo[fams == "nasbench201"] / level),
            "mean_abs_shift_pct": float(np.mean(np.abs(list(shift.values())))),
            "shift_pct": shift}


def second_truth() -> list[dict]:
    """The same bundles scored on a ground truth measured after them (``truth2/``, no
    leave-one-family-out): level and ±10 % only."""
    out = []
    for path in sorted(HERE.glob("truth2/eval-*/evaluate-ort-cpu.json")):
        models = json.loads(path.read_text())["models"]
        r = np.array([m["predicted_ms"] / m["measured_ms"] for m in models])
        level = float(np.median(r))
        out.append({"build": path.parent.name.removeprefix("eval-"), "models": len(models),
                    "level_pct": 100 * (level - 1), "acc10": acc10(r),
                    "acc10_level_out": acc10(r / level)})
    return out


def main() -> None:
    rows = [row(p.parent.name.removeprefix("eval-"), p)
            for p in sorted(HERE.glob("eval-*/evaluate-ort-cpu.json"))]
    rows.append(row("shipped-ort-cpu-xeon", SHIPPED))  # a default build of the session before
    second = second_truth()
    (HERE / "summary.json").write_text(json.dumps(
        {"full_evaluation_truth": rows, "second_truth": second}, indent=1) + "\n")
    cols = ("level_pct", "acc10", "acc10_level_out", "lofo_acc10", "lofo_acc10_level_out",
            "nb201_lofo_level_out", "mean_abs_shift_pct")
    lines = ["| build | finished (UTC) | kernels timed | build s | level | ±10 % | ±10 %, level out | LOFO ±10 % | LOFO, level out "
             "| NB201 LOFO, level out | mean abs shift | NB201 shift |",
             "| --- | --- " + "| ---: " * 10 + "|"]
    for r in rows:
        lines.append(f"| {r['build']} | {(r['built_at'] or '')[11:16] or '—'} | "
                     f"{r['kernels_timed'] or '—'} | "
                     f"{round(r['build_s']) if r['build_s'] else '—'} | " + " | ".join(
            f"{r[c]:+.1f} %" if c == "level_pct" else f"{r[c]:.1f}" for c in cols)
            + f" | {r['shift_pct']['nasbench201']:+.1f} |")
    for group in ("default", "grid600"):
        sel = [r for r in rows if r["build"].startswith(group)]
        if sel:
            lines.append(f"| **{group}, mean of {len(sel)}** | | | | " + " | ".join(
                f"{np.mean([abs(r[c]) for r in sel]):.1f} (abs)" if c == "level_pct"
                else f"{np.mean([r[c] for r in sel]):.1f}" for c in cols)
                + f" | {np.mean([r['shift_pct']['nasbench201'] for r in sel]):+.1f} |")
    if second:
        lines += ["", f"Second ground truth (`truth2/`, the models measured in both passes there):",
                  "", "| build | models | level | ±10 % | ±10 %, level out |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r['build']} | {r['models']} | {r['level_pct']:+.1f} % | {r['acc10']:.1f} | "
                  f"{r['acc10_level_out']:.1f} |" for r in second]
        for group in ("default", "grid600"):
            sel = [r for r in second if r["build"].startswith(group)]
            lines.append(f"| **{group}, mean of {len(sel)}** | | "
                         f"{np.mean([abs(r['level_pct']) for r in sel]):.1f} (abs) | "
                         f"{np.mean([r['acc10'] for r in sel]):.1f} | "
                         f"{np.mean([r['acc10_level_out'] for r in sel]):.1f} |")
    (HERE / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
