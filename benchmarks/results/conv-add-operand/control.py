"""The control of ``reprofile_add.py``: the same units profiled again, written as before (the
add's operand a graph input), to tell the operand's effect from the host's of the day.
Usage: python control.py OUT_DIR"""
import runpy
import sys
from pathlib import Path

import nnmeter_tvm.builder.kernel_models as km

_epi = km._epi
km._epi = lambda b, x, epi, inputs, name, conv_operand=False: _epi(b, x, epi, inputs, name)
sys.argv = ["reprofile_add.py", sys.argv[1]]
runpy.run_path(str(Path(__file__).with_name("reprofile_add.py")), run_name="__main__")
