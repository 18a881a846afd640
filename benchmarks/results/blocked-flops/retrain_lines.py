"""Retrain bundle SRC into OUT with training seed SEED and ``training.LAYOUT_LINES_GAIN`` set
to GAIN (-1: every family with rows in two layouts gets a line per layout).
Usage: python retrain_lines.py SRC OUT SEED GAIN"""
import json
import shutil
import sys

from nnmeter_tvm.builder import training
from nnmeter_tvm.cli import main

src, out, seed, gain = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
copy = out + "-src"  # the source with its build seed changed
shutil.rmtree(copy, ignore_errors=True)
shutil.copytree(src, copy)
meta = json.load(open(copy + "/bundle.json"))
meta["build"]["config"]["seed"] = seed
json.dump(meta, open(copy + "/bundle.json", "w"))
training.LAYOUT_LINES_GAIN = gain
sys.exit(main(["build", "--backend", meta["backend"]["name"], "--retrain", copy, "-o", out,
               "--quiet"]))
