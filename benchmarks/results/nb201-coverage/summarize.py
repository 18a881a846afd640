"""summary.json from the evaluations of the variants (evaluate.py's full JSON of each, in
/tmp/s13/e_<variant>/ when this ran; the .md of each is kept in eval-<variant>/)."""
import json
import sys

VARIANTS = ("none6", "tiny-6", "sqrt-6", "none-8", "tiny-8", "sqrt-8", "ctxall", "ctxconv",
            "ctxconvs", "nbp", "noad", "comb", "swap1")
root = sys.argv[1] if len(sys.argv) > 1 else "/tmp/s13"
out = {}
for v in VARIANTS:
    d = json.load(open(f"{root}/e_{v}/evaluate-ort-cpu.json"))
    acc = d["accuracy"]
    cnn = [f for f in acc if f not in ("nasbench201", "overall")]
    lofo = (d.get("lofo") or {}).get("methods", {}).get("nn-meter", {})
    out[v] = {"acc10": acc["overall"]["acc10"], "acc5": acc["overall"]["acc5"],
              "nasbench201_acc10": acc["nasbench201"]["acc10"],
              "nasbench201_mean_err": acc["nasbench201"]["mean_err"],
              "cnn12_acc10": sum(acc[f]["acc10"] * acc[f]["n"] for f in cnn)
              / sum(acc[f]["n"] for f in cnn),
              "lofo_acc10": lofo.get("overall", {}).get("acc10"),
              "lofo_nasbench201_acc10": lofo.get("nasbench201", {}).get("acc10"),
              "kernel_samples": d["predictor"].get("kernel_samples")}
json.dump(out, open("summary.json", "w"), indent=1)
for v, s in out.items():
    print(v, {k: round(x, 1) if isinstance(x, float) else x for k, x in s.items()})
