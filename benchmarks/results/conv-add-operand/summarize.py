"""summary.json: the model-level figures of each evaluation in this folder (and the bundle
shipped before it), read from their evaluate-ort-cpu.json.  Usage: python summarize.py"""
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RUNS = {"before (shipped until now)": HERE / "before" / "evaluate-ort-cpu.json",
        "control: 45 units profiled again, written as before": HERE / "eval-addop-control",
        "45 units profiled again with the conv operand (experiment script)": HERE / "eval-addop",
        "the same with build --retrain --reprofile-stale": HERE / "eval-shipped-cli",
        "that + 15 residual adds (build --extend): shipped": HERE.parent / "evaluate-ort-cpu.json",
        "from scratch with the operand, before the residual kind (one build)": HERE / "eval-scratch",
        "from scratch, the committed code (one build)": HERE / "scratch-committed"}


def figures(path: Path) -> dict:
    d = json.loads((path / "evaluate-ort-cpu.json" if path.is_dir() else path).read_text())
    fam = np.array([m["family"] for m in d["models"]])
    err = np.array([m["predicted_ms"] / m["measured_ms"] - 1 for m in d["models"]])
    lofo = np.array([m["lofo_ms"] / m["measured_ms"] - 1 for m in d["models"]])
    nb = fam == "nasbench201"
    pct = lambda a: round(100 * float(np.mean(np.abs(a) <= 0.10)), 1)  # noqa: E731
    return {"acc10": pct(err), "nasbench201_acc10": pct(err[nb]),
            "nasbench201_mean_error_pct": round(100 * float(err[nb].mean()), 1),
            "cnn_acc10": pct(err[~nb]), "lofo_acc10": pct(lofo),
            "lofo_folds": {f: v["acc10"] for f, v in d["lofo"]["methods"]["nn-meter"].items()
                           if isinstance(v, dict) and "acc10" in v}}


if __name__ == "__main__":
    out = {name: figures(path) for name, path in RUNS.items()}
    (HERE / "summary.json").write_text(json.dumps(out, indent=1) + "\n")
    for name, f in out.items():
        print(f"{name}: {f['acc10']} % (NAS-Bench-201 {f['nasbench201_acc10']} %, "
              f"{f['nasbench201_mean_error_pct']:+} %), LOFO {f['lofo_acc10']} %")
