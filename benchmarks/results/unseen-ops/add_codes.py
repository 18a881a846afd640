"""Record, in each shipped bundle, the codes its cost models were trained on (ops and modes,
``features.CODE_FIELDS``), which the bundles predate; nothing else changes.

    python add_codes.py        (from any directory; rewrites the shipped bundles' bundle.json)

Each bundle is retrained from its own samples (``build --retrain``, nothing measured) into a
temporary folder, and only if every retrained cost model is byte-for-byte the shipped one are the
codes that training recorded (``training.training_range``) copied into the shipped
``bundle.json``.  So the codes are those of the very rows the shipped trees were fitted on.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from nnmeter_tvm.predictors.bundle import shipped_names

CHECKOUT = Path(__file__).resolve().parents[3] / "nnmeter_tvm/predictors/bundles"


def main() -> int:
    for name in shipped_names():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "nnmeter_tvm", "build", "--retrain", name,
                            "-o", tmp, "--quiet"], check=True, capture_output=True,
                           cwd=tmp)  # not the checkout, whose package has no extension built
            fresh = json.loads((Path(tmp) / "bundle.json").read_text())
        path = CHECKOUT / name / "bundle.json"
        shipped = json.loads(path.read_text())
        same = all(fresh["families"][f]["sha256"] == entry["sha256"]
                   for f, entry in shipped["families"].items())
        if not same or set(fresh["families"]) != set(shipped["families"]):
            print(f"{name}: retrained cost models differ from the shipped ones; left as is")
            continue
        for family, entry in shipped["families"].items():
            codes = fresh["families"][family]["range"].get("codes")
            if codes:
                entry["range"]["codes"] = codes
        path.write_text(json.dumps(shipped, indent=1) + "\n")
        print(f"{name}: codes recorded for",
              ", ".join(f for f, e in shipped["families"].items() if "codes" in e["range"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
