"""The control of ``reprofile_add.py``: the same units profiled again, written as before (the
add's operand a graph input), to tell the operand's effect from the host's of the day.
Usage: python control.py OUT_DIR"""
import sys
from pathlib import Path

import nnmeter_tvm.builder.kernel_models as km
from reprofile_add import main

_epi = km._epi
km._epi = lambda b, x, epi, inputs, name, conv_operand=False: _epi(b, x, epi, inputs, name)

if __name__ == "__main__":
    main(Path(sys.argv[1]), drifted=False)
