"""Connection cases at the launch probe judged by the closest case (as at the other shapes)
instead of by counting launches, whenever an op alone costs more than LIMIT launches; decided
again from a rules file's recorded evidence (no measurement).

    python closest_case_at_probe.py RULES.json LIMIT
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ort-launch-probe-trial"))
from redecide import tuples  # noqa: E402
from nnmeter_tvm.builder import rules_verdicts as rv  # noqa: E402

LIMIT = float(sys.argv[2])
d = json.load(open(sys.argv[1]))
before = after = 0
for r in d["rules"]:
    if r["kind"] in ("pair", "view"):
        continue
    t = tuples(r, False)
    rows = []
    for (s, v, ok, b, o), e in zip(t, [e for e in r["evidence"] if not e.get("operand")]):
        if s.launch and "launch_ms" in e:
            singles = [e["parts"][k]["net_ms"] for k in ("op1", "op2", "op3")]
            if max(singles) > LIMIT * e["launch_ms"]:
                cases = {tuple(k.split(" | ")): x for k, x in e["cases_ms"].items()}
                cv = rv.case_verdict(e["block_ms"], cases, singles, e["noise_ms"], 0.5,
                                     rv.LAUNCH_RESOLUTION_MS)
                v, ok = cv["winner"], not cv["inconclusive"]
        rows.append((s, v, ok, b, o))
    old, new = rv.decide(t), rv.decide(rows)
    before += old[2] == "timing"
    after += new[2] == "timing"
    if old[2] != new[2] or old[0] != new[0]:
        print("  CHANGED", r["name"], old[2], "->", new[2], new[0], new[1])
print(Path(sys.argv[1]).name, "limit", LIMIT, "timed connection cases: launch count", before, "switch", after)
