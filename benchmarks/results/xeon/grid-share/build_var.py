"""One ort-cpu build from an empty sample log and measurement store, with BuildConfig overrides.

    python build_var.py OUT_DIR '{"seed": 1, "grid_samples": 600, "initial_samples": 550}'
"""
import json, os, sys, time, tempfile
from pathlib import Path
out = Path(sys.argv[1]); overrides = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
work = Path(tempfile.mkdtemp(prefix="nnm-var-"))
os.environ["NNMETER_TVM_STORE"] = str(work / "measurements.sqlite")
from nnmeter_tvm.builder.build import build
t = time.monotonic()
res = build("ort-cpu", out, store=work / "samples.jsonl", progress=False, **overrides)
print("built in", round(time.monotonic() - t), "s", out)
