"""Decide each rule of a rules file again from its recorded evidence (no measurement), with the
current verdict logic, as recorded and with the launch probe's own kernel list dropped; prints
the rules whose verdict that changes, and the rules the file recorded differently (a file
written before a change of the verdict logic).

    python redecide.py RULES.json ...
"""
import json, sys
from types import SimpleNamespace
from nnmeter_tvm.builder import rules_verdicts as rv

def tuples(rule, drop_probe_obs):
    out = []
    for e in rule.get("evidence", []):
        if e.get("operand"):
            continue
        sh = e["shape"]
        launch = "probe" in sh
        s = SimpleNamespace(launch=launch, label=f"c{sh['c']}hw{sh['h']}")
        if rule["kind"] == "pair":
            v = e["verdict"] == "fused"
            o = None if e.get("observed") in (None,) else e["observed"] == "fused"
            if isinstance(e.get("observed"), str) and e["observed"].startswith("unreliable"):
                o = None if e["inconclusive"] else v
        else:
            v = tuple(e["winner"].split(" | "))
            o = None if e.get("observed") is None else tuple(e["observed"].split(" | "))
            if isinstance(e.get("observed"), str) and e["observed"].startswith("unreliable"):
                o = None if e["inconclusive"] else v
        b = e.get("blocked_inputs")
        if drop_probe_obs and launch:
            o = None
        out.append((s, v, not e["inconclusive"], None if b is None else tuple(b), o))
    return out

def show(path):
    d = json.load(open(path))
    same = diff = 0
    for r in d["rules"]:
        if not r.get("evidence") or r["kind"] not in ("pair", "multi_output", "multi_input", "chain"):
            continue
        old = rv.decide(tuples(r, False))
        new = rv.decide(tuples(r, True))
        shipped = r["origin"]["method"]
        if old[2] != shipped:
            print(f"  decided differently by the current logic: {r['name']}: recorded {shipped}, now {old[2]}")
        if (old[0], tuple(old[1]), old[2]) != (new[0], tuple(new[1]), new[2]):
            diff += 1
            print(f"  {r['name']}: {rv.vtext(old[0])} {old[1]} {old[2]} -> {rv.vtext(new[0])} {new[1]} {new[2]} | {new[3][:150]}")
        else:
            same += 1
    print(f"{path}: dropping the probe's kernels changes {diff} verdicts, leaves {same}")

if __name__ == "__main__":
    for p in sys.argv[1:]:
        show(p)
