"""The model-level figures of this folder's variants -> summary.json (run where the variants'
evaluate-ort-cpu.json files are: /tmp/s14/eval_<variant>/, same ground truth as the shipped
bundle's evaluation).  Usage: python summarize.py EVAL_ROOT > summary.json"""
import json, sys
from pathlib import Path
import numpy as np

VARIANTS = {
    "shipped": "the shipped bundle (training seed 0)",
    "s_1": "the shipped samples, training seed 1", "s_2": "training seed 2",
    "s_3": "training seed 3",
    "name": "adaptive round dropped and drawn again now, misses in the builder's order",
    "abs": "adaptive round dropped and drawn again now, largest absolute misses first",
    "g_old": "+150 grid convs, shipped grid (cin, cout independent), draw seed 11",
    "g_tied": "+150 grid convs, cout = cin x 2^U(-1.5, 1.5), draw seed 11",
    "g2_old": "+150 grid convs, shipped grid, draw seed 12",
    "g2_tied": "+150 grid convs, tied channels, draw seed 12",
}
root = Path(sys.argv[1])
out = {}
for v, what in VARIANTS.items():
    path = (Path(__file__).resolve().parents[1] / "evaluate-ort-cpu.json" if v == "shipped"
            else root / f"eval_{v}" / "evaluate-ort-cpu.json")
    models = json.loads(path.read_text())["models"]
    e = np.array([m["predicted_ms"] / m["measured_ms"] - 1 for m in models])
    nb = np.array([m["family"] == "nasbench201" for m in models])
    hit = np.abs(e) <= 0.10
    out[v] = {"what": what, "models": len(models), "acc10": round(100 * hit.mean(), 1),
              "nasbench201_acc10": round(100 * hit[nb].mean(), 1),
              "nasbench201_mean_error": round(100 * e[nb].mean(), 1),
              "cnn_acc10": round(100 * hit[~nb].mean(), 1)}
preds = []
for v in ("shipped", "s_1", "s_2", "s_3"):
    path = (Path(__file__).resolve().parents[1] / "evaluate-ort-cpu.json" if v == "shipped"
            else root / f"eval_{v}" / "evaluate-ort-cpu.json")
    preds.append({m["model"]: m for m in json.loads(path.read_text())["models"]})
names = list(preds[0])
meas = np.array([preds[0][n]["measured_ms"] for n in names])
nb = np.array([preds[0][n]["family"] == "nasbench201" for n in names])
avg = np.mean([[p[n]["predicted_ms"] for n in names] for p in preds], axis=0)
e = avg / meas - 1
out["mean_of_4_seeds"] = {"what": "mean prediction of the four training seeds",
                          "models": len(names), "acc10": round(100 * np.mean(np.abs(e) <= .1), 1),
                          "nasbench201_acc10": round(100 * np.mean(np.abs(e[nb]) <= .1), 1),
                          "nasbench201_mean_error": round(100 * e[nb].mean(), 1),
                          "cnn_acc10": round(100 * np.mean(np.abs(e[~nb]) <= .1), 1)}
print(json.dumps(out, indent=1))
