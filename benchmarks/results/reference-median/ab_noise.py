"""``benchmarks/noise.py`` with the protocol's reference workload swapped for the one used before
(numpy sort + exp over 64 KiB, 3 warm + median of 21 repetitions), everything else as now:
the A side of the comparison in this folder's README.
Usage (from benchmarks/): python results/reference-median/ab_noise.py old|current NOISE_ARGS..."""
import runpy
import sys
import time
from pathlib import Path

import numpy as np

from nnmeter_tvm.backends import protocol

DATA = np.random.default_rng(0).standard_normal(1 << 14).astype(np.float32)
OUT = np.empty_like(DATA)


def old_once(self) -> float:
    t = time.perf_counter_ns()
    np.exp(np.sort(DATA), out=OUT)
    OUT.sum()
    return (time.perf_counter_ns() - t) * 1e-9


if __name__ == "__main__":
    side = sys.argv.pop(1)
    if side == "old":
        protocol.ReferenceWorkload._once = old_once
    elif side != "current":
        sys.exit("first argument: old or current")
    bench = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(bench))
    sys.argv[0] = str(bench / "noise.py")
    runpy.run_path(str(bench / "noise.py"), run_name="__main__")
