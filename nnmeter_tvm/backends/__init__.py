"""Backends: run and time a model on a real runtime, and report the runtime's own kernels.

``get_backend("ort-cpu")`` returns a :class:`~.base.Backend`.  A new backend is one module with
one ``Backend`` subclass, added to ``_REGISTRY`` below (module path, class name), so that no
runtime is imported until its backend is asked for.
"""
from __future__ import annotations

import importlib

from ..errors import unknown_name
from .base import Backend, KernelTruth, Measurement, Runner, TruthKernel
from .protocol import ProtocolConfig

_REGISTRY = {
    "ort-cpu": ("nnmeter_tvm.backends.ort_cpu", "OrtCpu"),
    "tvm-llvm": ("nnmeter_tvm.backends.tvm_llvm", "TvmLlvm"),
}
BACKENDS = tuple(_REGISTRY)


def known_backend(name: str) -> str:
    """``name`` if it is one of :data:`BACKENDS` (no runtime imported); else UnknownNameError."""
    if name not in _REGISTRY:
        raise unknown_name("backend", name, BACKENDS)
    return name


def get_backend(name: str, *, config: ProtocolConfig | None = None) -> Backend:
    """The backend called ``name`` (one of :data:`BACKENDS`); raises UnknownNameError."""
    module, cls = _REGISTRY[known_backend(name)]
    return getattr(importlib.import_module(module), cls)(config=config)


__all__ = ["BACKENDS", "Backend", "KernelTruth", "Measurement", "ProtocolConfig", "Runner",
           "TruthKernel", "get_backend", "known_backend"]
