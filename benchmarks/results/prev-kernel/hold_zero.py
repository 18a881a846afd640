"""Run a command (the nnmeter-tvm CLI, or a script such as evaluate.py) with one of the two
new context fields held at 0, under ``prev_context.patch``.
Usage: python hold_zero.py prev_bytes|prev_feeds cli build ... | evaluate.py ..."""
import os
import runpy
import sys

import nnmeter_tvm.features as F

HELD = sys.argv.pop(1)
_previous = F.previous


def previous(*args, **kwargs):
    prev_bytes, prev_feeds = _previous(*args, **kwargs)
    if HELD == "prev_bytes":
        return prev_bytes * 0.0, prev_feeds
    return prev_bytes, prev_feeds * 0.0


F.previous = previous
if sys.argv[1] == "cli":
    from nnmeter_tvm.cli import main

    sys.argv = ["nnmeter-tvm"] + sys.argv[2:]
    sys.exit(main())
sys.path.insert(0, os.getcwd())  # evaluate.py imports eval_lib from its folder
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
