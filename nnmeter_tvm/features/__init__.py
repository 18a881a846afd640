"""Kernel features: the schema (``schema.py``), the raw configurations read from a graph
(``configs.py``) and the compiled encoder ``nnmeter_tvm._features`` behind this small shim
(the extension also evaluates tree ensembles for :mod:`nnmeter_tvm.predictors.trees`).

    family, raw = kernel_config(kernel, graph)      # or configs_by_family(...) for many kernels
    X = encode(family, raw[None])                    # float32, columns = feature_names(family)

There is no pure-Python fallback for ``encode``: a missing or stale extension raises at once.
``reference.py`` holds the NumPy reference the parity tests compare the extension against.
"""
from __future__ import annotations

import numpy as np

from .configs import as_rows, configs_by_family, kernel_config
from .schema import (CODE_FIELDS, FAMILIES, GENERIC_FEATURES, LAYOUT_CODES, SCHEMA_VERSION,
                     conv_family, family_of, feature_names, generic_columns, raw_fields)
from ..errors import unknown_name
from ..extension import REBUILD, load_extension

__all__ = ["SCHEMA_VERSION", "FAMILIES", "GENERIC_FEATURES", "CODE_FIELDS", "family_of",
           "conv_family", "feature_names", "raw_fields", "generic_columns", "kernel_config",
           "configs_by_family", "encode", "encode_all", "conv_flops_params", "flops_blocked"]

_ext = None


def _extension():
    """The compiled encoder, checked once against this package's schema."""
    global _ext
    if _ext is not None:
        return _ext
    ext = load_extension("feature extractor and tree evaluator", "Forest")
    if ext.SCHEMA_VERSION != SCHEMA_VERSION:
        raise ImportError(
            f"nnmeter_tvm._features was built for feature schema {ext.SCHEMA_VERSION}, this "
            f"package defines schema {SCHEMA_VERSION}; rebuild it ({REBUILD}).")
    for name, fam in FAMILIES.items():
        if tuple(ext.raw_fields(name)) != fam.encoded_raw or \
                tuple(ext.feature_names(name)) != fam.encoded_raw + fam.derived:
            raise ImportError(
                f"nnmeter_tvm._features disagrees with features/schema.py on family {name!r} "
                f"(schema {SCHEMA_VERSION}); fix cpp_ext/features.cpp or schema.py, then rebuild.")
    _ext = ext
    return ext


def encode(family: str, configs, exact: bool = False) -> np.ndarray:
    """Features of ``configs`` (N x raw width, or one row) of ``family``: float32, N x F.

    ``exact=True`` returns float64 instead (FLOPs of large kernels exceed float32's integers).
    The compiled encoder reads the rows but their context block, which goes last, unchanged.
    """
    if family not in FAMILIES:
        raise unknown_name("feature family", family, FAMILIES)
    rows = as_rows(family, configs)
    inner = len(FAMILIES[family].encoded_raw)
    # float64 first: flops_blocked is derived from the exact FLOPs, then rounded once
    x = (_ext or _extension()).encode(family, np.ascontiguousarray(rows[:, :inner]), True)
    context = rows[:, inner:]
    out = np.hstack([x, context, flops_blocked(family, x, context)[:, None]])
    return out if exact else out.astype(np.float32)


_BLOCKED = LAYOUT_CODES.index("blocked")


def flops_blocked(family: str, x, context) -> np.ndarray:
    """``flops`` of encoded rows ``x`` with a blocked conv's or depthwise conv's channels
    rounded up to its block (``context``: the rows' context block); see schema.py."""
    names = FAMILIES[family].features
    flops = np.asarray(x[:, names.index("flops")], dtype=np.float64)
    if family not in ("conv", "dwconv"):
        return flops
    blocked = context[:, 0] == _BLOCKED
    block = np.maximum(context[:, 1], 1)
    up = lambda v: np.ceil(v / block) * block  # noqa: E731
    cout = np.maximum(x[:, names.index("cout")], 1)
    factor = up(cout) / cout
    if family == "conv":  # below one block of input channels onnxruntime reads plain NCHW
        cin = np.maximum(x[:, names.index("cin_per_group")], 1)
        factor *= np.where(cin >= block, up(cin) / cin, 1.0)
    return np.where(blocked, flops * factor, flops)


def encode_all(configs: dict) -> dict:
    """``encode`` over a ``configs_by_family`` result: family -> feature matrix."""
    return {fam: encode(fam, raw) for fam, raw in configs.items()}


def conv_flops_params(configs) -> tuple[np.ndarray, np.ndarray]:
    """FLOPs (multiply-add = 2) and parameter counts of a batch of conv-family configs.

    ``configs`` are raw rows of ``conv`` / ``dwconv`` / ``gconv`` (they share their raw fields;
    groups are honoured).  Returns two float64 arrays of length N.
    """
    feats = FAMILIES["conv"].features
    x = encode("conv", configs, True)  # float64: exact counts
    return x[:, feats.index("flops")], x[:, feats.index("params")]
