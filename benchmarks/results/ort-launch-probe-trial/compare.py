"""How each NAS-Bench-201 rule's verdict was reached: the shipped rules (no probe), the 4x2
probe trial, the 16x2 probe before and after the verdict logic kept the probe to its own
layout context (the same measurements, decided again).  Reads the rules files here and
``rules/ort-cpu.json``.  Usage: python compare.py > compare.txt"""
import json
from collections import Counter
from pathlib import Path

FILES = {"shipped": Path("../../../rules/ort-cpu.json"),
         "4x2": Path("rules-ort-cpu-nasbench201-launch4x2.json"),
         "16x2, old logic": Path("rules-ort-cpu-nasbench201-launch16x2-before-fix.json"),
         "16x2": Path("rules-ort-cpu-nasbench201-launch16x2.json")}


def how(rule) -> str:
    if rule is None:
        return "-"
    if rule["origin"]["method"] == "timing":
        return "timing"
    note = rule.get("note", "")
    return ("observed: inconclusive" if "inconclusive" in note else
            "observed: agrees where conclusive" if "agrees" in note else "observed: contradicted")


rules = {k: {r["name"]: r for r in json.loads(p.read_text())["rules"]} for k, p in FILES.items()}
names = list(rules["16x2"])
print("| rule | grouping (16x2) | " + " | ".join(FILES) + " |")
print("| --- | --- |" + " --- |" * len(FILES))
for name in names:
    r = rules["16x2"][name]
    grouping = r["case"] + (" if " + ",".join(r["requires"]) if r.get("requires") else "")
    print(f"| {name} | {grouping} | " + " | ".join(how(rules[k].get(name)) for k in FILES) + " |")
print()
for k in FILES:
    c = Counter(how(rules[k].get(n)) for n in names)
    print(f"{k}: " + ", ".join(f"{v} {n}" for n, v in sorted(c.items())))
