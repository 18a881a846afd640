"""What a model's runs do to the reference workload's next reading, and what another process
does to a model, on this host (no store; prints a table).

Part 1: the old reference (numpy sort + exp over 64 KiB, 3 warm + median of 21) and the
current one (``protocol.ReferenceWorkload``: 3,000 integer multiply-adds in pure Python), each
read right after 0.15 s of: sleeping, or running one of four zoo models (onnxruntime, one
thread); 6 rounds, pinned and locked as the protocol times.  Ratios to the reading after sleep.
Part 2: mobilenetv2's median run over 16 windows of 0.25 s, alone and with a numpy process
(matrix products, or a 400 MB sum) on the other core, and the old reference's readings then.
Usage: python after_effects.py"""
import os
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

from nnmeter_tvm import zoo
from nnmeter_tvm.backends.protocol import ProtocolConfig, ReferenceWorkload, quiet

DATA = np.random.default_rng(0).standard_normal(1 << 14).astype(np.float32)
OUT = np.empty_like(DATA)


def old_reference() -> float:
    times = []
    for _ in range(24):
        t = time.perf_counter_ns()
        np.exp(np.sort(DATA), out=OUT)
        OUT.sum()
        times.append(time.perf_counter_ns() - t)
    return float(np.median(times[3:])) * 1e-9


def session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    inp = s.get_inputs()[0]
    x = np.random.rand(*[d if isinstance(d, int) else 1 for d in inp.shape]).astype(np.float32)
    return lambda: s.run(None, {inp.name: x})


def part1():
    loads = {"sleep": lambda: time.sleep(0.005)}
    for fam in ("mobilenetv2", "nasbench201", "resnet", "alexnet"):
        loads[fam] = session(zoo.generate(fam, 0, 0, None))
    refs = {"old numpy sort+exp": old_reference, "current pure Python": ReferenceWorkload().read}
    res = {(k, r): [] for k in loads for r in refs}
    with quiet(ProtocolConfig()):
        for _ in range(6):
            for k, f in loads.items():
                for r, read in refs.items():
                    t = time.perf_counter()
                    while time.perf_counter() - t < 0.15:
                        f()
                    res[(k, r)].append(read())
            time.sleep(0.06)
    print("reading after 0.15 s of each load, median of 6, relative to after sleep [min-max]")
    for r in refs:
        base = np.median(res[("sleep", r)])
        print(f"  {r:20s} ({base * 1e6:.0f} us): " + "  ".join(
            f"{k} {np.median(res[(k, r)]) / base:.3f} [{min(res[(k, r)]) / base:.2f}-"
            f"{max(res[(k, r)]) / base:.2f}]" for k in loads if k != "sleep"))


LOADS = {"matrix products on the other core": "a=np.random.rand(2000,2000)\nwhile True: a@a",
         "400 MB sum on the other core":
             "a=np.random.rand(50_000_000)\nwhile True: a.sum(); a*=1.0000001"}


def part2():
    run = session(zoo.generate("mobilenetv2", 0, 0, None))
    other = min(os.sched_getaffinity(0))
    print("mobilenetv2_s0_i0, median of 16 windows of 0.25 s; old reference, median [min-max]")
    base = None
    for name in ("alone", *LOADS, "alone again"):
        proc = None
        if name in LOADS:
            code = f"import os,numpy as np; os.sched_setaffinity(0,{{{other}}}); " + LOADS[name]
            proc = subprocess.Popen([sys.executable, "-c", code],
                                    env={**os.environ, "OMP_NUM_THREADS": "1",
                                         "OPENBLAS_NUM_THREADS": "1"})
            time.sleep(1.0)
        windows, reads = [], []
        with quiet(ProtocolConfig(realtime=False)):
            for _ in range(16):
                t, runs = time.perf_counter(), []
                while time.perf_counter() - t < 0.25:
                    a = time.perf_counter_ns()
                    run()
                    runs.append(time.perf_counter_ns() - a)
                windows.append(np.median(runs) * 1e-6)
                reads.append(old_reference())
        if proc:
            proc.kill()
            proc.wait()
        base = base or np.median(reads)
        r = np.array(reads) / base
        print(f"  {name:35s} model {np.median(windows):6.2f} ms   reference "
              f"{np.median(r):.2f} [{r.min():.2f}-{r.max():.2f}]")


if __name__ == "__main__":
    part1()
    part2()
