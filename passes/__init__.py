"""Adapters into host compilers and runtimes: one pass or integration per module.

- :mod:`.estimate`: ``NNMeterEstimate`` (the Relax module pass), ``report``, ``LatencyBudget``
- :mod:`.relax_graph`: Relax IRModule -> core Graph (used by the pass)
- :mod:`.prune`: MetaSchedule task pruning and latency-proportional trial allocation
- :mod:`.onnxruntime`: predictions for a live ``InferenceSession``

Names are loaded on first use, so ``nnmeter_tvm.passes.onnxruntime`` works without importing
TVM, and importing this package costs nothing.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "NNMeterEstimate": "estimate", "LatencyBudget": "estimate", "report": "estimate",
    "check_budget": "estimate", "relax_to_graph": "relax_graph",
    "prune_tasks": "prune", "allocate_trials": "prune", "tune_pruned": "prune",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
