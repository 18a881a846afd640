"""summary.json: the model-level figures of every evaluation under this folder, read from its
evaluate-<backend>.json(.gz).  Usage: python summarize.py"""
import gzip
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(path: Path) -> dict:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return json.load(f)


out = {}
for path in sorted(HERE.rglob("evaluate-*.json*")):
    d = load(path)
    acc = d["accuracy"]
    row = {"backend": d["backend"], "acc5": acc["overall"]["acc5"],
           "acc10": acc["overall"]["acc10"], "acc15": acc["overall"]["acc15"],
           "rmspe": acc["overall"]["rmspe"],
           "families_acc10": {f: v["acc10"] for f, v in acc.items() if f != "overall"}}
    lofo = (d.get("lofo") or {}).get("methods", {}).get("nn-meter", {}).get("overall")
    if lofo:
        row["lofo_acc10"] = lofo["acc10"]
    out[str(path.parent.relative_to(HERE))] = row
(HERE / "summary.json").write_text(json.dumps(out, indent=1) + "\n")
for name, r in out.items():
    print(f"{name:28s} ±10 % {r['acc10']:.1f}  ±5 % {r['acc5']:.1f}  lofo {r.get('lofo_acc10', '–')}")
