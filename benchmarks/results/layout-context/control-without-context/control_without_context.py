"""Control for the layout context (schema 2): the same code with every kernel's context forced
to 0 ("unknown"), retrained from the shipped bundle's samples and scored like the real thing.

Run from benchmarks/:  ../.venv/bin/python results/layout-context/control-without-context/\
control_without_context.py OUT_DIR   (this folder's files were written with OUT_DIR /tmp/s10)
The ground truth is the 04:42 measurement, read from layout-context/before/.
"""
import runpy
import sys

from nnmeter_tvm.features import configs

configs._context = lambda kernel: [0]  # the control: no kernel knows its layout
from nnmeter_tvm.builder.build import retrain  # noqa: E402

out = sys.argv[1]
retrain("ort-cpu", f"{out}/bundle", progress=False)
sys.argv = ["evaluate.py", "--predictor", f"{out}/bundle", "--truth-from",
            "results/layout-context/before/evaluate-ort-cpu.json", "--no-measure",
            "--store", f"{out}/empty.sqlite", "--out", out]
sys.path.insert(0, ".")
runpy.run_path("evaluate.py", run_name="__main__")
