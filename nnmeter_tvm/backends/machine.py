"""What machine a measurement was taken on: CPU model and the SIMD flags that change kernel
speed, core count, Python and runtime versions.  No hostname, user or path: results files are
committed and shared.
"""
from __future__ import annotations

import functools
import os
import platform

# The flags that change which kernels a runtime picks (MLAS, LLVM): a subset, in this order.
FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
         "avx512_vnni", "avx512_bf16", "amx_tile", "neon", "asimd")


def _cpuinfo() -> tuple[str, set]:
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def _version(module: str) -> str | None:
    from importlib import metadata

    dist = {"tvm": "apache-tvm"}.get(module, module)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def describe_machine() -> dict:
    """A JSON-ready, hostname-free description of this machine (cached per process)."""
    model, flags = _cpuinfo()
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        allowed = os.cpu_count()
    return {
        "cpu_model": model,
        "cpu_flags": [f for f in FLAGS if f in flags],
        "cores": os.cpu_count(),
        "cores_allowed": allowed,
        "arch": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime"),
        "tvm": _version("tvm"),
    }
